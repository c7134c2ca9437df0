"""Metrics between two videos of the same scene: A (the source, the reference) and B (an edit or an
inversion of it), e.g. ``videoinv bench compare A.mp4 B.mp4``.

Both videos are streamed side by side (memory bounded by the alignment look-ahead). Faces are
found, tracked (the largest face) and aligned on A with the project's own ``detect`` and ``align``
stages; both videos are cropped at A's smoothed FFHQ quads, ``size`` x ``size`` (default 256), and
compared crop to crop:

* per frame: MSE, PSNR, SSIM ([0,1] units, :mod:`.image`), LPIPS (:mod:`.lpips`; null with the
  reason when its weights are missing), identity similarity of B to A (dlib, :mod:`.identity`),
  and the SSE seam error at the boundary of the default face mask built from A's landmarks;
* over time: TL-ID/TG-ID, flow warping error of B with A's flow next to the same measure on A
  itself (its floor; per pair of consecutive frames with a face, listed by ``warp_index``, the
  later frame), landmark jitter of A and of B (68 landmarks predicted in each crop, crop
  px), and the flicker of the face mask (IoU and boundary change of consecutive masks) built from
  B's own landmarks, next to the same measure from A's (so a face that wobbles in B scores worse).

PSNR is infinite for identical crops; JSON has no infinity, so non-finite numbers are written as
null. Frames where A has no face are listed in ``frames_without_face`` and skipped.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from ..errors import InputError
from ..faces.detect import landmarks68
from ..faces.masks import MaskSpec, build_mask
from ..faces.quad import crop
from ..pipeline.runner import Pipeline, prefetch
from ..video.probe import describe
from ..video.reader import Reader
from ..video.timing import check_start, parse_range
from . import identity, image, temporal
from .lpips import LPIPS, LPIPSUnavailable


def _num(x):
    return float(x) if x is not None and np.isfinite(x) else None


def _mean(values) -> float | None:
    v = [x for x in values if x is not None and np.isfinite(x)]
    return float(np.mean(v)) if v else None


_RANGE_HINT = "; if B was made from part of A, give that part with --start/--end"


def _check_sizes(a: Reader, b: Reader, whole: bool) -> None:
    """Refuse videos of different sizes, or different lengths when A is read ``whole`` (a part's
    length is checked as the frames come)."""
    ia, ib = a.info, b.info
    if (ia.width, ia.height) != (ib.width, ib.height):
        raise InputError(f"cannot compare videos of different sizes: {a.path} is {ia.width}x{ia.height}, "
                         f"{b.path} is {ib.width}x{ib.height}")
    if whole and ia.frame_count_exact and ib.frame_count_exact and ia.frame_count != ib.frame_count:
        raise InputError(f"cannot compare videos with different frame counts: {a.path} has {ia.frame_count}, "
                         f"{b.path} has {ib.frame_count}{_RANGE_HINT}")


class _Series:
    """What is kept per frame with a face: numbers, embeddings and crop landmarks (small)."""

    def __init__(self):
        self.rows: dict[str, list] = {k: [] for k in ("index", "mse", "psnr", "ssim", "lpips", "id", "seam")}
        self.emb_a: list[np.ndarray] = []
        self.emb_b: list[np.ndarray] = []
        self.lm_a: list[np.ndarray] = []
        self.lm_b: list[np.ndarray] = []
        self.flicker_a = temporal.MaskFlicker()
        self.flicker_b = temporal.MaskFlicker()
        self.warp_index: list[int] = []  # frame t+1 of each warped pair

    def reset_flicker(self) -> None:
        self.flicker_a.reset()
        self.flicker_b.reset()


def compare_videos(a_path: str | os.PathLike, b_path: str | os.PathLike, size: int = 256,
                   lpips_net: str | None = "alex", identity_backend: str | None = "dlib",
                   detect: str = "detect=every=5:select=largest", smooth: str = "stream",
                   seam_width: int = 4, batch_size: int = 8,
                   on_frame: Callable[[int], None] | None = None, start=None, end=None) -> dict:
    """Compare B with A (see the module docstring); returns a JSON-serialisable dict with
    ``summary`` and ``per_frame`` (lists over the frames with a face, by ``index``).

    ``lpips_net``/``identity_backend``: None skips that metric. ``detect``: the detect stage's
    chain spec; ``smooth``: the align stage's smoothing (stream, offline, none).
    ``on_frame(index)`` is called after each frame (for progress). ``start``/``end``: the part
    of A that B was made from (an edit's ``--start``/``--end``); B is read whole."""
    start, end = parse_range(start, end)  # a bad range stops before any model loads
    if start is not None:
        check_start(start, describe(a_path))
    chain = f"{detect},align=size={size}:smooth={smooth}"
    lpips_metric, lpips_reason = None, None
    if lpips_net is not None:
        try:
            lpips_metric = LPIPS(lpips_net)
        except LPIPSUnavailable as err:
            lpips_reason = str(err)
    encoder = identity.IdentityEncoder(identity_backend) if identity_backend else None
    warp_b, warp_a = temporal.FlowWarpingError(), temporal.FlowWarpingError()
    box = tuple(round(v * size) for v in identity.ALIGNED_FACE_BOX)
    s = _Series()
    no_face: list[int] = []
    frames = 0
    previous = None  # (index, track, crop_a, crop_b)

    pipeline = Pipeline(chain, batch_size=batch_size)
    if pipeline.needs_prepass:
        with Reader(a_path, start, end) as first:
            pipeline.prepass(prefetch(first.frames(), depth=2 * batch_size))
    with Reader(a_path, start, end) as ra, Reader(b_path) as rb, pipeline:
        _check_sizes(ra, rb, whole=start is None and end is None)
        b_frames = iter(rb.frames())
        for record in pipeline.run(prefetch(ra.frames(), depth=2 * batch_size)):
            other = next(b_frames, None)
            if other is None:
                raise InputError(f"cannot compare: {b_path} ends after {frames} frames, {a_path} goes on{_RANGE_HINT}")
            frames += 1
            faces = [f for f in record.faces if f.crop is not None]
            if not faces:
                no_face.append(record.index)
                previous = None
                s.reset_flicker()
                continue
            face = faces[0]
            ca, cb = face.crop, crop(other.image, face.quad, size)
            rows = s.rows
            rows["index"].append(record.index)
            rows["mse"].append(image.mse(ca, cb))
            rows["psnr"].append(image.psnr(ca, cb))
            rows["ssim"].append(image.ssim(ca, cb))
            rows["lpips"].append(lpips_metric(ca, cb) if lpips_metric is not None else None)
            if encoder is not None:
                s.emb_a.append(encoder.embed(ca))
                s.emb_b.append(encoder.embed(cb))
                rows["id"].append(identity.cosine(s.emb_a[-1], s.emb_b[-1]))
            mask = build_mask(face.crop_landmarks, size, MaskSpec())
            rows["seam"].append(temporal.seam_error(cb, ca, mask, seam_width))
            s.lm_a.append(landmarks68(ca, box))
            s.lm_b.append(landmarks68(cb, box))
            if previous is not None and (previous[0] != record.index - 1 or previous[1] != face.track_id):
                s.reset_flicker()
            s.flicker_a.add(build_mask(s.lm_a[-1], size, MaskSpec()))
            s.flicker_b.add(build_mask(s.lm_b[-1], size, MaskSpec()))
            if previous is not None and previous[0] == record.index - 1 and previous[1] == face.track_id:
                warp_a.add(previous[2], ca, previous[2], ca)
                warp_b.add(previous[2], ca, previous[3], cb, flow=warp_a.last_flow)
                s.warp_index.append(record.index)
            previous = (record.index, face.track_id, ca, cb)
            if on_frame is not None:
                on_frame(record.index)
        if next(b_frames, None) is not None:
            raise InputError(f"cannot compare: {a_path} ends after {frames} frames, {b_path} goes on{_RANGE_HINT}")
    return _report(a_path, b_path, size, frames, no_face, s, warp_a, warp_b, lpips_net, lpips_reason, identity_backend)


def _report(a_path, b_path, size, frames, no_face, s: _Series, warp_a, warp_b, lpips_net, lpips_reason,
            identity_backend) -> dict:
    rows = s.rows
    consistency = (temporal.identity_consistency(np.stack(s.emb_a), np.stack(s.emb_b))
                   if s.emb_a else {"tl_id": None, "tg_id": None})
    flicker, flicker_a = s.flicker_b.summary(), s.flicker_a.summary()
    summary = {
        "mse": _mean(rows["mse"]), "psnr": _mean(rows["psnr"]), "ssim": _mean(rows["ssim"]),
        "lpips": _mean(rows["lpips"]) if lpips_reason is None else None,
        "id": _mean(rows["id"]), "tl_id": _num(consistency["tl_id"]), "tg_id": _num(consistency["tg_id"]),
        "warp_error": _num(warp_b.mean), "warp_error_source": _num(warp_a.mean),
        "landmark_jitter": _num(temporal.jitter(s.lm_b)) if s.lm_b else None,
        "landmark_jitter_source": _num(temporal.jitter(s.lm_a)) if s.lm_a else None,
        "seam": _mean(rows["seam"]), "mask_iou": _num(flicker["iou_mean"]),
        "mask_iou_source": _num(flicker_a["iou_mean"]),
        "mask_boundary_change": _num(flicker["boundary_change_mean"]),
        "mask_boundary_change_source": _num(flicker_a["boundary_change_mean"]),
    }
    per_frame = {k: [_num(v) if k != "index" else v for v in values] for k, values in rows.items()}
    per_frame["warp_index"] = s.warp_index
    per_frame["warp_error"] = [_num(v) for v in warp_b.errors]
    per_frame["warp_error_source"] = [_num(v) for v in warp_a.errors]
    return {"a": str(a_path), "b": str(b_path), "frames": frames, "frames_with_face": len(rows["index"]),
            "frames_without_face": no_face, "crop_size": size, "value_range": "[0,1]",
            "lpips_net": lpips_net if lpips_reason is None else None, "lpips_unavailable": lpips_reason,
            "identity_backend": identity_backend, "summary": summary, "per_frame": per_frame}
