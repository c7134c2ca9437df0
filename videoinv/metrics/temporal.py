"""Temporal metrics: identity consistency (TL-ID/TG-ID), jitter, flow warping error, mask
flicker and the mask-boundary seam.

Images are [H,W,3] RGB (uint8, or float in [0,1]); errors are in [0,1] units; masks are [H,W]
(bool, uint8 0/255 or float in [0,1], thresholded at half their range).
"""

from __future__ import annotations

import cv2
import numpy as np

from .image import to_unit


# -- identity over time (STIT) -------------------------------------------------------------------
def identity_consistency(source_embeddings, output_embeddings) -> dict:
    """STIT's TL-ID and TG-ID from per-frame identity embeddings [N,D] of source and output.

    S_src and S_out are the N x N cosine-similarity matrices, R = S_out / S_src element-wise;
    TL-ID is the mean of R over adjacent frames (the first super-diagonal), TG-ID over all pairs
    i != j. 1 means the output is as consistent as the source; values above 1 happen (an output
    more self-similar than its source), so the per-frame similarity of the output to the source
    (``id_to_source``) is given with them. TL/TG are None for fewer than two frames."""
    s = _unit(source_embeddings)
    o = _unit(output_embeddings)
    if s.shape != o.shape:
        raise ValueError(f"embeddings differ in shape: {s.shape} vs {o.shape}")
    n = len(s)
    per_frame = np.einsum("nd,nd->n", s, o)
    out = {"tl_id": None, "tg_id": None, "id_to_source": [float(v) for v in per_frame],
           "id_to_source_mean": float(per_frame.mean()) if n else None}
    if n < 2:
        return out
    s_src, s_out = s @ s.T, o @ o.T
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = s_out / s_src
    usable = np.abs(s_src) > 1e-6
    adjacent = np.eye(n, k=1, dtype=bool) & usable
    pairs = ~np.eye(n, dtype=bool) & usable
    out["tl_id"] = float(ratio[adjacent].mean()) if adjacent.any() else None
    out["tg_id"] = float(ratio[pairs].mean()) if pairs.any() else None
    return out


