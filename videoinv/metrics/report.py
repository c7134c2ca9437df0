"""Benchmark report files from per-video results: ``results.json``, ``videos.csv``, ``report.md``
(the FeatureStyleEncoder paper's Table 2 layout, its rows quoted beside ours), ``report.html``
(the same tables plus inline-SVG plots) and side-by-side videos (source | output).

Aggregation: the fidelity metrics (SSIM, PSNR, MSE, LPIPS, ID) are means over every frame with a
face, pooled across videos (a longer video weighs more); the temporal ones (TL-ID, TG-ID, jitter,
warping error, mask flicker, seam) are means of the per-video values; throughput is total frames
over total pipeline time, and the per-video fps are plotted.
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import math
from pathlib import Path

import numpy as np

from ..files import atomic_output
from . import svg

log = logging.getLogger(__name__)

# The paper's reported rows (video inversion on 120 RAVDESS videos, its Table 2). Only the
# FeatureStyleEncoder row is quoted: the other methods' numbers were not available to check.
PAPER_ROWS = [
    ("FeatureStyleEncoder (paper, Table 2)", {"ssim": 0.818, "psnr": 26.64, "mse": 0.009, "lpips": 0.122, "id": 0.895}),
]
TABLE = [("ssim", "SSIM ↑", "{:.3f}"), ("psnr", "PSNR ↑", "{:.2f}"), ("mse", "MSE ↓", "{:.4f}"),
         ("lpips", "LPIPS ↓", "{:.3f}"), ("id", "ID ↑", "{:.3f}")]
TEMPORAL = [("tl_id", "TL-ID", "{:.4f}"), ("tg_id", "TG-ID", "{:.4f}"), ("id", "ID to source", "{:.3f}"),
            ("quad_jitter", "quad jitter (px)", "{:.3f}"), ("warp", "warping error", "{:.5f}"),
            ("warp_floor", "warping error of the source", "{:.5f}"), ("mask_iou", "mask IoU", "{:.4f}"),
            ("mask_boundary_change", "mask boundary change", "{:.4f}"), ("seam", "seam", "{:.4f}")]
FRAME_METRICS = ("mse", "psnr", "ssim", "lpips", "id", "seam", "warp")
VIDEO_FIELDS = ("actor", "vocal", "emotion", "intensity", "statement", "repetition", "modality")
CSV_METRICS = ("ssim", "psnr", "mse", "lpips", "id", "tl_id", "tg_id", "quad_jitter", "warp", "warp_floor",
               "mask_iou", "mask_boundary_change", "seam")


def _mean(values) -> float | None:
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    return float(np.mean(v)) if v else None


def aggregate(videos: list[dict]) -> dict:
    """The run's numbers (see the module docstring for how each is averaged)."""
    out: dict = {"videos": len(videos), "frames": sum(v["frames"] for v in videos),
                 "frames_with_face": sum(v["frames_with_face"] for v in videos)}
    for k in FRAME_METRICS:
        out[k] = _mean(x for v in videos for x in v["per_frame"][k])
    for k, _, _ in TEMPORAL:
        if k not in FRAME_METRICS:
            out[k] = _mean(v["summary"].get(k) for v in videos)
    seconds = sum(v["throughput"]["seconds"] - v["throughput"]["metric_seconds"] for v in videos)
    out["fps"] = out["frames"] / seconds if seconds > 0 else None
    out["fps_per_video_mean"] = _mean(v["throughput"]["fps"] for v in videos)
    total = sum(v["throughput"]["seconds"] for v in videos)
    out["fps_with_metrics"] = out["frames"] / total if total > 0 else None
    reasons = {v.get("lpips_unavailable") for v in videos} - {None}
    out["lpips_unavailable"] = sorted(reasons)[0] if reasons else None
    return out


def ranked(videos: list[dict]) -> list[dict]:
    """Videos from best to worst by their mean PSNR (videos without one last)."""
    return sorted(videos, key=lambda v: -(v["summary"]["psnr"] if v["summary"]["psnr"] is not None else -math.inf))


def _cell(value, pattern: str, missing: str = "–") -> str:
    return missing if value is None else pattern.format(value)


def _ours_label(meta: dict, agg: dict) -> str:
    s = meta["settings"]
    edit = f", edit {' + '.join(s['edits'])}" if s["edits"] else ""
    plural = "s" if agg["videos"] != 1 else ""
    return f"ours: {s['model']}{edit}, {agg['videos']} video{plural}, {agg['frames_with_face']} frames"


