"""Parts of a decoded frame in RGB, the same pixels the whole-frame conversion gives there.

The stages of an edit look at little of most frames: the faces' surroundings, and a thumbnail to
notice scene cuts. At 4K converting the whole frame from YUV took a fifth of an edit's CPU time
(27-45 ms a frame), a face's region a few ms. A region goes through libavfilter (crop, then
swscale with the reader's flags, colour matrix and range, and the chroma siting the reader's
whole-frame converter used: found on the first frames, see ``learn``), cut with a margin:
chroma is interpolated from neighbouring samples, so a region's edge would otherwise see a
repeated edge sample where the whole frame has the real one. With the margin the pixels are
bit-exact to the whole frame's (``tests/test_regions.py``). The thumbnail is the luma plane
area-averaged: grey without any conversion.

8-bit YUV formats only (their crops stay on whole chroma samples and swscale does not dither
them); for any other the reader converts whole frames as before.
"""

from __future__ import annotations

import threading
from typing import Callable

import av
import av.filter
import cv2
import numpy as np

from .orientation import apply_orientation, map_box, swaps_axes

FORMATS = ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p")
ALIGN = 16  # crop origins on whole chroma samples (and far from any swscale tile boundary)
MARGIN = 8  # pixels beyond the region converted and dropped: the chroma filter's reach is 1-2
# Below about 1.5 megapixels converting parts saved nothing measurable (an edit at 720p: the
# same frames/s, and a lower pipelined/naive ratio): a whole 720p frame costs 3 ms, converted
# ahead on the decoding thread, and the faces' two or three regions (a graph set up for each)
# nearly as much, on the stages' threads; at 1080p and 4K the parts cost a fraction
PAYS_FROM = 1_500_000


def pays(width: int, height: int) -> bool:
    """Whether frames of this size are better converted in parts than whole."""
    return width * height >= PAYS_FROM


SITINGS = ("left", "center", "topleft", "top", "bottomleft", "bottom")
BANDS = (0.25, 0.5, 0.75)  # where the sitings are compared: full-width bands this far down the frame
BAND_ROWS = 4


def _retried(seen: int) -> bool:
    """Whether to compare the sitings on the ``seen``-th whole conversion while the siting is
    undecided: the first few, then at growing intervals, then every 32nd (a video that fades in
    from black decides once there is colour; a grey one costs a comparison every 32 frames)."""
    return seen <= 8 or seen % 32 == 0 or seen & (seen - 1) == 0


