"""Semantic segment masks in crop space, from the 68 landmarks (SSE-style segments).

Segments: ``brows``, ``eyes``, ``nose``, ``mouth`` (the outer lip contour and what it encloses),
``lips`` (outer minus inner contour), ``forehead`` (between the brows and the brows raised by half
their distance to the eyes, times ``forehead``, as DeepFaceLab/faceswap's "extended" masks),
``skin`` (the rest of the face) and ``face`` (all of them: the hull of the jaw and the raised
brows). A mask for blending is the union of the chosen segments, each dilated (the eyes
``eye_factor`` times more than the others, as the SSE paper dilates eyes much more, so lashes and
lids move with an edit), minus the union of the excluded ones, then feathered with a Gaussian.

Sizes (``dilate``, ``feather``) are pixels at a 1024 crop and scale with the crop. Masks are drawn
at up to 512 pixels and resized (they are smooth), which keeps them cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SEGMENTS = ("skin", "brows", "eyes", "nose", "mouth", "lips", "forehead", "face")
DRAW_MAX = 512


@dataclass(frozen=True)
class MaskSpec:
    segments: tuple[str, ...] = ("face",)
    exclude: tuple[str, ...] = ()
    dilate: float = 8.0  # px at 1024
    eye_factor: float = 4.0
    feather: float = 15.0  # px at 1024: Gaussian sigma = feather / 2
    forehead: float = 1.0

    def __post_init__(self):
        unknown = [s for s in (*self.segments, *self.exclude) if s not in SEGMENTS]
        if unknown:
            raise ValueError(f"unknown segment(s) {', '.join(unknown)}; valid: {', '.join(SEGMENTS)}")
        if "face" in self.exclude or set(self.segments) <= set(self.exclude):  # face holds every segment
            raise ValueError(f"segments {'+'.join(self.segments)} without {'+'.join(self.exclude)} leave nothing to "
                             "paste; exclude a part of what is pasted (e.g. segments face, exclude eyes)")


def raised_brows(lm: np.ndarray, factor: float = 1.0) -> np.ndarray:
    """The 10 brow points (17-26) moved away from their eye points by factor * half the distance."""
    left_eye = np.stack([0.75 * lm[36] + 0.25 * lm[0], lm[36], lm[37], lm[38], lm[39]])
    right_eye = np.stack([lm[42], lm[43], lm[44], lm[45], 0.75 * lm[45] + 0.25 * lm[16]])
    brows = lm[17:27]
    return brows + factor * 0.5 * (brows - np.concatenate([left_eye, right_eye]))


def _poly(canvas: np.ndarray, points: np.ndarray, scale: float, hull: bool = False) -> np.ndarray:
    pts = points * scale
    if hull:
        pts = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2)
    cv2.fillPoly(canvas, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return canvas


def zeroed(d: int) -> np.ndarray:
    """A [d,d] uint8 canvas of zeros, written by NumPy rather than asked of calloc: under
    jemalloc a calloc of a reused block of this size (64 KB at d = 256) hands the pages back to
    the kernel to get zeros, so every mask drawn faulted them in again (a warm pipelined 60-frame
    edit with random:256:32: median 14.5k page faults a run with calloc, 3.6k without)."""
    return np.full((d, d), 0, np.uint8)


def segment_masks(landmarks: np.ndarray, size: int, forehead: float = 1.0) -> dict[str, np.ndarray]:
    """Binary-ish (anti-aliased uint8) undilated segments [d,d] at the drawing size d <= 512."""
    lm = np.asarray(landmarks, np.float64)
    d = min(size, DRAW_MAX)
    s = d / size
    raised = raised_brows(lm, forehead)

    eyes = _poly(_poly(zeroed(d), lm[36:42], s), lm[42:48], s)
    brows = zeroed(d)
    width = max(1, int(round(0.12 * np.hypot(*(lm[45] - lm[36])) * s)))
    for part in (lm[17:22], lm[22:27]):
        cv2.polylines(brows, [np.round(part * s * 16).astype(np.int32)], False, 255, width, cv2.LINE_AA, shift=4)
    nose_pts = lm[27:36].copy()
    widen = 0.2 * (lm[35] - lm[31])
    nose_pts[4] -= widen  # point 31 outwards
    nose_pts[8] += widen  # point 35 outwards
    nose = _poly(zeroed(d), nose_pts, s, hull=True)
    mouth = _poly(zeroed(d), lm[48:60], s)
    inner = _poly(zeroed(d), lm[60:68], s)
    lips = cv2.subtract(mouth, inner)
    band = np.concatenate([raised[:5], raised[5:], lm[26:21:-1], lm[21:16:-1]])
    forehead_mask = _poly(zeroed(d), band, s)
    face = _poly(zeroed(d), np.concatenate([lm[0:17], raised]), s, hull=True)
    others = np.maximum.reduce([eyes, brows, nose, mouth, forehead_mask])
    skin = cv2.subtract(face, others)
    return {"skin": skin, "brows": brows, "eyes": eyes, "nose": nose, "mouth": mouth, "lips": lips,
            "forehead": forehead_mask, "face": face}


def _dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    r = int(round(radius))
    if r <= 0:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(mask, kernel)


def dilation_radius(segment: str, spec: MaskSpec, size: int) -> float:
    """Dilation in crop pixels for ``segment`` at crop ``size``."""
    base = spec.dilate * size / 1024
    return base * spec.eye_factor if segment == "eyes" else base


def build_mask(landmarks: np.ndarray, size: int, spec: MaskSpec = MaskSpec(),
               segments: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The blending mask [size,size] float32 in [0,1] (``segments`` may come from a parser)."""
    parts = segments if segments is not None else segment_masks(landmarks, size, spec.forehead)
    d = next(iter(parts.values())).shape[0]
    to_draw = d / size
    keep = zeroed(d)
    for name in spec.segments:
        keep = np.maximum(keep, _dilate(parts[name], dilation_radius(name, spec, size) * to_draw))
    for name in spec.exclude:
        keep = cv2.subtract(keep, _dilate(parts[name], dilation_radius(name, spec, size) * to_draw))
    mask = keep.astype(np.float32) / 255
    sigma = spec.feather / 2 * size / 1024 * to_draw
    if sigma > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    if d != size:
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.clip(mask, 0, 1)