def table_rows(agg: dict, meta: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the Table 2 layout: the paper's rows, then ours."""
    header = ["Method"] + [label for _, label, _ in TABLE]
    rows = [[name] + [_cell(values.get(k), "{:g}") for k, _, _ in TABLE] for name, values in PAPER_ROWS]  # as printed
    ours = [_ours_label(meta, agg)]
    for k, _, pat in TABLE:
        if k == "lpips" and agg["lpips"] is None and agg["lpips_unavailable"]:
            ours.append("unavailable")
        elif k == "id" and agg["id"] is not None:
            ours.append(f"{agg['id']:.3f} ({meta['settings']['identity']})")
        else:
            ours.append(_cell(agg.get(k), pat))
    return header, rows + [ours]


def temporal_row(agg: dict) -> tuple[list[str], list[str]]:
    return [label for _, label, _ in TEMPORAL], [_cell(agg.get(k), pat) for k, _, pat in TEMPORAL]


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def notes(agg: dict, meta: dict) -> list[str]:
    """The caveats printed under the tables."""
    s = meta["settings"]
    out = []
    if str(s["model"]).startswith("random"):
        out.append(f"The model `{s['model']}` has random weights: these numbers test the plumbing only and say "
                   "nothing about inversion quality.")
    out.append(f"Per-frame metrics compare the aligned input crop with the synthesized crop, both resized to "
               f"{s['crop']}x{s['crop']} px, RGB values in [0,1] (MSE in [0,1]² units, PSNR with peak 1).")
    if agg["lpips_unavailable"]:
        out.append(f"LPIPS unavailable: {agg['lpips_unavailable'].removeprefix('LPIPS unavailable: ')}")
    out.append(f"ID is the cosine similarity of {s['identity']} face descriptors of the input and synthesized "
               "crops; the paper's ID uses another face-recognition network, so the two are not on the same "
               "scale (dlib cosines are high for everyone).")
    out.append("Throughput: frames per second of the pipeline alone (decode, detect, align, invert, synthesize, "
               "paste, encode; the metrics' time excluded); the first video computed in a run also carries one-time "
               "start-up costs (detector and model warm-up).")
    out.append("TL-ID/TG-ID follow STIT (ratio of the output's to the source's identity similarity between "
               "adjacent / all frame pairs; 1 = as consistent as the source, can exceed 1). Warping error: mean "
               "squared error of the synthesized crop t+1 warped to t with the optical flow of the input crops, "
               "over non-occluded pixels; the same error of the input crops is the floor the flow leaves. Quad "
               "jitter: std of the second differences of the crop corners (px at crop scale). Seam: mean absolute "
               "difference between the pasted frame and the source in a 4-px band along the paste mask's edge.")
    return out


def render_markdown(agg: dict, videos: list[dict], meta: dict) -> str:
    sel, s = meta["selection"], meta["settings"]
    header, rows = table_rows(agg, meta)
    th, tr = temporal_row(agg)
    order = ranked(videos)
    lines = [
        "# RAVDESS video inversion benchmark", "",
        f"{agg['videos']} videos ({agg['frames']} frames, {agg['frames_with_face']} with a face) sampled from "
        f"`{meta['root']}` with seed {sel['seed']} (n={sel['n']}, modality {sel['modality']}, actors "
        f"{sel['actors']}, vocal channel {sel['vocal']}); model `{s['model']}`, edit: "
        f"{', '.join(s['edits']) or 'none (inversion)'}; frames per video: {s['frames'] or 'all'}.", "",
        "## Inversion fidelity (layout of the FeatureStyleEncoder paper's Table 2)", "",
        _md_table(header, rows), "",
        "## Temporal stability", "",
        _md_table(th, [tr]), "",
        "## Throughput", "",
        _md_table(["frames", "pipeline fps (all frames)", "mean of per-video fps", "fps with metrics"],
                  [[str(agg["frames"]), _cell(agg["fps"], "{:.2f}"), _cell(agg["fps_per_video_mean"], "{:.2f}"),
                    _cell(agg["fps_with_metrics"], "{:.2f}")]]), "",
        "## Best and worst videos (mean PSNR)", "",
        _md_table(["video", "frames", "PSNR", "SSIM", "ID", "TL-ID", "fps"],
                  [[v["video"]["stem"], str(v["frames"]), _cell(v["summary"]["psnr"], "{:.2f}"),
                    _cell(v["summary"]["ssim"], "{:.3f}"), _cell(v["summary"]["id"], "{:.3f}"),
                    _cell(v["summary"]["tl_id"], "{:.4f}"), _cell(v["throughput"]["fps"], "{:.2f}")]
                   for v in (order[:3] + order[3:][-3:])]), "",
        "## Notes", "",
    ]
    lines += [f"* {n}" for n in notes(agg, meta)]
    lines += ["", "Per-video numbers: `videos.csv`; everything: `results.json`; plots: `report.html`.", ""]
    return "\n".join(lines)


def csv_rows(videos: list[dict]) -> list[dict]:
    rows = []
    for v in videos:
        row = {"video": v["video"]["stem"], **{k: v["video"][k] for k in VIDEO_FIELDS},
               "frames": v["frames"], "frames_with_face": v["frames_with_face"]}
        row.update({k: v["summary"].get(k) for k in CSV_METRICS})
        row.update({"fps": v["throughput"]["fps"], "fps_with_metrics": v["throughput"]["fps_with_metrics"],
                    "seconds": v["throughput"]["seconds"], "path": v["video"]["path"]})
        rows.append(row)
    return rows


def render_csv(videos: list[dict]) -> str:
    rows = csv_rows(videos)
    buffer = io.StringIO()
    fields = ["video", *VIDEO_FIELDS, "frames", "frames_with_face", *CSV_METRICS, "fps", "fps_with_metrics",
              "seconds", "path"]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row[k] is None else row[k]) for k in fields})
    return buffer.getvalue()


