"""The decord reader plugin (plugins/videoinv_decord), found through its entry point."""

from __future__ import annotations

import numpy as np
import pytest

from videoinv.cli import main
from videoinv.registry import default_registry

from conftest import BARS, bar_centres, encode_bars, read_all


def decord_reader(path, **kwargs):
    return default_registry().get("reader", "decord")(path, **kwargs)


def test_plugin_is_registered_through_its_entry_point():
    registry = default_registry()
    assert registry.names("reader") == ["decord", "pyav"]
    assert registry.origin("reader", "decord").startswith("plugin decord")


@pytest.mark.parametrize("case, start, end", [("bt709", None, None), ("vfr", "1.5", "50f"), ("rot90", "5f", "9f")])
def test_same_frames_and_timestamps_as_the_core_reader(clips, case, start, end):
    path = getattr(clips, case)
    ours = read_all(path, start=start, end=end)
    with decord_reader(path, start=start, end=end) as reader:
        theirs = list(reader)
    assert [(r.index, r.pts) for r in theirs] == [(r.index, r.pts) for r in ours]
    for a, b in zip(ours, theirs):
        assert a.image.shape == b.image.shape
        # decord's FFmpeg converts with its fast path (about a level dark, other chroma filter)
        assert np.abs(a.image.astype(int) - b.image.astype(int)).mean() < 2.5


def test_untagged_hd_gets_the_bt709_convention(tmp_path):
    path = encode_bars(tmp_path, (1280, 720), "bt709", "tv", tags=False)
    with decord_reader(path) as reader:
        image = next(iter(reader)).image
    assert np.abs(bar_centres(image).astype(int) - BARS.astype(int)).max() <= 3


def test_edit_with_the_decord_reader(clips, tmp_path):
    out = tmp_path / "out.mp4"
    assert main(["edit", str(clips.vfr), "-o", str(out), "--reader", "decord", "-q"]) == 0
    assert [r.pts for r in read_all(out)] == [r.pts for r in read_all(clips.vfr)]
