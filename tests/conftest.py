"""Test material: real video files made with the ffmpeg program (independent of our writer),
plus helpers that decode with ffmpeg and hash audio packets with PyAV."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

# The setup script installs the ffmpeg program. Without it every test that runs it fails (the
# program not found), while the others, such as the CUDA ones on a GPU machine with only torch, run.
FFMPEG = shutil.which("ffmpeg") or "ffmpeg"


def pytest_terminal_summary(terminalreporter):
    if shutil.which("ffmpeg") is None:
        terminalreporter.write_line("the ffmpeg program is not on PATH: the tests that run it fail without it "
                                    "(scripts/setup.sh installs it)", yellow=True)


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-nostdin", "-y", *map(str, args)], check=True)


def ffmpeg_frames(path, width: int, height: int) -> np.ndarray:
    """All frames of ``path`` decoded by the ffmpeg program to rgb24 (auto-rotated), one output
    frame per input frame, with swscale's accurate conversion (its default fast path is about
    one level dark)."""
    out = subprocess.run([FFMPEG, "-v", "error", "-nostdin", "-i", str(path), "-f", "rawvideo",
                          "-sws_flags", "bilinear+full_chroma_int+accurate_rnd",
                          "-pix_fmt", "rgb24", "-fps_mode", "passthrough", "-"],
                         check=True, capture_output=True).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, height, width, 3)


def ffprobe(path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams",
                          "-show_format", str(path)], check=True, capture_output=True).stdout
    return json.loads(out)


def audio_packets_hash(path) -> tuple[str, int]:
    """sha256 over every audio packet's bytes, in order, and the packet count."""
    h = hashlib.sha256()
    n = 0
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return "", 0
        for p in c.demux(c.streams.audio[0]):
            if p.size:
                h.update(bytes(p))
                n += 1
    return h.hexdigest(), n