# -- HTML ------------------------------------------------------------------------------------------
CSS = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#222;padding:0 16px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}tr.paper td{color:#555;font-style:italic}
.warn{background:#fff4e5;border:1px solid #f0b46c;padding:8px 12px;border-radius:4px}
.grid{display:flex;flex-wrap:wrap;gap:10px}.grid svg{border:1px solid #eee}
ul.notes li{margin:4px 0;font-size:13px}video{max-width:100%;background:#000}
.small{font-size:12px;color:#555}
"""


def _html_table(header, rows, row_classes=None) -> str:
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for i, r in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>")
    return "".join(out) + "</table>"


def render_html(agg: dict, videos: list[dict], meta: dict, side_by_side: list[tuple[str, str]] = ()) -> str:
    """The report page; ``side_by_side`` = [(video stem, relative path of its comparison video)]."""
    sel, s = meta["selection"], meta["settings"]
    header, rows = table_rows(agg, meta)
    th, tr = temporal_row(agg)
    order = ranked(videos)
    stems = [v["video"]["stem"] for v in videos]
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>RAVDESS benchmark</title>"
             f"<style>{CSS}</style></head><body>", "<h1>RAVDESS video inversion benchmark</h1>",
             f"<p>{agg['videos']} videos ({agg['frames']} frames, {agg['frames_with_face']} with a face) sampled "
             f"with seed {sel['seed']} (n={sel['n']}, modality {html.escape(sel['modality'])}, actors "
             f"{html.escape(str(sel['actors']))}, vocal {html.escape(sel['vocal'])}); model "
             f"<code>{html.escape(s['model'])}</code>, "
             f"edit: {html.escape(', '.join(s['edits']) or 'none (inversion)')}, "
             f"crops {s['crop']} px.</p>"]
    if str(s["model"]).startswith("random"):
        parts.append("<p class='warn'>Random model weights: the numbers test the plumbing only.</p>")
    parts += ["<h2>Inversion fidelity (layout of the FeatureStyleEncoder paper's Table 2)</h2>",
              _html_table(header, rows, ["paper"] * len(PAPER_ROWS) + [""]),
              "<h2>Temporal stability</h2>", _html_table(th, [tr]),
              "<h2>Throughput</h2>",
              _html_table(["frames", "pipeline fps (all frames)", "mean of per-video fps", "fps with metrics"],
                          [[agg["frames"], _cell(agg["fps"], "{:.2f}"), _cell(agg["fps_per_video_mean"], "{:.2f}"),
                            _cell(agg["fps_with_metrics"], "{:.2f}")]]),
              "<ul class='notes'>" + "".join(f"<li>{html.escape(n.replace('`', ''))}</li>" for n in notes(agg, meta))
              + "</ul>"]

    paper = dict(PAPER_ROWS[0][1])
    parts.append("<h2>Per-video distributions</h2><p class='small'>One dot per video (its mean); box: quartiles; "
                 "diamond: mean; dashed red: the paper's value (not comparable for ID).</p><div class='grid'>")
    for key, label, unit in (("ssim", "SSIM", ""), ("psnr", "PSNR", "dB"), ("mse", "MSE", ""),
                             ("lpips", "LPIPS", ""), ("id", "ID similarity", "cosine"), ("tl_id", "TL-ID", ""),
                             ("tg_id", "TG-ID", ""), ("warp", "warping error", ""),
                             ("quad_jitter", "quad jitter", "px at crop scale"), ("mask_iou", "mask IoU", ""),
                             ("seam", "seam", "")):
        values = [v["summary"].get(key) for v in videos]
        if key == "lpips" and agg["lpips"] is None:
            continue
        parts.append(svg.strip_plot(values, label, unit, reference=paper.get(key), labels=stems))
    parts.append("</div>")
    if agg["lpips"] is None:
        parts.append("<p class='small'>LPIPS unavailable: no distribution drawn.</p>")

    if order:
        best, worst = order[0], order[-1]
        pair = [("best", best)] + ([("worst", worst)] if worst is not best else [])
        names = ", ".join(f"{tag}: {v['video']['stem']}" for tag, v in pair)
        parts.append(f"<h2>Over time: best and worst video by mean PSNR</h2><p class='small'>{html.escape(names)}</p>"
                     "<div class='grid'>")
        for key, label in (("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("id", "ID similarity"),
                           ("warp", "warping error"), ("seam", "seam"), ("lpips", "LPIPS")):
            if key == "lpips" and agg["lpips"] is None:
                continue
            series = {f"{tag} {v['video']['stem']}": (v["per_frame"]["time"], v["per_frame"][key]) for tag, v in pair}
            parts.append(svg.line_plot(series, label, xlabel="time (s)"))
        parts.append("</div>")

    parts.append("<h2>Throughput per video</h2>")
    parts.append(svg.bar_plot(stems, [v["throughput"]["fps"] for v in videos], "pipeline frames per second",
                              ylabel="fps", reference=agg["fps_per_video_mean"]))
    if side_by_side:
        parts.append("<h2>Side by side: source | output</h2>")
        for stem, rel in side_by_side:
            parts.append(f"<p class='small'>{html.escape(stem)}</p><video controls preload='metadata' "
                         f"src='{html.escape(rel)}' width='640'></video>")
    parts.append("<h2>All videos</h2>")
    parts.append(_html_table(["video", "frames", "SSIM", "PSNR", "MSE", "ID", "TL-ID", "TG-ID", "warp", "seam", "fps"],
                             [[v["video"]["stem"], v["frames"], _cell(v["summary"]["ssim"], "{:.3f}"),
                               _cell(v["summary"]["psnr"], "{:.2f}"), _cell(v["summary"]["mse"], "{:.4f}"),
                               _cell(v["summary"]["id"], "{:.3f}"), _cell(v["summary"]["tl_id"], "{:.4f}"),
                               _cell(v["summary"]["tg_id"], "{:.4f}"), _cell(v["summary"]["warp"], "{:.5f}"),
                               _cell(v["summary"]["seam"], "{:.4f}"), _cell(v["throughput"]["fps"], "{:.2f}")]
                              for v in videos]))
    parts.append("</body></html>")
    return "\n".join(parts)


# -- files -----------------------------------------------------------------------------------------
def _write_text(path: Path, text: str) -> Path:
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def comparison_picks(videos: list[dict], count: int) -> list[dict]:
    """Up to ``count`` videos for side-by-side clips: the best, the worst, then the median..."""
    order = ranked(videos)
    picks: list[dict] = []
    for i in (0, len(order) - 1, len(order) // 2, len(order) // 4, 3 * len(order) // 4):
        if len(picks) >= count:
            break
        if order and order[i] not in picks:
            picks.append(order[i])
    return picks


def write_report(out_dir: str | Path, videos: list[dict], meta: dict, side_by_side: int = 3) -> dict[str, Path]:
    """Write every report file into ``out_dir``; returns {name: path}."""
    from .sidebyside import side_by_side as make_side_by_side

    out = Path(out_dir)
    agg = aggregate(videos)
    files: dict[str, Path] = {}
    clips = []
    if side_by_side > 0:
        (out / "side_by_side").mkdir(exist_ok=True)
        for v in comparison_picks(videos, side_by_side):
            stem = v["video"]["stem"]
            source, output = Path(v["video"]["path"]), out / "videos" / f"{stem}.mp4"
            if not (source.is_file() and output.is_file()):
                log.warning("no side-by-side video for %s: %s is missing", stem,
                            source if not source.is_file() else output)
                continue
            dest = out / "side_by_side" / f"{stem}.mp4"
            make_side_by_side(source, output, dest)
            clips.append((stem, f"side_by_side/{stem}.mp4"))
            files[f"side_by_side/{stem}.mp4"] = dest
    data = {**meta, "summary": agg, "paper": [{"method": n, **vals} for n, vals in PAPER_ROWS], "videos": videos}
    files["results.json"] = _write_text(out / "results.json", json.dumps(data, indent=1, allow_nan=False))
    files["videos.csv"] = _write_text(out / "videos.csv", render_csv(videos))
    files["report.md"] = _write_text(out / "report.md", render_markdown(agg, videos, meta))
    files["report.html"] = _write_text(out / "report.html", render_html(agg, videos, meta, clips))
    return files
