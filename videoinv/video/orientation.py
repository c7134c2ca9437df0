"""Display-matrix rotation and flips, applied the way the ffmpeg command line auto-rotates.

A stream may carry a 3x3 display matrix (MP4 ``tkhd`` matrix, the old ``rotate`` tag, H.264
display-orientation SEI). The ffmpeg CLI reads the rotation angle from it, rounds it, and for the
multiples of 90 degrees inserts ``transpose``/``hflip``/``vflip``; the signs of the matrix entries
decide whether a flip is part of it. We reproduce exactly that, as a numpy view transform.
Angles that are not multiples of 90 degrees are rounded to the nearest one (with a warning).
"""

from __future__ import annotations

import logging
import math

import numpy as np

log = logging.getLogger(__name__)

# Transforms of an [H, W, C] array, named like ffmpeg's filters.
_OPS = {
    "none": lambda a: a,
    "clock": lambda a: np.rot90(a, -1),           # rotate 90 degrees clockwise
    "cclock": lambda a: np.rot90(a, 1),           # rotate 90 degrees counter-clockwise
    "cclock_flip": lambda a: a.transpose(1, 0, 2),  # transpose about the main diagonal
    "clock_flip": lambda a: np.rot90(a, 2).transpose(1, 0, 2),  # anti-diagonal transpose
    "hflip": lambda a: a[:, ::-1],
    "vflip": lambda a: a[::-1],
    "hflip+vflip": lambda a: a[::-1, ::-1],
}


def parse_display_matrix(raw: bytes) -> list[int]:
    """The nine little-endian int32 entries of an FFmpeg display matrix."""
    return [int(v) for v in np.frombuffer(raw[:36], dtype="<i4")]


def matrix_rotation(m: list[int]) -> float:
    """The angle av_display_rotation_get reports (counter-clockwise degrees)."""
    scale0 = math.hypot(m[0], m[3])
    scale1 = math.hypot(m[1], m[4])
    if scale0 == 0 or scale1 == 0:
        return math.nan
    return -math.degrees(math.atan2(m[1] / scale1, m[0] / scale0))


def orientation_op(m: list[int] | None) -> str:
    """The name of the transform (a key of ``_OPS``) that makes frames upright."""
    if m is None:
        return "none"
    rot = matrix_rotation(m)
    if math.isnan(rot):
        log.warning("ignoring a degenerate display matrix")
        return "none"
    theta = -round(rot)
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    if not any(abs(theta - a) < 1.0 for a in (0, 90, 180, 270, 360)):
        nearest = round(theta / 90) * 90 % 360
        log.warning("rotation of %.0f degrees is not a multiple of 90; using %d", theta, nearest)
        theta = nearest
    if abs(theta - 90) < 1.0:
        return "cclock_flip" if m[3] > 0 else "clock"
    if abs(theta - 270) < 1.0:
        return "clock_flip" if m[3] < 0 else "cclock"
    if abs(theta - 180) < 1.0:
        flips = [name for name, on in (("hflip", m[0] < 0), ("vflip", m[4] < 0)) if on]
        return "+".join(flips) if flips else "none"
    return "vflip" if m[4] < 0 else "none"


def apply_orientation(image: np.ndarray, op: str) -> np.ndarray:
    """Apply ``op`` and return a C-contiguous array (a copy only when ``op`` moves pixels)."""
    out = _OPS[op](image)
    return out if op == "none" else np.ascontiguousarray(out)


def swaps_axes(op: str) -> bool:
    """Whether ``op`` exchanges width and height."""
    return op in ("clock", "cclock", "cclock_flip", "clock_flip")


_INVERSE = {"none": "none", "clock": "cclock", "cclock": "clock", "cclock_flip": "cclock_flip",
            "clock_flip": "clock_flip", "hflip": "hflip", "vflip": "vflip", "hflip+vflip": "hflip+vflip"}


def map_box(box, op: str, size: tuple[int, int], inverse: bool = False) -> tuple[int, int, int, int]:
    """The box ``(x0, y0, x1, y1)`` (ends exclusive, not empty) of a ``size`` ``(width, height)``
    frame, where its pixels lie after ``op`` (or, with ``inverse``, where they lay before it)."""
    w, h = size
    before = (h, w) if swaps_axes(op) else (w, h)  # the frame the looked-up op starts from
    op = op if inverse else _INVERSE[op]
    bw, bh = before
    # index views (no copies) that say where each pixel of op's output came from
    rows = _OPS[op](np.broadcast_to(np.arange(bh)[:, None, None], (bh, bw, 1)))
    cols = _OPS[op](np.broadcast_to(np.arange(bw)[None, :, None], (bh, bw, 1)))
    x0, y0, x1, y1 = (int(v) for v in box)
    ys, xs = [y0, y1 - 1], [x0, x1 - 1]
    r = [int(rows[y, x, 0]) for y in ys for x in xs]
    c = [int(cols[y, x, 0]) for y in ys for x in xs]
    return min(c), min(r), max(c) + 1, max(r) + 1
