"""Rotation/flip metadata is applied exactly as the ffmpeg program auto-rotates."""

from __future__ import annotations

import av
import numpy as np
import pytest

from conftest import ffmpeg, ffmpeg_frames, read_all

ORIENTATIONS = [(0, False, False), (90, False, False), (180, False, False), (270, False, False),
                (0, True, False), (0, False, True), (90, True, False), (270, True, False)]


@pytest.fixture(scope="module")
def lossless(tmp_path_factory):
    """A small 4:4:4 lossless clip: both decoders see identical samples (no chroma resampling)."""
    path = tmp_path_factory.mktemp("orient") / "src.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10:duration=0.5", "-c:v", "libx264", "-qp", "0",
           "-pix_fmt", "yuv444p", "-colorspace", "bt709", "-color_range", "tv", path)
    return path


def _with_display_matrix(src, dst, degrees, hflip, vflip) -> None:
    """Remux ``src`` (stream copy) with a display matrix, as cameras and editors write it."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        stream.set_display_rotation(degrees, hflip=hflip, vflip=vflip)
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)


@pytest.mark.parametrize("degrees, hflip, vflip", ORIENTATIONS)
def test_reader_matches_ffmpeg_autorotation(lossless, tmp_path, degrees, hflip, vflip):
    path = tmp_path / "oriented.mp4"
    _with_display_matrix(lossless, path, degrees, hflip, vflip)
    ours = np.stack([r.image for r in read_all(path)]).astype(int)
    h, w = ours.shape[1:3]
    assert {w, h} == {320, 240}
    theirs = ffmpeg_frames(path, w, h).astype(int)
    assert theirs.shape == ours.shape
    assert np.abs(theirs - ours).max() <= 2


def test_old_style_rotate_tag_written_by_ffmpeg(lossless, tmp_path):
    path = tmp_path / "rot270.mp4"
    ffmpeg("-i", lossless, "-c", "copy", "-metadata:s:v:0", "rotate=270", path)
    ours = np.stack([r.image for r in read_all(path)]).astype(int)
    assert ours.shape[1:3] == (320, 240)
    theirs = ffmpeg_frames(path, 240, 320).astype(int)
    assert np.abs(theirs - ours).max() <= 2
    plain = np.stack([r.image for r in read_all(lossless)]).astype(int)
    assert np.abs(np.rot90(plain, -1, axes=(1, 2)) - ours).max() <= 1  # 270 tag = turn clockwise
