"""Small inline-SVG charts for the HTML reports (no plotting library): a strip plot of a
distribution, lines over time, and bars. Each function returns one ``<svg>`` element as text;
``None`` values are skipped, and an empty series draws a labelled empty frame."""

from __future__ import annotations

import html
import math

import numpy as np

WIDTH, HEIGHT = 460, 200
MARGIN = dict(left=58, right=24, top=28, bottom=36)
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
FONT = 'font-family="system-ui, sans-serif"'


def _clean(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (about ``count`` of them)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        hi = lo + (abs(lo) * 0.1 or 1.0)
    raw = (hi - lo) / max(count - 1, 1)
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * step:
            step *= m
            break
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 12))
    return ticks


def tick_format(ticks: list[float]):
    """A formatter that shows ticks spaced like ``ticks`` with just enough decimals."""
    if len(ticks) < 2:
        return fmt
    step = abs(ticks[1] - ticks[0])
    big = max(abs(t) for t in ticks)
    if big >= 1e4 or big < 1e-3:
        return lambda v: f"{v:.3g}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if round(step * 10 ** decimals) % 1 or abs(step * 10 ** decimals - round(step * 10 ** decimals)) > 1e-6:
        decimals += 1  # 2.5-type steps
    return lambda v: f"{v:.{decimals}f}"


def fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000 or a < 0.001:
        return f"{v:.2g}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


class _Frame:
    """A plotting area with linear axes mapping data to pixels."""

    def __init__(self, title: str, xlim, ylim, xlabel: str = "", ylabel: str = "",
                 width: int = WIDTH, height: int = HEIGHT, top: int = MARGIN["top"]):
        self.w, self.h = width, height
        self.x0, self.x1 = MARGIN["left"], width - MARGIN["right"]
        self.y0, self.y1 = height - MARGIN["bottom"], top
        self.xlim, self.ylim = xlim, ylim
        self.parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                      f'viewBox="0 0 {width} {height}" role="img" {FONT} font-size="11">',
                      f'<title>{html.escape(title)}</title>',
                      f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>',
                      f'<text x="{self.x0}" y="16" font-size="13" font-weight="600">{html.escape(title)}</text>']
        if xlabel:
            self.parts.append(f'<text x="{(self.x0 + self.x1) / 2:.1f}" y="{height - 4}" text-anchor="middle" '
                              f'fill="#444">{html.escape(xlabel)}</text>')
        if ylabel:
            self.parts.append(f'<text x="12" y="{(self.y0 + self.y1) / 2:.1f}" text-anchor="middle" fill="#444" '
                              f'transform="rotate(-90 12 {(self.y0 + self.y1) / 2:.1f})">{html.escape(ylabel)}</text>')

    def px(self, x: float) -> float:
        lo, hi = self.xlim
        return self.x0 + (x - lo) / (hi - lo) * (self.x1 - self.x0) if hi > lo else (self.x0 + self.x1) / 2

    def py(self, y: float) -> float:
        lo, hi = self.ylim
        return self.y0 - (y - lo) / (hi - lo) * (self.y0 - self.y1) if hi > lo else (self.y0 + self.y1) / 2

    def axes(self, xticks=(), yticks=(), xtick_labels=None) -> None:
        p = self.parts
        yf, xf = tick_format(list(yticks)), tick_format(list(xticks))
        for t in yticks:
            y = self.py(t)
            p.append(f'<line x1="{self.x0}" x2="{self.x1}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e6e6e6"/>')
            p.append(f'<text x="{self.x0 - 5}" y="{y + 4:.1f}" text-anchor="end" fill="#444">{yf(t)}</text>')
        for i, t in enumerate(xticks):
            x = self.px(t)
            label = xtick_labels[i] if xtick_labels else xf(t)
            p.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{self.y0}" y2="{self.y0 + 4}" stroke="#666"/>')
            anchor = "end" if i == len(xticks) - 1 and x > self.w - 30 else "middle"
            p.append(f'<text x="{x:.1f}" y="{self.y0 + 16}" text-anchor="{anchor}" fill="#444">'
                     f'{html.escape(str(label))}</text>')
        p.append(f'<line x1="{self.x0}" x2="{self.x1}" y1="{self.y0}" y2="{self.y0}" stroke="#666"/>')
        p.append(f'<line x1="{self.x0}" x2="{self.x0}" y1="{self.y0}" y2="{self.y1}" stroke="#666"/>')

    def note(self, text: str) -> None:
        self.parts.append(f'<text x="{(self.x0 + self.x1) / 2:.1f}" y="{(self.y0 + self.y1) / 2:.1f}" '
                          f'text-anchor="middle" fill="#888">{html.escape(text)}</text>')

    def svg(self) -> str:
        return "\n".join(self.parts + ["</svg>"])