def audio_packets(path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def video_times(path) -> tuple[list[Fraction], Fraction]:
    """Presentation times of every video frame (seconds, exact) and the time base."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        tb = Fraction(s.time_base.numerator, s.time_base.denominator)
        return sorted(Fraction(p.pts) * tb for p in c.demux(s) if p.size), tb


def first_audio_time(path) -> Fraction | None:
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return None
        s = c.streams.audio[0]
        tb = Fraction(s.time_base.numerator, s.time_base.denominator)
        return min(Fraction(p.pts) * tb for p in c.demux(s) if p.size)


# saturated primaries, a skin tone, greys and near-black/near-white
BARS = np.array([[235, 40, 40], [40, 200, 60], [50, 60, 220], [224, 172, 140], [128, 128, 128],
                 [250, 230, 30], [16, 20, 24], [245, 245, 240]], np.uint8)


def colour_bars(width: int, height: int) -> np.ndarray:
    """Flat vertical bars of the BARS colours."""
    idx = np.arange(width) * len(BARS) // width
    return np.ascontiguousarray(np.broadcast_to(BARS[idx][None], (height, width, 3)))


def bar_centres(image: np.ndarray) -> np.ndarray:
    """The median colour of a patch in the middle of each bar."""
    h, w = image.shape[:2]
    step = w / len(BARS)
    return np.array([np.median(image[h // 2 - 8:h // 2 + 8, int(step * (i + 0.5)) - 8:int(step * (i + 0.5)) + 8]
                               .reshape(-1, 3), axis=0) for i in range(len(BARS))])


def encode_bars(tmp_path, size, matrix, rng, tags: bool, pix_fmt="yuv420p"):
    """A short H.264 (lossless) clip of the bars made by the ffmpeg program with the given
    matrix and range, tagged or not."""
    w, h = size
    png = tmp_path / "bars.png"
    av.VideoFrame.from_ndarray(colour_bars(w, h), format="rgb24").to_image().save(png)
    out = tmp_path / f"bars_{matrix}_{rng}_{tags}.mp4"
    space = {"bt709": "bt709", "bt601": "smpte170m", "bt2020": "bt2020nc"}[matrix]
    tag_args = ["-colorspace", space, "-color_primaries", space.replace("nc", ""),
                "-color_trc", "bt709", "-color_range", rng] if tags else []
    ffmpeg("-loop", "1", "-i", png, "-t", "0.2", "-r", "10", "-vf",
           f"scale=out_color_matrix={matrix}:out_range={rng},format={pix_fmt}",
           "-c:v", "libx264", "-qp", "0", *tag_args, out)
    return out


SOURCE = "testsrc2=size={w}x{h}:rate={r}:duration={d}"
TONE = "sine=frequency=440:sample_rate=48000:duration={d}"
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "16"]


class Clips:
    """Test clips made on first use and kept for the session."""

    def __init__(self, root: Path):
        self.root = root

    def _make(self, name: str, *args) -> Path:
        path = self.root / name
        if not path.exists():
            ffmpeg(*args, path)
        return path

    def _src(self, w=1280, h=720, r=30, d=2):
        return ["-f", "lavfi", "-i", SOURCE.format(w=w, h=h, r=r, d=d)]

    def _tone(self, d=2):
        return ["-f", "lavfi", "-i", TONE.format(d=d)]

    @property
    def bt709(self) -> Path:
        """1280x720 H.264 BT.709 TV range (tagged) with AAC audio, 60 frames."""
        return self._make("bt709.mp4", *self._src(), *self._tone(), *X264, "-pix_fmt", "yuv420p",
                          "-vf", "scale=out_color_matrix=bt709:out_range=tv",
                          "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
                          "-color_range", "tv", "-c:a", "aac", "-b:a", "128k", "-shortest")

    @property
    def bt601(self) -> Path:
        return self._make("bt601.mp4", *self._src(), *self._tone(), *X264, "-pix_fmt", "yuv420p",
                          "-vf", "scale=out_color_matrix=bt601:out_range=tv",
                          "-colorspace", "smpte170m", "-color_primaries", "smpte170m",
                          "-color_trc", "smpte170m", "-color_range", "tv", "-c:a", "aac", "-shortest")

    @property
    def full_range(self) -> Path:
        return self._make("full.mp4", *self._src(), *self._tone(), *X264, "-pix_fmt", "yuvj420p",
                          "-vf", "scale=out_color_matrix=bt709:out_range=pc",
                          "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
                          "-color_range", "pc", "-c:a", "aac", "-shortest")

    @property
    def untagged(self) -> Path:
        """BT.709 TV-range pixels with no colour tags at all."""
        return self._make("untagged.mp4", *self._src(), *self._tone(), *X264, "-pix_fmt", "yuv420p",
                          "-vf", "scale=out_color_matrix=bt709:out_range=tv", "-c:a", "aac", "-shortest")

    @property
    def rot90(self) -> Path:
        path = self.root / "rot90.mp4"
        if not path.exists():
            ffmpeg("-i", self.bt709, "-c", "copy", "-metadata:s:v:0", "rotate=90", path)
        return path

    @property
    def odd(self) -> Path:
        """641x361 (odd sides; H.264 4:4:4 allows them) with audio."""
        return self._make("odd.mp4", *self._src(640, 360), *self._tone(), *X264, "-pix_fmt", "yuv444p",
                          "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
                          "-color_range", "tv", "-vf", "scale=641:361:out_color_matrix=bt709:out_range=tv",
                          "-c:a", "aac", "-shortest")

    @property
    def no_audio(self) -> Path:
        return self._make("noaudio.mp4", *self._src(), *X264, "-pix_fmt", "yuv420p",
                          "-vf", "scale=out_color_matrix=bt709:out_range=tv", "-colorspace", "bt709",
                          "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv")

    @property
    def vfr(self) -> Path:
        """1280x720, 60 frames: 30 at 30 fps then 30 at 15 fps (3 s), with audio."""
        return self._make("vfr.mp4", *self._src(d=2), *self._tone(d=3), *X264, "-pix_fmt", "yuv420p",
                          "-vf", "setpts='if(lt(N,30),N,30+(N-30)*2)/(30*TB)',"
                                 "scale=out_color_matrix=bt709:out_range=tv",
                          "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
                          "-color_range", "tv", "-fps_mode", "vfr", "-c:a", "aac")

    @property
    def long(self) -> Path:
        """20 s 1280x720 with audio, for interrupting a running job."""
        return self._make("long.mp4", *self._src(d=20), *self._tone(d=20), *X264, "-pix_fmt", "yuv420p",
                          "-c:a", "aac", "-shortest")


@pytest.fixture(autouse=True)
def _restore_logging():
    """Commands run in-process set up the CLI's logging (levels, handlers); undo it after."""
    import logging

    saved = {n: (logging.getLogger(n).level, list(logging.getLogger(n).handlers)) for n in ("videoinv", "libav")}
    yield
    for name, (level, handlers) in saved.items():
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).handlers[:] = handlers


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> Clips:
    return Clips(tmp_path_factory.mktemp("clips"))


def read_all(path, **kwargs) -> list:
    from videoinv.video.reader import Reader

    with Reader(path, **kwargs) as r:
        return list(r)