def shrink(picture: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``picture`` area-averaged to ``size`` ``(width, height)``. From 32 times the size up in
    two steps, through 10 times the size: OpenCV's area filter took 6.7 ms for a 4K plane to a
    64x36 thumbnail in one step (0.9 ms at 1080p), 2.4 ms in two; the result differs by a level
    of rounding at most."""
    w, h = size
    if picture.shape[1] >= 32 * w and picture.shape[0] >= 32 * h:
        picture = cv2.resize(picture, (10 * w, 10 * h), interpolation=cv2.INTER_AREA)
    return cv2.resize(picture, size, interpolation=cv2.INTER_AREA)


def plane_array(plane) -> np.ndarray:
    """A frame's 8-bit plane as a [height, width] uint8 array over its memory (no copy)."""
    rows = np.frombuffer(plane, np.uint8)[:plane.height * plane.line_size]
    return rows.reshape(plane.height, plane.line_size)[:, :plane.width]


class RegionConverter:
    """Converts boxes of a stream's decoded frames to upright RGB (see the module's notes).

    ``matrix``/``range_``: the stream's colour rule (``Colour.matrix``, ``Colour.range``);
    ``orientation``: the upright transform; ``whole``: the reader's whole-frame conversion, for
    frames of a format this cannot cut."""

    def __init__(self, matrix: str, range_: str, orientation: str, whole: Callable[[av.VideoFrame], np.ndarray],
                 sws_flags: str = "bilinear+full_chroma_int+accurate_rnd"):
        self.orientation, self.whole = orientation, whole
        self._scale = f"flags={sws_flags}:in_color_matrix={matrix}:in_range={range_}:out_range=pc"
        self.siting: str | None = None  # the chroma siting that reproduces ``whole``, once found
        self.unmatched = False  # no siting reproduced ``whole``: regions are never cut
        self._seen = 0  # whole conversions looked at while undecided
        self._lock = threading.Lock()

    @staticmethod
    def supports(pix_fmt: str, matrix: str) -> bool:
        return pix_fmt in FORMATS and matrix != "rgb"

    def rgb(self, frame: av.VideoFrame, box) -> np.ndarray:
        """``[y1-y0, x1-x0, 3]`` uint8 RGB of the upright box ``(x0, y0, x1, y1)`` (inside the
        frame, not empty); cut from a whole conversion where the frame cannot be cut
        (``usable``)."""
        if not self.usable(frame):
            whole = self.whole(frame)
            self.learn(frame, whole)
            return whole[box[1]:box[3], box[0]:box[2]]
        return self._part(frame, box, self.siting)

    def usable(self, frame: av.VideoFrame) -> bool:
        """Whether parts of ``frame`` can be converted on their own: an 8-bit YUV format, and a
        chroma siting known (where there is subsampled chroma). Until it is, callers convert
        frames whole and hand the conversions to ``learn``."""
        name = frame.format.name
        return name in FORMATS and (self.siting is not None or name.endswith("444p"))

    def learn(self, frame: av.VideoFrame, whole: np.ndarray) -> None:
        """Find the chroma siting from ``whole``, the whole-frame converter's RGB of ``frame``.
        Neither PyAV nor a filter graph's source passes on the siting the decoder gave the frame
        (H.264's default is left, a stream may say centre or another), and the whole-frame
        converter uses it: a few bands across the frame are converted with each siting, and the
        one siting that gives the same pixels as ``whole`` there is kept (the right one always
        does: regions are bit-exact). Where several do (flat chroma: a black or grey frame, a
        fade) the frame decides nothing and a later one is tried; where none does, regions are
        never cut."""
        if self.usable(frame) or self.unmatched or frame.format.name not in FORMATS:
            return
        with self._lock:
            self._seen += 1
            if self.siting is not None or self.unmatched or not _retried(self._seen):
                return
            h, w = whole.shape[:2]
            bands = [(0, y, w, min(h, y + BAND_ROWS)) for y in sorted({min(h - 1, int(h * f)) for f in BANDS})]
            matches = [s for s in SITINGS if all(np.array_equal(self._part(frame, band, s), whole[band[1]:band[3]])
                                                 for band in bands)]
            if "422" in frame.format.name:  # no vertical subsampling: only the horizontal siting counts
                matches = sorted({"center" if s in ("center", "top", "bottom") else "left" for s in matches})
            if len(matches) == 1:
                self.siting = matches[0]
            self.unmatched = not matches

    def _part(self, frame: av.VideoFrame, box, siting: str) -> np.ndarray:
        bx0, by0, bx1, by1 = box
        w, h = frame.width, frame.height
        upright = (h, w) if swaps_axes(self.orientation) else (w, h)
        cx0, cy0, cx1, cy1 = map_box(box, self.orientation, upright, inverse=True)
        # the converted part: the margin, origins on whole chroma samples, clamped to the frame
        x0, y0 = max(0, cx0 - MARGIN) // ALIGN * ALIGN, max(0, cy0 - MARGIN) // ALIGN * ALIGN
        x1, y1 = min(w, cx1 + MARGIN), min(h, cy1 + MARGIN)
        x1 += (x1 - x0) % 2 if x1 < w else 0  # whole chroma samples in width and height too
        y1 += (y1 - y0) % 2 if y1 < h else 0
        part = self._convert(frame, x0, y0, x1 - x0, y1 - y0, siting)
        part = apply_orientation(part, self.orientation)
        ux0, uy0, _, _ = map_box((x0, y0, x1, y1), self.orientation, (w, h))
        return part[by0 - uy0:by1 - uy0, bx0 - ux0:bx1 - ux0]

    def thumbnail(self, frame: av.VideoFrame, size: tuple[int, int]) -> np.ndarray:
        """The upright luma plane area-averaged to ``size`` ``(width, height)`` (uint8)."""
        w, h = size
        if frame.format.name not in FORMATS:
            return shrink(cv2.cvtColor(self.whole(frame), cv2.COLOR_RGB2GRAY), size)
        small = shrink(plane_array(frame.planes[0]), (h, w) if swaps_axes(self.orientation) else (w, h))
        return apply_orientation(small[..., None], self.orientation)[..., 0]

    def _convert(self, frame: av.VideoFrame, x: int, y: int, w: int, h: int, siting: str | None) -> np.ndarray:
        graph = av.filter.Graph()
        graph.threads = 1  # a region is too small for slice threads (FFmpeg would start them per graph)
        source = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format.name,
                                  time_base=frame.time_base or "1/1")
        chain = [source, graph.add("crop", f"{w}:{h}:{x}:{y}:exact=1"),
                 graph.add("scale", f"w={w}:h={h}:{self._scale}:in_chroma_loc={siting or 'left'}"),
                 graph.add("format", "rgb24"), graph.add("buffersink")]
        for a, b in zip(chain, chain[1:]):
            a.link_to(b)
        graph.configure()
        graph.push(frame)
        return graph.pull().to_ndarray()
