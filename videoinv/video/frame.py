"""The record a frame travels in through the pipeline."""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Callable

import numpy as np


class FrameRecord:
    """One video frame and what the stages learn about it.

    ``index``: 0-based frame number in the source (presentation order);
    ``pts``/``time_base``: the source timestamp, carried unchanged to the output;
    ``image``: ``[H,W,3]`` uint8 RGB, upright (rotation metadata applied), C-contiguous;
    ``duration``: display duration in ``time_base`` units when the source knows it;
    ``faces``: filled by the face stages (one entry per tracked face).

    A record read from a video also keeps the decoded frame (``source``); its RGB ``image`` is
    made on first use and is **read-only**. A stage that changes the picture assigns a new array
    (``record.image = edited``), or, where it changed only some rectangles, hands those over with
    it (``record.patch(edited, boxes)``). Records whose picture no stage replaced are encoded
    from the decoded frame directly, with no RGB round trip, and patched ones from the decoded
    frame with only the ``changed`` rectangles converted from RGB (see ``Writer``).
    """

    __slots__ = ("index", "pts", "time_base", "duration", "faces", "_image", "_source", "_to_rgb",
                 "modified", "changed", "device_image")

    def __init__(self, index: int, pts: int, time_base: Fraction, image: np.ndarray | None = None,
                 duration: int | None = None, faces: list | None = None, source: Any = None,
                 to_rgb: Callable[[Any], np.ndarray] | None = None):
        if image is None and (source is None or to_rgb is None):
            raise ValueError("a FrameRecord needs an image, or a source frame and its converter")
        self.index = index
        self.pts = pts
        self.time_base = time_base
        self.duration = duration
        self.faces = [] if faces is None else faces
        self._image = image
        self._source = source
        self._to_rgb = to_rgb
        self.modified = False
        self.changed: list[tuple[int, int, int, int]] = []  # (x0, y0, x1, y1) where image differs from source
        self.device_image = None  # [3,H,W] uint8 tensor on the model device while stages work on it

    @property
    def image(self) -> np.ndarray:
        if self._image is None:
            image = self._to_rgb(self._source)
            image.flags.writeable = False
            self._image = image
        return self._image

    @image.setter
    def image(self, value: np.ndarray) -> None:
        self._image = value
        self._source = None
        self.changed = []
        self.modified = True

    def patch(self, image: np.ndarray, boxes) -> None:
        """Replace the picture with ``image``, which equals the current one outside ``boxes``
        (``(x0, y0, x1, y1)`` pixel rectangles, ends exclusive): the decoded frame is kept for
        the rest. Without boxes nothing changed; a picture already replaced stays replaced."""
        boxes = [tuple(int(v) for v in box) for box in boxes]
        if self._source is None:
            self.image = image
            return
        self._image = image
        self.changed = self.changed + boxes
        self.modified = self.modified or bool(boxes)

    @property
    def source(self) -> Any:
        """The decoded frame this record's picture still equals outside ``changed`` (all of it
        when that is empty), or None."""
        return self._source

    def load(self) -> FrameRecord:
        """Make the RGB image now (e.g. on a worker thread); returns the record."""
        _ = self.image
        return self

    @property
    def time(self) -> float:
        """Presentation time in seconds."""
        return float(self.pts * self.time_base)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the RGB image."""
        return self.image.shape[1], self.image.shape[0]

    def __repr__(self) -> str:
        return f"FrameRecord(index={self.index}, pts={self.pts}, time_base={self.time_base}, faces={len(self.faces)})"