def _limits(values: list[float], pad: float = 0.05) -> tuple[float, float]:
    """The data range widened by ``pad`` of its span on each side (not below 0 for data >= 0)."""
    lo, hi = min(values), max(values)
    span = hi - lo or (abs(hi) * 0.1 or 1.0)
    return (lo - pad * span if lo - pad * span >= 0 or lo < 0 else 0.0), hi + pad * span


def strip_plot(values, title: str, unit: str = "", reference: float | None = None,
               reference_label: str = "paper", labels=None) -> str:
    """Each value as a dot (spread vertically by a fixed pattern), the quartile box, the median
    line and the mean (diamond); an optional reference value as a dashed line."""
    pairs = [(float(v), labels[i] if labels else None) for i, v in enumerate(values)
             if v is not None and math.isfinite(float(v))]
    vals = [v for v, _ in pairs]
    if not vals:
        f = _Frame(title, (0, 1), (0, 1), xlabel=unit)
        f.axes()
        f.note("no values")
        return f.svg()
    lo, hi = _limits(vals + ([reference] if reference is not None else []))
    ticks = nice_ticks(lo, hi)
    f = _Frame(title, (min(ticks[0], lo), max(ticks[-1], hi)), (0, 1), xlabel=unit, height=150)
    f.axes(xticks=ticks)
    q1, med, q3 = np.percentile(vals, [25, 50, 75])
    yb, yt = f.py(0.25), f.py(0.75)
    f.parts.append(f'<rect x="{f.px(q1):.1f}" y="{yt:.1f}" width="{max(f.px(q3) - f.px(q1), 1):.1f}" '
                   f'height="{yb - yt:.1f}" fill="#dbe9f6" stroke="#7aa6d3"/>')
    f.parts.append(f'<line x1="{f.px(med):.1f}" x2="{f.px(med):.1f}" y1="{yt:.1f}" y2="{yb:.1f}" '
                   f'stroke="#1f4e79" stroke-width="2"/>')
    for i, (v, label) in enumerate(pairs):
        y = f.py(0.5 + 0.36 * (((i * 0.618034) % 1.0) - 0.5))
        tip = f"<title>{html.escape(str(label))}: {fmt(v)}</title>" if label else ""
        f.parts.append(f'<circle cx="{f.px(v):.1f}" cy="{y:.1f}" r="3.2" fill="{COLOURS[0]}" '
                       f'fill-opacity="0.75">{tip}</circle>')
    m = float(np.mean(vals))
    x, y = f.px(m), f.py(0.5)
    f.parts.append(f'<path d="M{x:.1f},{y - 6:.1f} L{x + 6:.1f},{y:.1f} L{x:.1f},{y + 6:.1f} L{x - 6:.1f},{y:.1f} Z" '
                   f'fill="#ff7f0e" stroke="#333"><title>mean {fmt(m)}</title></path>')
    if reference is not None:
        x = f.px(reference)
        f.parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{f.y0}" y2="{f.y1}" stroke="#d62728" '
                       f'stroke-dasharray="5,3" stroke-width="1.5"/>')
        right = x > (f.x0 + f.x1) / 2  # label on the side with room
        f.parts.append(f'<text x="{x + (-3 if right else 3):.1f}" y="{f.y1 + 10}" fill="#d62728" '
                       f'text-anchor="{"end" if right else "start"}">{html.escape(reference_label)} '
                       f'{reference:g}</text>')
    f.parts.append(f'<text x="{f.x1}" y="16" text-anchor="end" fill="#444">n={len(vals)}, mean {fmt(m)}, '
                   f'median {fmt(float(med))}</text>')
    return f.svg()


