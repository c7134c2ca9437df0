"""The record a frame travels in through the pipeline."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from fractions import Fraction
from typing import Any, Callable, Iterator

import numpy as np


class FrameRecord:
    """One video frame and what the stages learn about it.

    ``index``: 0-based frame number in the source (presentation order);
    ``pts``/``time_base``: the source timestamp, carried unchanged to the output;
    ``image``: ``[H,W,3]`` uint8 RGB, upright (rotation metadata applied), C-contiguous;
    ``duration``: display duration in ``time_base`` units when the source knows it;
    ``faces``: filled by the face stages (one entry per tracked face).

    A record read from a video also keeps the decoded frame (``source``); its RGB ``image`` is
    made on first use and is **read-only**. A stage that looks at part of the picture asks for
    ``record.region(box)``: with the reader's ``regions`` converter only that part is converted
    (the same pixels), until something wants the whole ``image`` (or while the converter is
    still learning the stream's chroma siting: then the first region converts the whole
    picture). A stage that changes the picture assigns a new array (``record.image =
    edited``), or hands over rectangles: the new pixels of one (``record.patch_region(box,
    pixels)``), or a whole picture that differs only inside some (``record.patch(edited,
    boxes)``). Records whose picture no stage replaced are
    encoded from the decoded frame directly, with no RGB round trip, and patched ones from the
    decoded frame with only the ``changed`` rectangles converted from RGB (see ``Writer``).
    """

    __slots__ = ("index", "pts", "time_base", "duration", "faces", "_image", "_source", "_to_rgb",
                 "_regions", "_parts", "_patches", "_size", "_owned", "modified", "changed", "device_image")

    def __init__(self, index: int, pts: int, time_base: Fraction, image: np.ndarray | None = None,
                 duration: int | None = None, faces: list | None = None, source: Any = None,
                 to_rgb: Callable[[Any], np.ndarray] | None = None, regions: Any = None,
                 size: tuple[int, int] | None = None):
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
        self._regions = regions  # a RegionConverter for the source, or None
        self._parts: list[tuple[tuple[int, int, int, int], np.ndarray]] = []  # converted regions
        self._patches: list[tuple[tuple[int, int, int, int], np.ndarray]] = []  # new pixels, in order
        self._size = size if image is None else (image.shape[1], image.shape[0])
        self._owned = False  # whether _image is this record's own array (patches may write into it)
        self.modified = False
        self.changed: list[tuple[int, int, int, int]] = []  # (x0, y0, x1, y1) where image differs from source
        self.device_image = None  # [3,H,W] uint8 tensor on the model device while stages work on it

    @property
    def image(self) -> np.ndarray:
        if self._image is None:
            image = self._to_rgb(self._source)
            if self._regions is not None:  # what regions need to know, while they wait for it
                self._regions.learn(self._source, image)
            for (x0, y0, x1, y1), pixels in self._patches:
                image[y0:y1, x0:x1] = pixels
            image.flags.writeable = False
            self._image, self._parts, self._patches, self._owned = image, [], [], False
        return self._image

    @image.setter
    def image(self, value: np.ndarray) -> None:
        self._image = value
        self._source = None
        self._parts, self._patches, self._owned = [], [], False
        self._size = (value.shape[1], value.shape[0])
        self.changed = []
        self.modified = True

    @property
    def has_image(self) -> bool:
        """Whether the whole picture is at hand (given, or converted already)."""
        return self._image is not None

    def region(self, box) -> np.ndarray:
        """The picture's ``[y1-y0, x1-x0, 3]`` pixels in ``box`` ``(x0, y0, x1, y1)`` (ends
        exclusive; clamped to the frame, so it may come back smaller), read-only. Without the
        whole picture at hand, only the region is converted (and kept for later requests inside it)."""
        w, h = self.size
        x0, y0, x1, y1 = (int(v) for v in box)
        x0, y0, x1, y1 = max(0, min(w, x0)), max(0, min(h, y0)), max(0, min(w, x1)), max(0, min(h, y1))
        if (self._image is not None or self._regions is None or x1 <= x0 or y1 <= y0
                or not self._regions.usable(self._source)):  # converted whole, once, instead
            view = self.image[y0:y1, x0:x1]
            view.flags.writeable = False
            return view
        box = (x0, y0, x1, y1)
        part = next((p for p in self._parts if _inside(box, p[0])), None)
        if part is None:
            part = (box, self._convert(box))
            self._parts.append(part)
        (px, py, _, _), pixels = part
        out = pixels[y0 - py:y1 - py, x0 - px:x1 - px]
        copied = False
        for patch_box, patch in self._patches:  # what stages pasted since, where it overlaps
            ox0, oy0 = max(x0, patch_box[0]), max(y0, patch_box[1])
            ox1, oy1 = min(x1, patch_box[2]), min(y1, patch_box[3])
            if ox0 < ox1 and oy0 < oy1:
                out, copied = (out, True) if copied else (out.copy(), True)
                out[oy0 - y0:oy1 - y0, ox0 - x0:ox1 - x0] = patch[oy0 - patch_box[1]:oy1 - patch_box[1],
                                                                   ox0 - patch_box[0]:ox1 - patch_box[0]]
        out.flags.writeable = False
        return out

    def _convert(self, box) -> np.ndarray:
        """The RGB of ``box`` from the decoded frame: where a part converted before covers at
        least half of it, only the rest (at 4K the aligner's quad box lies 96% inside the
        tracker's landmark area, converted just before it)."""
        x0, y0, x1, y1 = box
        best, covered = None, 0
        for part_box, pixels in self._parts:
            ix0, iy0 = max(x0, part_box[0]), max(y0, part_box[1])
            ix1, iy1 = min(x1, part_box[2]), min(y1, part_box[3])
            if ix0 < ix1 and iy0 < iy1 and (ix1 - ix0) * (iy1 - iy0) > covered:
                best, covered = (part_box, pixels, (ix0, iy0, ix1, iy1)), (ix1 - ix0) * (iy1 - iy0)
        if best is None or 2 * covered < (x1 - x0) * (y1 - y0):
            return self._regions.rgb(self._source, box)
        (px, py, _, _), pixels, (ix0, iy0, ix1, iy1) = best
        out = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
        out[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = pixels[iy0 - py:iy1 - py, ix0 - px:ix1 - px]
        rest = [(x0, y0, x1, iy0), (x0, iy1, x1, y1), (x0, iy0, ix0, iy1), (ix1, iy0, x1, iy1)]
        for rx0, ry0, rx1, ry1 in rest:  # above, below, left and right of the covered part
            if rx0 < rx1 and ry0 < ry1:
                out[ry0 - y0:ry1 - y0, rx0 - x0:rx1 - x0] = self._regions.rgb(self._source, (rx0, ry0, rx1, ry1))
        return out

    def thumbnail(self, size: tuple[int, int]) -> np.ndarray:
        """A grey ``size`` ``(width, height)`` uint8 thumbnail, area-averaged: the decoded luma
        where the reader gave a region converter (no RGB needed), else the RGB picture's grey."""
        if self._source is not None and self._regions is not None:
            return self._regions.thumbnail(self._source, size)
        import cv2

        from .regions import shrink

        return shrink(cv2.cvtColor(self.image, cv2.COLOR_RGB2GRAY), size)

    def patch_region(self, box, pixels: np.ndarray) -> None:
        """Replace the pixels in ``box`` (inside the frame) with ``pixels``; the decoded frame is
        kept for the rest, and the writer converts only the changed rectangles from RGB."""
        box = tuple(int(v) for v in box)
        x0, y0, x1, y1 = box
        if self._image is None:
            self._patches.append((box, np.array(pixels, np.uint8)))
        else:
            if not self._owned:  # the decoder's conversion or the caller's array: copy it once
                self._image, self._owned = self._image.copy(), True
            self._image[y0:y1, x0:x1] = pixels
        if self._source is not None:
            self.changed = self.changed + [box]
        self.modified = True

    def patch(self, image: np.ndarray, boxes) -> None:
        """Replace the picture with ``image``, which equals the current one outside ``boxes``
        (``(x0, y0, x1, y1)`` pixel rectangles, ends exclusive): the decoded frame is kept for
        the rest. Without boxes nothing changed; a picture already replaced stays replaced."""
        boxes = [tuple(int(v) for v in box) for box in boxes]
        if self._source is None:
            self.image = image
            return
        self._image, self._parts, self._patches, self._owned = image, [], [], False
        self.changed = self.changed + boxes
        self.modified = self.modified or bool(boxes)

    @property
    def source(self) -> Any:
        """The decoded frame this record's picture still equals outside ``changed`` (all of it
        when that is empty), or None."""
        return self._source

    def unchanged(self) -> FrameRecord:
        """A record of the same decoded frame (and converters) without what stages changed or
        learnt; None where the picture no longer comes from a decoded frame."""
        if self._source is None:
            return None
        return FrameRecord(self.index, self.pts, self.time_base, duration=self.duration, source=self._source,
                           to_rgb=self._to_rgb, regions=self._regions, size=self._size)

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
        if self._size is None:
            self._size = (self.image.shape[1], self.image.shape[0])
        return self._size

    def __repr__(self) -> str:
        return f"FrameRecord(index={self.index}, pts={self.pts}, time_base={self.time_base}, faces={len(self.faces)})"


def _inside(box, outer) -> bool:
    return outer[0] <= box[0] and outer[1] <= box[1] and box[2] <= outer[2] and box[3] <= outer[3]


def as_picture(picture) -> FrameRecord:
    """``picture`` itself if it is a FrameRecord, else a record holding the RGB array: code
    that reads parts of frames takes either."""
    if isinstance(picture, np.ndarray):
        return FrameRecord(0, 0, Fraction(0), image=picture)
    return picture


_canvases: dict[tuple, list[np.ndarray]] = {}  # free canvases by shape, shared by every thread
_canvases_lock = threading.Lock()


@contextmanager
def placed(pixels: np.ndarray, box, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """A ``size`` ``(width, height)`` frame holding ``pixels`` in ``box`` and zeros elsewhere,
    for code whose arithmetic depends on where in the frame it works (OpenCV's warps and dlib's
    landmarker round positions in floating point: the same work on a region with shifted
    coordinates comes out a level or a pixel different here and there). Canvases are kept for
    reuse by every thread (a pipelined run's threads are new each run: canvases of their own
    were memory faulted in again every run) and zeroed again after use; memory outside the
    boxes placed is never touched. Only for code that reads inside ``box``."""
    w, h = size
    x0, y0, x1, y1 = box
    key = (h, w) + pixels.shape[2:]
    with _canvases_lock:
        free = _canvases.setdefault(key, [])
        canvas = free.pop() if free else None
    if canvas is None:
        canvas = np.zeros(key, np.uint8)
    canvas[y0:y1, x0:x1] = pixels
    try:
        yield canvas
    finally:
        canvas[y0:y1, x0:x1] = 0
        with _canvases_lock:
            _canvases[key].append(canvas)
