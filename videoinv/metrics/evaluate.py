"""One video through the pipeline, measured frame by frame: what the RAVDESS evaluation records.

The video runs through :func:`videoinv.pipeline.jobs.edit_video` with the face-editing chain (no
edit unless the settings give one; the largest face only); its ``on_frame`` callback receives each
finished record, whose face carries the aligned input crop (``face.crop``), the synthesized
inversion/edit crop (``face.edited``), the paste mask and the quad. A second reader walks the
source in step, for the frame-level seam.

Per frame (both crops resized to ``crop`` px, area-averaged when shrinking, [0,1] values): MSE,
PSNR, SSIM, LPIPS (None when unavailable), identity similarity (input vs synthesized crop); the
seam (SSE's band metric, frame pixels, pasted output vs source); the flow warping error of the
synthesized crops with the flow of the input crops (and, as the floor the flow itself leaves, the
same error of the input crops). Per video: their means, STIT's TL-ID/TG-ID (input crops as the
source, synthesized crops as the output), the jitter of the crop quad's corners (px at crop
scale), the paste mask's flicker (IoU and boundary change of consecutive frame-space masks) and
throughput (frames per second of the pipeline alone, and with the metrics).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..errors import InputError
from ..faces.quad import Quad, frame_roi, uncrop
from .identity import IdentityEncoder, cosine
from .image import mse, psnr, ssim
from .lpips import LPIPS, LPIPSUnavailable
from .temporal import FlowWarpingError, identity_consistency, jitter, mask_flicker, seam_error

log = logging.getLogger(__name__)

PER_FRAME = ("mse", "psnr", "ssim", "lpips", "id", "seam", "warp")
MASK_SCALE = 4  # frame-space masks for the flicker metric are kept at 1/4 resolution


def finite(value) -> float | None:
    """A float, or None for NaN/inf/None (results are strict JSON)."""
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def mean(values) -> float | None:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(np.mean(v)) if v else None


def resize_crop(crop: np.ndarray, size: int) -> np.ndarray:
    if crop.shape[0] == size:
        return crop
    interpolation = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(crop, (size, size), interpolation=interpolation)


class VideoEvaluator:
    """Measures videos under one :class:`~videoinv.metrics.ravdess.BenchSettings`."""

    def __init__(self, settings):
        self.settings = settings
        self.identity = IdentityEncoder(settings.identity)
        try:
            self.lpips: LPIPS | None = LPIPS(settings.lpips_net)
            self.lpips_reason: str | None = None
        except LPIPSUnavailable as err:
            self.lpips, self.lpips_reason = None, str(err)
            log.warning("%s", err)

    def options(self):
        from ..edit.recipe import EditOptions

        s = self.settings
        return EditOptions(edits=list(s.edits), model=s.model, device=s.device, faces="largest", every=s.every,
                           smooth=s.smooth, latent_smooth=s.latent_smooth, seed=s.seed,
                           warp="cv2")  # the metrics read both crops in host memory, also on a GPU

    def evaluate(self, source: str | Path, output: str | Path,
                 on_frame: Callable[[], None] | None = None) -> dict:
        """Run the pipeline over ``source`` into ``output`` (overwritten) and return the result
        (JSON-ready: per-frame lists, per-video summary, throughput)."""
        from ..pipeline.jobs import edit_video
        from ..video.reader import Reader
        from ..video.writer import EncodeOptions

        s = self.settings
        state = _State(self, s.crop)
        end = f"{s.frames}f" if s.frames else None
        with Reader(source, end=end) as src_reader:
            sources = iter(src_reader.frames(rgb=True))

            def collect(record):
                t0 = time.perf_counter()
                src = next(sources, None)
                while src is not None and src.index < record.index:
                    src = next(sources, None)
                if src is None or src.index != record.index:
                    raise InputError(f"{source}: frame {record.index} could not be read a second time")
                state.add(record, src.image)
                state.metric_seconds += time.perf_counter() - t0
                if on_frame is not None:
                    on_frame()

            started = time.perf_counter()
            summary = edit_video(source, output, options=self.options(), end=end, overwrite=True,
                                 encode=EncodeOptions(crf=20, preset="veryfast"), on_frame=collect)
            total = time.perf_counter() - started
        return state.result(summary, total)


class _State:
    """What one video's frames accumulate."""

    def __init__(self, ev: VideoEvaluator, size: int):
        self.ev, self.size = ev, size
        self.frames: dict[str, list] = {k: [] for k in ("index", "time", "face", *PER_FRAME)}
        self.src_emb: list[np.ndarray] = []
        self.out_emb: list[np.ndarray] = []
        self.corners: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []
        self.warp = FlowWarpingError()
        self.warp_floor = FlowWarpingError()
        self.previous: tuple[int, np.ndarray, np.ndarray] | None = None  # frame index, input, output crops
        self.metric_seconds = 0.0
        self.crop_size: int | None = None
        self.faces_detected = 0

    def add(self, record, source_image: np.ndarray) -> None:
        f = self.frames
        f["index"].append(record.index)
        f["time"].append(round(record.time, 4))
        face = next((x for x in record.faces if x.crop is not None and x.edited is not None), None)
        f["face"].append(face is not None)
        if face is None:
            for k in PER_FRAME:
                f[k].append(None)
            self.previous = None
            return
        self.crop_size = face.crop.shape[0]
        self.faces_detected += bool(face.detected)
        a, b = resize_crop(face.crop, self.size), resize_crop(face.edited, self.size)
        f["mse"].append(finite(mse(a, b)))
        f["psnr"].append(finite(psnr(a, b)))
        f["ssim"].append(finite(ssim(a, b)))
        f["lpips"].append(finite(self.ev.lpips(a, b)) if self.ev.lpips is not None else None)
        ea, eb = self.ev.identity.embed(a), self.ev.identity.embed(b)
        self.src_emb.append(ea)
        self.out_emb.append(eb)
        f["id"].append(finite(cosine(ea, eb)))
        f["seam"].append(self._seam(face, record.image, source_image))
        self.corners.append(face.quad.corners() * (self.size / face.quad.size))  # px at crop scale
        self.masks.append(self._small_mask(face, record.image.shape))
        if self.previous is not None and self.previous[0] == record.index - 1:
            _, pa, pb = self.previous
            f["warp"].append(finite(self.warp.add(pa, a, pb, b)))
            self.warp_floor.add(pa, a, pa, a, flow=self.warp.last_flow)
        else:
            f["warp"].append(None)
        self.previous = (record.index, a, b)

    @staticmethod
    def _frame_mask(face, quad: Quad, shape) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """The paste mask (times the track's fade) in frame space over the quad's region."""
        roi = frame_roi(quad, shape)
        if face.mask is None:
            return np.zeros((roi[3] - roi[1], roi[2] - roi[0]), np.float32), roi
        return uncrop(face.mask.astype(np.float32), quad, roi, cv2.INTER_LINEAR) * face.fade, roi

    def _seam(self, face, output: np.ndarray, source: np.ndarray) -> float | None:
        mask, (x0, y0, x1, y1) = self._frame_mask(face, face.quad, output.shape)
        if mask.size == 0:
            return None
        return finite(seam_error(output[y0:y1, x0:x1], source[y0:y1, x0:x1], mask))

    def _small_mask(self, face, shape) -> np.ndarray:
        h, w = shape[0] // MASK_SCALE, shape[1] // MASK_SCALE
        q = face.quad
        mask, (x0, y0, x1, y1) = self._frame_mask(face, Quad(q.c / MASK_SCALE, q.x / MASK_SCALE, q.y / MASK_SCALE),
                                                   (h, w))
        small = np.zeros((h, w), bool)
        small[y0:y1, x0:x1] = mask >= 0.5
        return small

    def result(self, summary: dict, total: float) -> dict:
        f = self.frames
        n = len(f["index"])
        with_face = sum(f["face"])
        consistency = identity_consistency(np.array(self.src_emb).reshape(-1, 128),
                                           np.array(self.out_emb).reshape(-1, 128)) if self.src_emb else {}
        flicker = mask_flicker(self.masks) if self.masks else {}
        pipeline = max(total - self.metric_seconds, 1e-9)
        means = {k: mean(f[k]) for k in PER_FRAME}
        return {
            "frames": n, "frames_with_face": with_face, "frames_detected": self.faces_detected,
            "crop_native": self.crop_size, "crop": self.size,
            "output": {k: summary[k] for k in ("output", "width", "height", "codec", "audio")},
            "lpips_unavailable": self.ev.lpips_reason,
            "summary": {
                **means,
                "tl_id": finite(consistency.get("tl_id")), "tg_id": finite(consistency.get("tg_id")),
                "quad_jitter": finite(jitter(np.array(self.corners))) if len(self.corners) >= 3 else None,
                "warp_floor": finite(self.warp_floor.mean) if self.warp_floor.errors else None,
                "mask_iou": finite(flicker.get("iou_mean")),
                "mask_boundary_change": finite(flicker.get("boundary_change_mean")),
            },
            "throughput": {"seconds": round(total, 3), "metric_seconds": round(self.metric_seconds, 3),
                           "fps": round(n / pipeline, 3), "fps_with_metrics": round(n / total, 3) if total else None},
            "per_frame": f,
        }
