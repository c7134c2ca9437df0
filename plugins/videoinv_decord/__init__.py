"""decord as the frame reader (``videoinv edit --reader decord``; ``pip install 'videoinv[decord]'``).

decord decodes with its own FFmpeg build and offers random access and batched decoding
(``get_batch``), which is what frame-sampling jobs (benchmarks over many clips) want. It
applies rotation metadata itself. Metadata (rate, colour tags, audio) comes from our PyAV probe, so
the records look exactly like the core reader's: same frame numbers and timestamps.

Colour: decord converts with FFmpeg's defaults, which read untagged HD video as BT.601. When our
rule assumes BT.709 for a file, the frames are corrected with the 3x3 matrix that maps
"BT.601-decoded" RGB to "BT.709-decoded" RGB (the two decodings share their offsets and scales, so
the difference is linear).
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from typing import Iterator

import numpy as np

log = logging.getLogger("videoinv.plugins.decord")


def register(registry) -> None:
    registry.add("reader", "decord", DecordReader)


def _ycbcr_matrix(kr: float, kb: float) -> np.ndarray:
    """RGB -> (Y, Cb, Cr) without offsets, for luma weights kr, kb."""
    kg = 1 - kr - kb
    return np.array([[kr, kg, kb],
                     [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
                     [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))]])


# RGB as decoded with BT.601 -> RGB as decoded with BT.709, from the same YCbCr samples
BT601_TO_BT709_DECODE = (np.linalg.inv(_ycbcr_matrix(0.2126, 0.0722)) @ _ycbcr_matrix(0.299, 0.114)).astype(np.float32)


class DecordReader:
    """The core Reader's interface (``info``, ``frames()``, ``batches()``, ``start``/``end``),
    backed by decord."""

    def __init__(self, path: str | os.PathLike, start=None, end=None, threads: bool = True,
                 salvage: bool = False):
        try:
            import decord
        except ImportError:
            from videoinv.errors import VideoinvError

            raise VideoinvError("the decord reader needs the decord package: pip install 'videoinv[decord]'") from None
        from videoinv.errors import InputError
        from videoinv.video.probe import describe
        from videoinv.video.timing import TimePoint

        self.path = str(path)
        self.start, self.end = TimePoint.parse(start), TimePoint.parse(end)
        self.salvage = salvage
        self.info = describe(path)
        try:
            self._vr = decord.VideoReader(self.path, ctx=decord.cpu(0), num_threads=0 if threads else 1)
        except decord.DECORDError as err:
            raise InputError(f"decord cannot read {self.path}: {str(err).splitlines()[0]}") from None
        self._decord = decord
        tb = self.info.time_base
        t0 = round(Fraction(self.info.start_time) / tb)
        times = self._vr.get_frame_timestamp(range(len(self._vr)))[:, 0].astype(np.float64)
        self._pts = [t0 + round(t / tb) for t in times]
        self._fix_matrix = self.info.colour.matrix == "bt709" and "matrix" in self.info.colour.assumed
        if self.info.colour.matrix not in ("bt709", "bt601", "rgb") and not self._fix_matrix:
            log.warning("decord decodes %s with FFmpeg's defaults; its %s colours are not corrected",
                        self.path, self.info.colour.matrix)
        self._range = self._select(t0, tb)

    def _select(self, t0: int, tb: Fraction) -> range:
        first, last = 0, len(self._pts)
        if self.start is not None:
            first = self.start.frame if self.start.frame is not None else \
                sum(1 for p in self._pts if p < t0 + round(self.start.seconds / tb))
        if self.end is not None:
            last = min(last, self.end.frame) if self.end.frame is not None else \
                sum(1 for p in self._pts if p < t0 + round(self.end.seconds / tb))
        return range(min(first, last), last)

    def close(self) -> None:
        self._vr = None

    def __enter__(self) -> DecordReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self):
        return self.frames()

    def frames(self, rgb: bool = True) -> Iterator:
        for batch in self.batches(8):
            yield from batch

    def batches(self, size: int) -> Iterator[list]:
        """Batches decoded with decord's ``get_batch``."""
        from videoinv.errors import InputError
        from videoinv.video.frame import FrameRecord

        indices = list(self._range)
        for i in range(0, len(indices), size):
            chunk = indices[i:i + size]
            try:
                images = self._vr.get_batch(chunk).asnumpy()
            except self._decord.DECORDError as err:
                if not self.salvage:
                    raise InputError(f"decord failed on {self.path} near frame {chunk[0]}: "
                                     f"{str(err).splitlines()[0]} (--salvage skips unreadable frames)") from None
                log.warning("skipped frames %d-%d of %s: %s", chunk[0], chunk[-1], self.path, err)
                continue
            yield [FrameRecord(index=n, pts=self._pts[n], time_base=self.info.time_base, image=self._colour(img))
                   for n, img in zip(chunk, images)]

    def _colour(self, image: np.ndarray) -> np.ndarray:
        if not self._fix_matrix:
            return np.ascontiguousarray(image)
        import cv2

        fixed = cv2.transform(image.astype(np.float32), BT601_TO_BT709_DECODE)
        return np.clip(np.rint(fixed), 0, 255).astype(np.uint8)
