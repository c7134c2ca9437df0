"""Colours against ground truth: flat colour bars of known RGB, encoded by the ffmpeg program
with each matrix/range/tagging, must read back as those RGB values; and our writer's files must
decode (by the ffmpeg program) to the RGB we gave it."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from videoinv.video.colour import source_colour
from videoinv.video.frame import FrameRecord
from videoinv.video.writer import EncodeOptions, Writer

from conftest import BARS, bar_centres, colour_bars, encode_bars, ffmpeg_frames, ffprobe, read_all


@pytest.mark.parametrize("size, matrix, rng, tags, pix_fmt", [
    ((1280, 720), "bt709", "tv", True, "yuv420p"),
    ((1280, 720), "bt601", "tv", True, "yuv420p"),
    ((1280, 720), "bt709", "pc", True, "yuvj420p"),
    ((1280, 720), "bt2020", "tv", True, "yuv420p"),
    ((1280, 720), "bt709", "tv", False, "yuv420p"),   # untagged HD: BT.709 by convention
    ((640, 480), "bt601", "tv", False, "yuv420p"),    # untagged SD: BT.601
])
def test_reader_gets_the_true_rgb(tmp_path, size, matrix, rng, tags, pix_fmt):
    path = encode_bars(tmp_path, size, matrix, rng, tags, pix_fmt)
    frames = read_all(path)
    assert frames and frames[0].image.shape == (size[1], size[0], 3)
    err = np.abs(bar_centres(frames[0].image).astype(int) - BARS.astype(int)).max()
    assert err <= 2, f"colours off by {err} levels"


def test_untagged_hd_would_be_wrong_with_ffmpegs_bt601_assumption(tmp_path):
    """Why the rule exists: the ffmpeg program reads untagged HD as BT.601 and shifts colours."""
    path = encode_bars(tmp_path, (1280, 720), "bt709", "tv", False)
    theirs = ffmpeg_frames(path, 1280, 720)[0]
    assert np.abs(bar_centres(theirs).astype(int) - BARS.astype(int)).max() > 10


def test_colour_rule_on_tags():
    assumed = source_colour(2, 0, 2, 2, "yuv420p", 1920, 1080)
    assert (assumed.matrix, assumed.range, assumed.primaries, assumed.trc) == ("bt709", "tv", 1, 1)
    assert set(assumed.assumed) == {"matrix", "range", "primaries", "transfer"}
    sd = source_colour(2, 0, 2, 2, "yuv420p", 720, 576)
    assert (sd.matrix, sd.primaries) == ("bt601", 5)  # PAL primaries for 576 lines
    assert source_colour(2, 0, 2, 2, "yuvj420p", 640, 480).range == "pc"
    tagged = source_colour(6, 2, 6, 6, "yuv420p", 1920, 1080)
    assert (tagged.matrix, tagged.range, tagged.assumed) == ("bt601", "pc", ())
    assert source_colour(0, 2, 1, 13, "gbrp", 100, 100).matrix == "rgb"


@pytest.mark.parametrize("matrix, rng, pix_fmt", [("bt709", "tv", "yuv420p"), ("bt601", "tv", "yuv420p"),
                                                  ("bt709", "pc", "yuv444p"), ("bt2020", "tv", "yuv420p")])
def test_writer_files_decode_to_the_rgb_we_wrote(tmp_path, matrix, rng, pix_fmt):
    out = tmp_path / "ours.mp4"
    image = colour_bars(1280, 720)
    options = EncodeOptions(crf=0, preset="ultrafast", matrix=matrix, range=rng, pix_fmt=pix_fmt)
    with Writer(out, 1280, 720, Fraction(1, 10), Fraction(10), options) as writer:
        for i in range(3):
            writer.write(FrameRecord(index=i, pts=i, time_base=Fraction(1, 10), image=image))
    v = ffprobe(out)["streams"][0]
    expected = {"bt709": "bt709", "bt601": "smpte170m", "bt2020": "bt2020nc"}[matrix]
    assert (v["color_space"], v["color_range"]) == (expected, rng)
    theirs = ffmpeg_frames(out, 1280, 720)
    assert len(theirs) == 3
    assert np.abs(bar_centres(theirs[1]).astype(int) - BARS.astype(int)).max() <= 2