def line_plot(series: dict[str, tuple[list, list]], title: str, xlabel: str = "", ylabel: str = "") -> str:
    """Lines ``name -> (x values, y values)``; None y values break a line."""
    xs = _clean(x for xv, _ in series.values() for x in xv)
    ys = _clean(y for _, yv in series.values() for y in yv)
    if not xs or not ys:
        f = _Frame(title, (0, 1), (0, 1), xlabel, ylabel)
        f.axes()
        f.note("no values")
        return f.svg()
    ylo, yhi = _limits(ys)
    yt = nice_ticks(ylo, yhi)
    xt = nice_ticks(min(xs), max(xs))
    f = _Frame(title, (xt[0], xt[-1]), (yt[0], yt[-1]), xlabel, ylabel, height=HEIGHT + 14, top=MARGIN["top"] + 14)
    f.axes(xticks=xt, yticks=yt)
    legend_x = f.x0  # one row between the title and the plot
    for k, (name, (xv, yv)) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        runs, run = [], []
        for x, y in zip(xv, yv):
            if y is None or not math.isfinite(float(y)):
                if run:
                    runs.append(run)
                run = []
                continue
            run.append(f"{f.px(float(x)):.1f},{f.py(float(y)):.1f}")
        if run:
            runs.append(run)
        for r in runs:
            if len(r) == 1:
                cx, cy = r[0].split(",")
                f.parts.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{colour}"/>')
            else:
                f.parts.append(f'<polyline points="{" ".join(r)}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
        label = html.escape(name)
        f.parts.append(f'<rect x="{legend_x}" y="{f.y1 - 12}" width="10" height="3" fill="{colour}"/>')
        f.parts.append(f'<text x="{legend_x + 14}" y="{f.y1 - 7}" fill="#333">{label}</text>')
        legend_x += 22 + 6.5 * len(name)
    return f.svg()


def bar_plot(labels: list[str], values: list, title: str, ylabel: str = "", reference: float | None = None,
             reference_label: str = "mean") -> str:
    """Vertical bars (labels under them when few enough to read), optional horizontal reference."""
    vals = [None if v is None or not math.isfinite(float(v)) else float(v) for v in values]
    present = [v for v in vals if v is not None]
    if not present:
        f = _Frame(title, (0, 1), (0, 1), ylabel=ylabel)
        f.axes()
        f.note("no values")
        return f.svg()
    yt = nice_ticks(0.0, max(present) * 1.08)
    n = len(vals)
    f = _Frame(title, (0, n), (0, yt[-1]), ylabel=ylabel, xlabel="video (sample order)")
    every = max(1, math.ceil(n / 12))
    f.axes(yticks=yt, xticks=[i + 0.5 for i in range(0, n, every)],
           xtick_labels=[str(i + 1) for i in range(0, n, every)])
    bw = (f.x1 - f.x0) / n
    for i, (label, v) in enumerate(zip(labels, vals)):
        if v is None:
            continue
        x, y = f.px(i) + 0.12 * bw, f.py(v)
        f.parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bw * 0.76, 0.8):.1f}" height="{f.y0 - y:.1f}" '
                       f'fill="{COLOURS[0]}"><title>{html.escape(label)}: {fmt(v)}</title></rect>')
    if reference is not None and math.isfinite(reference):
        y = f.py(reference)
        f.parts.append(f'<line x1="{f.x0}" x2="{f.x1}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ff7f0e" '
                       f'stroke-dasharray="5,3" stroke-width="1.5"/>')
        f.parts.append(f'<text x="{f.x1}" y="16" text-anchor="end" fill="#b35900">- - '
                       f'{html.escape(reference_label)} {fmt(reference)}</text>')
    return f.svg()
