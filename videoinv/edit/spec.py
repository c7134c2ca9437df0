"""Edit specs: which directions, how strongly, on which layers, and how the strength changes over time.

``NAME[@LAYERS]=STRENGTH``:

* ``NAME``: a named direction (``smile``, ``age`` ...), ``ganspaceN``/``sefaN``, or a file;
* ``@LAYERS``: an inclusive W+ row range ``@4-8`` (or one row ``@5``), default: the direction's;
* ``STRENGTH``: a number, or keyframes ``value:time,value:time,...`` with times in seconds
  (``2``, ``2.5s``, ``1:02``) or frame numbers (``60f``), interpolated linearly on the frames'
  timestamps and held constant before the first and after the last keyframe.

Examples: ``smile=1.5``, ``age@0-7=-2``, ``smile=0:0s,1.5:2s,1.5:4s,0:5s``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch

from ..errors import VideoinvError
from ..video.timing import TimePoint

_EDIT = re.compile(r"^\s*([^=@\s]+)(?:@(\d+)(?:-(\d+))?)?\s*=\s*(.+?)\s*$")


@dataclass(frozen=True)
class Keyframes:
    """Piecewise-linear strength over time: ``points`` are (time, value), time in seconds or
    frames (``by_frame``)."""

    points: tuple[tuple[float, float], ...]
    by_frame: bool = False

    @classmethod
    def parse(cls, text: str) -> Keyframes:
        text = text.strip()
        try:
            value = float(text)
        except ValueError:
            pass
        else:
            return cls(((0.0, _finite(value, text)),))
        points, units = [], set()
        for part in text.split(","):
            if ":" not in part:
                raise VideoinvError(f"bad keyframe {part!r} in {text!r}: use value:time, e.g. 1.5:2s")
            value, when = part.split(":", 1)
            tp = TimePoint.parse(when)
            units.add(tp.frame is not None)
            try:
                number = float(value)
            except ValueError:
                raise VideoinvError(f"bad keyframe value {value!r} in {text!r}") from None
            points.append((float(tp.frame if tp.frame is not None else tp.seconds), _finite(number, text)))
        if len(units) > 1:
            raise VideoinvError(f"keyframes {text!r} mix seconds and frame numbers; use one kind")
        points.sort(key=lambda point: point[0])  # two at one time: a jump, in the order given
        return cls(tuple(points), by_frame=units == {True})

    def at(self, seconds: float, index: int) -> float:
        t = float(index) if self.by_frame else seconds
        pts = self.points
        if t <= pts[0][0]:
            return pts[0][1]
        for (t0, v0), (t1, v1) in zip(pts, pts[1:]):
            if t <= t1:
                return v0 + (v1 - v0) * (t - t0) / (t1 - t0) if t1 > t0 else v1
        return pts[-1][1]


def _finite(value: float, text: str) -> float:
    if not math.isfinite(value):  # a NaN or infinite latent would make the face garbage
        raise VideoinvError(f"bad strength {value!r} in {text!r}: use a finite number such as 1.5 or -2")
    return value


@dataclass(frozen=True)
class EditSpec:
    name: str
    strength: Keyframes
    layers: tuple[int, int] | None = None

    @classmethod
    def parse(cls, text: str) -> EditSpec:
        m = _EDIT.match(text)
        if not m and "@" in text and "=" in text:
            rows = text.split("@", 1)[1].split("=", 1)[0].strip()
            raise VideoinvError(f"bad layer range {rows!r} in {text!r}: @A-B picks W+ layers (whole numbers, e.g. "
                                f"@4-8), not a time; to edit only part of the video give keyframes, e.g. "
                                f"{text.split('@', 1)[0].strip()}=0:4.9s,1:5s,1:6s,0:6.1s")
        if not m:
            raise VideoinvError(f"bad edit {text!r}: use NAME=STRENGTH, NAME@4-8=STRENGTH or NAME=0:0s,1.5:2s")
        name, lo, hi, strength = m.groups()
        layers = (int(lo), int(hi if hi is not None else lo)) if lo is not None else None
        if layers and layers[0] > layers[1]:
            raise VideoinvError(f"bad layer range in {text!r}: {layers[0]} > {layers[1]}")
        return cls(name, Keyframes.parse(strength), layers)

    def __str__(self) -> str:
        layers = "" if self.layers is None else f"@{self.layers[0]}-{self.layers[1]}"
        if len(self.strength.points) == 1:
            return f"{self.name}{layers}={self.strength.points[0][1]:g}"
        unit = "f" if self.strength.by_frame else "s"
        return f"{self.name}{layers}=" + ",".join(f"{v:g}:{t:g}{unit}" for t, v in self.strength.points)


def edit_strengths(edits: list[tuple[EditSpec, object]], seconds: float, index: int,
                   fade: float = 1.0) -> list[float]:
    """Each edit's strength x fade at this frame (0: the edit leaves the latent alone)."""
    return [spec.strength.at(seconds, index) * fade for spec, _ in edits]


def apply_edits(w: torch.Tensor, edits: list[tuple[EditSpec, object]], seconds: float, index: int,
                fade: float = 1.0) -> torch.Tensor:
    """``w`` [n_latent,512] moved along every (spec, Direction) at this frame's strength x fade."""
    return move_latent(w, edits, edit_strengths(edits, seconds, index, fade))


def move_latent(w: torch.Tensor, edits: list[tuple[EditSpec, object]],
                strengths: list[float]) -> torch.Tensor:
    """``w`` [n_latent,512] moved along every (spec, Direction) by its strength (from edit_strengths)."""
    out = w.clone()
    for (spec, direction), strength in zip(edits, strengths):
        if strength:
            out = out + direction.delta(w.shape[0], strength, spec.layers, w.device).to(w.dtype)
    return out
