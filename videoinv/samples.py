"""Synthetic clips with real faces: the demo sample (``videoinv sample``), and the scenes the tests
and benchmarks use (a face moving, turning and changing brightness; two faces crossing; a face
leaving and re-entering; a cut to a face-free picture; no face at all).

The face is scikit-image's bundled astronaut photograph (a real face, offline; the ``sample``
extra installs it), pasted with a soft round edge through a known affine transform per frame, so
where its landmarks truly are is known (``FaceScene.true_landmarks``). Without scikit-image a drawn
test pattern stands in (and nothing is detected). Clips are encoded with libx264 (BT.709, TV range,
tagged; ``lossless`` for qp 0) and optionally an AAC tone, written atomically.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import av
import cv2
import numpy as np

from .errors import OutputError, VideoinvError
from .files import atomic_output
from .video.writer import check_container, container_format

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=None)
def face_image() -> np.ndarray | None:
    """The astronaut's head and shoulders, 280x280 RGB (None without scikit-image)."""
    try:
        from skimage import data
    except ImportError:
        log.warning("scikit-image is not installed (pip install 'videoinv[sample]'): "
                    "the sample shows a test pattern instead of a face")
        return None
    return np.ascontiguousarray(data.astronaut()[0:280, 80:360])


def _pattern(size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.stack([x, y, 1 - x * y], axis=-1) * 200 + 30
    cv2.circle(img, (size // 2, size // 2), size // 3, (230, 180, 150), -1, cv2.LINE_AA)
    return img.astype(np.uint8)


@dataclass
class Motion:
    """Where a face is at time t (seconds): centre (px), roll (degrees, counter-clockwise),
    display size (px of the 280-px source square) and brightness gain."""

    centre: Callable[[float], tuple[float, float]]
    angle: Callable[[float], float] = lambda t: 0.0
    size: Callable[[float], float] = lambda t: 480.0
    gain: Callable[[float], float] = lambda t: 1.0


class FaceScene:
    """Renders frames of faces moving over a drifting background (later faces in front)."""

    def __init__(self, width: int, height: int, fps: float, motions: list[Motion],
                 cut_at: float | None = None, faces: bool = True):
        self.width, self.height, self.fps = width, height, fps
        self.motions = motions if faces else []
        self.cut_at = cut_at
        source = face_image()
        self.face = source if source is not None else _pattern(280)
        n = self.face.shape[0]
        mask = np.zeros((n, n), np.float32)
        cv2.circle(mask, (n // 2, n // 2), int(0.47 * n), 1.0, -1, cv2.LINE_AA)
        self.alpha = cv2.GaussianBlur(mask, (0, 0), 3)
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        self._gx, self._gy = x / width, y / height

    def transform(self, k: int, i: int) -> np.ndarray:
        """2x3 affine: face-image pixel -> frame pixel, for face k in frame i."""
        t = i / self.fps
        m = self.motions[k]
        n = self.face.shape[0]
        matrix = cv2.getRotationMatrix2D((n / 2, n / 2), m.angle(t), m.size(t) / n)
        cx, cy = m.centre(t)
        matrix[:, 2] += (cx - n / 2, cy - n / 2)
        return matrix

    def visible(self, i: int) -> bool:
        return self.cut_at is None or i / self.fps < self.cut_at

    def frame(self, i: int) -> np.ndarray:
        t = i / self.fps
        if not self.visible(i):
            return _coffee(self.width, self.height)
        phase = 0.15 * math.sin(2 * math.pi * t / 7)
        bg = np.empty((self.height, self.width, 3), np.float32)
        bg[..., 0] = 60 + 50 * (self._gx + phase)
        bg[..., 1] = 70 + 40 * self._gy
        bg[..., 2] = 90 + 50 * (1 - self._gx)
        out = bg
        for k, motion in enumerate(self.motions):
            matrix = self.transform(k, i)
            size = (self.width, self.height)
            face = cv2.warpAffine(self.face, matrix, size, flags=cv2.INTER_LINEAR).astype(np.float32)
            a = cv2.warpAffine(self.alpha, matrix, size, flags=cv2.INTER_LINEAR)[..., None]
            out = face * motion.gain(t) * a + out * (1 - a)
        return np.clip(out, 0, 255).astype(np.uint8)

    def true_landmarks(self, k: int, i: int) -> np.ndarray:
        """Face k's 68 landmarks in frame i, from the source photo's landmarks and the transform."""
        source = _source_landmarks()
        return source @ self.transform(k, i)[:, :2].T + self.transform(k, i)[:, 2]


@functools.lru_cache(maxsize=None)
def _source_landmarks() -> np.ndarray:
    from .faces.detect import HogDetector, landmarks68

    face = face_image()
    if face is None:
        raise RuntimeError("the true landmarks need scikit-image's astronaut")
    big = cv2.resize(face, (560, 560), interpolation=cv2.INTER_CUBIC)
    found = HogDetector(detect_size=560, upsample=1, threshold=0.0).detect(big)
    best = max(found, key=lambda d: d.score)
    return landmarks68(big, best.box).astype(np.float64) / 2 - 0.25  # pixel centres of the 2x image


@functools.lru_cache(maxsize=4)
def _coffee(width: int, height: int) -> np.ndarray:
    try:
        from skimage import data

        picture = data.coffee()
    except ImportError:
        picture = _pattern(400)
    return cv2.resize(picture, (width, height), interpolation=cv2.INTER_AREA)


# -- the scenes ----------------------------------------------------------------------------------
def moving_face(width=1280, height=720, fps=30) -> FaceScene:
    """One face along a path across the frame, rolling +-20 degrees, scaling and brightening."""
    w, h = width, height
    return FaceScene(width, height, fps, [Motion(
        centre=lambda t: (w / 2 + 0.25 * w * math.sin(2 * math.pi * t / 6), h / 2 + 0.1 * h * math.sin(2 * math.pi * t / 4)),
        angle=lambda t: 20 * math.sin(2 * math.pi * t / 5),
        size=lambda t: 0.66 * h * (1 + 0.2 * math.sin(2 * math.pi * t / 3.5)),
        gain=lambda t: 1 + 0.25 * math.sin(2 * math.pi * t / 3))])


def crossing_faces(width=1280, height=720, fps=30, seconds=3.0) -> FaceScene:
    """Two copies of the face passing each other (the second one in front)."""
    w, h = width, height
    left, right = 0.22 * w, 0.78 * w
    return FaceScene(width, height, fps, [
        Motion(centre=lambda t: (left + (right - left) * t / seconds, h * 0.5), size=lambda t: 0.55 * h),
        Motion(centre=lambda t: (right - (right - left) * t / seconds, h * 0.56), size=lambda t: 0.55 * h)])


def leaving_face(width=1280, height=720, fps=30, seconds=4.0) -> FaceScene:
    """A face that walks out to the right (fully out of the frame) and comes back."""
    w, h = width, height
    return FaceScene(width, height, fps, [Motion(
        centre=lambda t: (w * 0.5 + w * 0.85 * math.sin(math.pi * t / seconds), h * 0.5),
        size=lambda t: 0.6 * h)])


def cut_scene(width=1280, height=720, fps=30, cut_at=1.0) -> FaceScene:
    """A face, then a cut to a face-free picture (scikit-image's coffee)."""
    scene = moving_face(width, height, fps)
    scene.cut_at = cut_at
    return scene


def no_face(width=1280, height=720, fps=30) -> FaceScene:
    return FaceScene(width, height, fps, [], faces=False)


def write_clip(path: str | os.PathLike, scene: FaceScene, frames: int, lossless: bool = False,
               audio: bool = False, overwrite: bool = False, crf: int = 18) -> int:
    """Encode ``frames`` frames of ``scene``; returns the frame count."""
    fps = Fraction(scene.fps).limit_denominator(1001)
    with atomic_output(path, overwrite=overwrite) as tmp, av.open(str(tmp), "w", format=container_format(path)) as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height = scene.width, scene.height
        vs.pix_fmt = "yuv444p" if lossless else "yuv420p"
        cc = vs.codec_context
        cc.colorspace = cc.color_primaries = cc.color_trc = 1
        cc.color_range = 1
        cc.thread_type = "AUTO"
        vs.options = {"qp": "0", "preset": "ultrafast"} if lossless else {"crf": str(crf), "preset": "veryfast"}
        tone = _Tone(out, out.add_stream("aac", rate=48000, layout="mono")) if audio else None
        converter = av.video.reformatter.VideoReformatter()  # kept: a frame's own starts threads each time
        for i in range(frames):
            frame = converter.reformat(av.VideoFrame.from_ndarray(scene.frame(i), format="rgb24"),
                                       format=vs.pix_fmt, dst_colorspace=1, src_color_range=2, dst_color_range=1)
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
    return frames


def make_sample(path: str | os.PathLike, seconds: float = 5.0, size: tuple[int, int] = (1280, 720),
                fps: Fraction | int = 30, audio: bool = True, overwrite: bool = False, crf: int = 18) -> int:
    """The demo clip: one face moving gently, with sound; returns its frame count."""
    width, height = size
    if width % 2 or height % 2:
        raise VideoinvError(f"sample size {width}x{height}: the width and height must be even (the clip is "
                            f"4:2:0 H.264); try {width + width % 2}x{height + height % 2}")
    try:
        check_container(path, "libx264", "aac" if audio else None)
    except OutputError:
        raise OutputError(f"cannot write {os.path.basename(str(path))}: the sample is H.264 video with AAC "
                          "audio; name it .mp4, .mkv or .mov") from None
    w, h = width, height
    scene = FaceScene(width, height, float(fps), [Motion(
        centre=lambda t: (w / 2 + 0.08 * w * math.sin(2 * math.pi * t / 5), h / 2 + 0.04 * h * math.sin(2 * math.pi * t / 3.5)),
        angle=lambda t: 6 * math.sin(2 * math.pi * t / 3),
        size=lambda t: 0.8 * min(w, h) * (1 + 0.05 * math.sin(2 * math.pi * t / 4)))])
    return write_clip(path, scene, max(1, round(seconds * fps)), audio=audio, overwrite=overwrite, crf=crf)


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
