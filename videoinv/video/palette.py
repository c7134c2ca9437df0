"""RGB frames to 256-colour palette frames, for GIF output.

swscale's own RGB -> pal8 conversion uses one fixed 3-3-2 palette for every picture (faces come
out banded and posterised). Each frame here gets a palette of its own, chosen from its colours
(libavfilter's palettegen in single-frame mode), and is mapped onto it (paletteuse): a frame at a
time, so nothing waits for the end of the video.

The mapping dithers with the finest Bayer matrix rather than paletteuse's default error
diffusion (sierra2_4a). On the sample clip (`videoinv sample`, 30 frames of 720p) it is closer to
the source (1.83 levels on average against 2.20), steadier (pixels the source leaves unchanged
move 1.08 levels from frame to frame against 1.86: diffusion's noise changes with every palette),
smaller (5.6 against 7.8 MB), faster (0.05 against 0.17 s a frame for the mapping alone) and free
of diffusion's streaks (a blue fringe on the teeth). Without dithering, gradients band.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction

import av

# every frame its own palette; all 256 entries for colours (none kept back for transparency)
GENERATE = {"stats_mode": "single", "reserve_transparent": "0"}
USE = {"new": "1", "dither": "bayer", "bayer_scale": "5"}


def _args(options: dict[str, str]) -> str:
    return ":".join(f"{k}={v}" for k, v in options.items())


class PaletteConverter:
    """``convert(frame)`` takes an rgb24 frame and returns the pal8 frames ready (one per frame
    in, in order, with the timing of the frame it came from); ``flush()`` returns the rest."""

    def __init__(self, width: int, height: int, time_base: Fraction):
        self.graph = av.filter.Graph()
        source = self.graph.add_buffer(width=width, height=height, format="rgb24", time_base=time_base)
        split = self.graph.add("split")
        generate = self.graph.add("palettegen", _args(GENERATE))
        use = self.graph.add("paletteuse", _args(USE))
        sink = self.graph.add("buffersink")
        source.link_to(split)
        split.link_to(use, 0, 0)
        split.link_to(generate, 1, 0)
        generate.link_to(use, 0, 1)
        use.link_to(sink)
        self.graph.configure()
        self.time_base = time_base
        self._timing: deque[tuple[int | None, int]] = deque()  # (pts, duration) of the frames in the graph

    def convert(self, frame: av.VideoFrame) -> list[av.VideoFrame]:
        self._timing.append((frame.pts, frame.duration))
        self.graph.push(frame)
        return self._ready()

    def flush(self) -> list[av.VideoFrame]:
        self.graph.push(None)
        return self._ready()

    def _ready(self) -> list[av.VideoFrame]:
        out = []
        while self._timing:
            try:
                frame = self.graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                break
            frame.pts, duration = self._timing.popleft()
            frame.time_base = self.time_base
            if duration:
                frame.duration = duration
            out.append(frame)
        return out