def _unit(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    if v.ndim != 2:
        raise ValueError(f"embeddings must be [N,D], not {v.shape}")
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


# -- jitter --------------------------------------------------------------------------------------
def jitter(points) -> float:
    """Std of the second differences over time of points [T, ..., 2] (px, in the points' scale;
    give crop-space landmarks for "px at crop scale"). A constant-velocity path has jitter 0."""
    p = np.asarray(points, np.float64)
    if len(p) < 3:
        return float("nan")
    return float(np.diff(p, 2, axis=0).std())


# -- flow warping error --------------------------------------------------------------------------
def _grey(image) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = np.clip(np.rint(to_unit(a) * 255), 0, 255).astype(np.uint8)
    return cv2.cvtColor(a, cv2.COLOR_RGB2GRAY) if a.ndim == 3 else a


def _sample(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """image(x + flow(x)) by bilinear sampling (edge values outside)."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


class FlowWarpingError:
    """Flow warping error of an output video, with the optical flow of its source (Lai et al. 2018).

    Feed consecutive pairs with :meth:`add`: OpenCV's DIS flow (preset ``medium``) of the source
    from t to t+1 (and back, for the occlusion mask) warps the output frame t+1 onto frame t; the
    error is the mean squared difference (over RGB, [0,1] units) between output t and the warped
    t+1 over the pixels that are visible in both frames: forward and backward flow agree
    (|F + B|^2 < 0.01 (|F|^2 + |B|^2) + 0.5, Sundaram et al.'s test) and t + F lands inside the
    frame. Only the latest pair is held, so any length streams. ``last_flow`` is the latest
    (flow [H,W,2], valid [H,W]) so another output of the same source can reuse it (``flow=``).
    """

    def __init__(self, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM):
        self.dis = cv2.DISOpticalFlow_create(preset)
        self.errors: list[float] = []
        self.last_flow: tuple[np.ndarray, np.ndarray] | None = None

    def flow(self, src_t, src_t1) -> tuple[np.ndarray, np.ndarray]:
        """Forward flow t -> t+1 [H,W,2] (px) and the non-occluded mask [H,W] bool."""
        g0, g1 = _grey(src_t), _grey(src_t1)
        fwd = self.dis.calc(g0, g1, None)
        bwd = self.dis.calc(g1, g0, None)
        back = _sample(bwd, fwd)  # the backward flow where each pixel lands
        mismatch = ((fwd + back) ** 2).sum(-1)
        valid = mismatch < 0.01 * ((fwd ** 2).sum(-1) + (back ** 2).sum(-1)) + 0.5
        h, w = g0.shape
        gx, gy = np.meshgrid(np.arange(w), np.arange(h))
        tx, ty = gx + fwd[..., 0], gy + fwd[..., 1]
        valid &= (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
        return fwd, valid

    def add(self, src_t, src_t1, out_t, out_t1, flow: tuple[np.ndarray, np.ndarray] | None = None) -> float:
        """The warping error of the output pair (NaN when no pixel is valid); also recorded."""
        fwd, valid = flow if flow is not None else self.flow(src_t, src_t1)
        self.last_flow = (fwd, valid)
        a, b = to_unit(out_t).astype(np.float32), to_unit(out_t1).astype(np.float32)
        warped = _sample(b, fwd)
        error = float(((a - warped) ** 2)[valid].mean()) if valid.any() else float("nan")
        self.errors.append(error)
        return error

    @property
    def mean(self) -> float:
        e = [v for v in self.errors if not np.isnan(v)]
        return float(np.mean(e)) if e else float("nan")


# -- masks ---------------------------------------------------------------------------------------
def _binary(mask) -> np.ndarray:
    m = np.asarray(mask)
    if m.dtype == bool:
        return m
    return m >= (127.5 if m.dtype == np.uint8 else 0.5)


def _boundary(m: np.ndarray) -> np.ndarray:
    """The mask's pixels with a 4-neighbour outside it (the frame edge does not count)."""
    u8 = m.astype(np.uint8)
    eroded = cv2.erode(u8, cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3)), borderType=cv2.BORDER_REPLICATE)
    return m & (eroded == 0)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


class MaskFlicker:
    """Streaming mask flicker: :meth:`add` each frame's mask; per consecutive pair it records the
    IoU of the masks and the changed fraction of their boundaries (1 - IoU of the one-pixel inner
    boundaries). :meth:`reset` at a gap (no pair across it). Only the latest mask is held."""

    def __init__(self):
        self.iou: list[float] = []
        self.boundary_change: list[float] = []
        self._previous: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, mask) -> tuple[float, float] | None:
        m = _binary(mask)
        edge = _boundary(m)
        pair = None
        if self._previous is not None:
            pm, pe = self._previous
            pair = (_iou(pm, m), 1.0 - _iou(pe, edge))
            self.iou.append(pair[0])
            self.boundary_change.append(pair[1])
        self._previous = (m, edge)
        return pair

    def reset(self) -> None:
        self._previous = None

    def summary(self) -> dict:
        return {"iou": list(self.iou), "boundary_change": list(self.boundary_change),
                "iou_mean": float(np.mean(self.iou)) if self.iou else None,
                "boundary_change_mean": float(np.mean(self.boundary_change)) if self.boundary_change else None}


def mask_flicker(masks) -> dict:
    """:class:`MaskFlicker` over a sequence: ``{"iou": [...], "boundary_change": [...], "iou_mean",
    "boundary_change_mean"}``."""
    flicker = MaskFlicker()
    for mask in masks:
        flicker.add(mask)
    return flicker.summary()


def boundary_band(mask, width: int = 4) -> np.ndarray:
    """Pixels within the band of ``width`` pixels along the mask boundary: ceil(width/2) pixels
    inside the mask and floor(width/2) outside (Euclidean distance to the other side)."""
    m = _binary(mask).astype(np.uint8)
    inside = cv2.distanceTransform(m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    outside = cv2.distanceTransform(1 - m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    band_in = (m == 1) & (inside <= (width + 1) // 2)
    band_out = (m == 0) & (outside <= width // 2)
    if not (m == 0).any() or not m.any():  # no boundary at all
        return np.zeros(m.shape, bool)
    return band_in | band_out


def seam_error(output, source, mask, width: int = 4) -> float:
    """The SSE seam metric: mean absolute difference ([0,1] units, over RGB) between the blended
    output and the source inside the band of ``width`` pixels along the mask boundary (NaN when the
    mask has no boundary)."""
    band = boundary_band(mask, width)
    if not band.any():
        return float("nan")
    diff = np.abs(to_unit(output) - to_unit(source))
    return float(diff[band].mean())
