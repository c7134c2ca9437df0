"""Side-by-side comparison videos: the source on the left, an output (inversion or edit) on the
right, each scaled to the same height, with the source's timing and audio."""

from __future__ import annotations

import os

import cv2
import numpy as np

from ..video.audio import AudioPlan
from ..video.frame import FrameRecord
from ..video.reader import Reader
from ..video.writer import EncodeOptions, Writer


def _fit(image: np.ndarray, height: int) -> np.ndarray:
    h, w = image.shape[:2]
    width = max(2, round(w * height / h / 2) * 2)
    if (w, h) == (width, height):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if h > height else cv2.INTER_LINEAR)


def side_by_side(source: str | os.PathLike, output: str | os.PathLike, dest: str | os.PathLike,
                 height: int = 360, overwrite: bool = True, encode: EncodeOptions | None = None) -> int:
    """Write ``dest`` = ``source`` | ``output`` frame by frame (``height`` px high, a 4-px grey
    gap between them); stops at the shorter video; keeps the source's audio. Returns the frame
    count."""
    height = max(2, height // 2 * 2)
    gap = np.full((height, 4, 3), 128, np.uint8)
    with Reader(source) as left, Reader(output) as right:
        info = left.info
        writer = None
        try:
            for a, b in zip(left.frames(rgb=True), right.frames(rgb=True)):
                image = np.concatenate([_fit(a.image, height), gap, _fit(b.image, height)], axis=1)
                if writer is None:
                    audio = AudioPlan(path=str(source), cut=True) if info.has_audio else None
                    writer = Writer(dest, image.shape[1], image.shape[0], info.time_base, info.fps,
                                    encode or EncodeOptions(crf=23, preset="veryfast"), info, audio,
                                    inputs=[source, output], overwrite=overwrite, passthrough=False)
                writer.write(FrameRecord(a.index, a.pts, a.time_base, image=image, duration=a.duration))
            if writer is None:
                return 0
            writer.close()
            return writer.frames_written
        except BaseException as err:
            if writer is not None:
                writer.abort(err)
            raise
