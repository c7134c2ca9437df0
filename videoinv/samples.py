"""A synthetic talking-head-like clip to try the tool on (``videoinv sample``) and to benchmark.

The face is scikit-image's bundled astronaut photograph (a real face, offline; installed with the
``sample`` extra), gently moving, turning and zooming over a drifting background; the sound is a
tone with a slow tremolo. Without scikit-image a drawn test pattern is used instead.
Encoded with libx264 (BT.709, TV range, tagged) and AAC, written atomically.
"""

from __future__ import annotations

import logging
import math
import os
from fractions import Fraction

import av
import cv2
import numpy as np

from .files import atomic_output
from .video.writer import container_format

log = logging.getLogger(__name__)


def _face_image() -> np.ndarray | None:
    try:
        from skimage import data
    except ImportError:
        log.warning("scikit-image is not installed (pip install 'videoinv[sample]'): "
                    "the sample shows a test pattern instead of a face")
        return None
    return np.ascontiguousarray(data.astronaut()[0:280, 80:360])  # head and shoulders


def _pattern(size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.stack([x, y, 1 - x * y], axis=-1) * 200 + 30
    cv2.circle(img, (size // 2, size // 2), size // 3, (230, 180, 150), -1, cv2.LINE_AA)
    return img.astype(np.uint8)


class SampleScene:
    """Renders frame ``i`` of the sample at ``width x height`` (RGB uint8)."""

    def __init__(self, width: int, height: int, fps: float):
        self.width, self.height, self.fps = width, height, fps
        face = _face_image()
        self.face = face if face is not None else _pattern(512)
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        self._gx, self._gy = x / width, y / height

    def frame(self, i: int) -> np.ndarray:
        t = i / self.fps
        w, h = self.width, self.height
        bg = np.empty((h, w, 3), np.float32)
        phase = 0.15 * math.sin(2 * math.pi * t / 7)
        bg[..., 0] = 60 + 50 * (self._gx + phase)
        bg[..., 1] = 70 + 40 * self._gy
        bg[..., 2] = 90 + 50 * (1 - self._gx)
        frame = np.clip(bg, 0, 255).astype(np.uint8)
        side = int(0.8 * min(w, h))
        scale = side / self.face.shape[0] * (1 + 0.05 * math.sin(2 * math.pi * t / 4))
        angle = 6 * math.sin(2 * math.pi * t / 3)
        cx = w / 2 + 0.08 * w * math.sin(2 * math.pi * t / 5)
        cy = h / 2 + 0.04 * h * math.sin(2 * math.pi * t / 3.5)
        m = cv2.getRotationMatrix2D((self.face.shape[1] / 2, self.face.shape[0] / 2), angle, scale)
        m[:, 2] += (cx - self.face.shape[1] / 2, cy - self.face.shape[0] / 2)
        mask = np.zeros(self.face.shape[:2], np.uint8)
        cv2.circle(mask, (mask.shape[1] // 2, mask.shape[0] // 2), int(0.49 * mask.shape[0]), 255, -1, cv2.LINE_AA)
        warped = cv2.warpAffine(self.face, m, (w, h), flags=cv2.INTER_LINEAR)
        alpha = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR)[..., None].astype(np.float32) / 255
        return (warped * alpha + frame * (1 - alpha)).astype(np.uint8)


def make_sample(path: str | os.PathLike, seconds: float = 5.0, size: tuple[int, int] = (1280, 720),
                fps: Fraction | int = 30, audio: bool = True, overwrite: bool = False, crf: int = 18) -> int:
    """Write the sample clip; returns its frame count."""
    width, height = size
    fps = Fraction(fps)
    n = max(1, round(seconds * fps))
    scene = SampleScene(width, height, float(fps))
    with atomic_output(path, overwrite=overwrite) as tmp, av.open(str(tmp), "w", format=container_format(path)) as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.codec_context.colorspace = vs.codec_context.color_primaries = vs.codec_context.color_trc = 1
        vs.codec_context.color_range = 1
        vs.codec_context.thread_type = "AUTO"
        vs.options = {"crf": str(crf), "preset": "veryfast"}
        tone = _Tone(out, out.add_stream("aac", rate=48000, layout="mono")) if audio else None
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(scene.frame(i), format="rgb24").reformat(
                format="yuv420p", dst_colorspace=1, src_color_range=2, dst_color_range=1)
            frame.pts = i
            frame.time_base = 1 / fps
            for packet in vs.encode(frame):
                out.mux(packet)
            if tone is not None:
                tone.write_until((i + 1) / fps)
        for packet in vs.encode(None):
            out.mux(packet)
        if tone is not None:
            tone.close()
    return n


class _Tone:
    """A 220 Hz tone with a 3 Hz tremolo, encoded in step with the video."""

    def __init__(self, out, stream, rate: int = 48000):
        self.out, self.stream, self.rate, self.pos = out, stream, rate, 0

    def write_until(self, seconds: Fraction) -> None:
        end = int(seconds * self.rate)
        while self.pos < end:
            t = np.arange(self.pos, min(self.pos + 1024, end)) / self.rate
            wave = 0.2 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
            frame = av.AudioFrame.from_ndarray(wave.astype(np.float32)[None], format="fltp", layout="mono")
            frame.sample_rate = self.rate
            frame.pts = self.pos
            frame.time_base = Fraction(1, self.rate)
            self._mux(self.stream.encode(frame))
            self.pos += len(t)

    def close(self) -> None:
        self._mux(self.stream.encode(None))

    def _mux(self, packets) -> None:
        for packet in packets:
            self.out.mux(packet)


