"""`videoinv bench compare`: the metrics between two real videos, as a table and as JSON."""

from __future__ import annotations

import json

import pytest

from videoinv import samples
from videoinv.cli import main


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    a, b = root / "a.mp4", root / "b.mp4"
    scene = samples.moving_face(640, 360)
    samples.write_clip(a, scene, 8)
    samples.write_clip(b, scene, 8, crf=40)  # the same frames, coarsely quantised
    return a, b


def test_compare_prints_a_table(pair, capsys):
    a, b = pair
    assert main(["bench", "compare", str(a), str(b), "--size", "128"]) == 0
    out = capsys.readouterr().out
    rows = {cells[2]: cells[1] for cells in ([c.strip() for c in line.split("│")[1:-1]]
                                             for line in out.splitlines() if line.count("│") == 4)}
    assert 20 < float(rows["psnr"]) < 60 and 0 < float(rows["ssim"]) < 1 and 0 < float(rows["mse"]) < 0.05
    assert set(rows) >= {"lpips", "id", "tl_id", "tg_id", "warp_error", "seam", "mask_iou"}
    assert "8/8 frames with a face" in " ".join(out.split())


def test_compare_table_shows_infinite_psnr_for_identical_videos(pair, capsys):
    a, _ = pair
    assert main(["bench", "compare", str(a), str(a), "--size", "128"]) == 0
    rows = {cells[2]: cells[1] for cells in ([c.strip() for c in line.split("│")[1:-1]]
                                             for line in capsys.readouterr().out.splitlines() if line.count("│") == 4)}
    assert rows["psnr"] == "∞" and float(rows["mse"]) == 0
    assert rows["mask_iou"] == rows["mask_iou_source"]


def test_compare_json_and_the_identity_case(pair, capsys):
    a, b = pair
    assert main(["bench", "compare", str(a), str(b), "--size", "128", "--json"]) == 0
    worse = json.loads(capsys.readouterr().out)
    assert main(["bench", "compare", str(a), str(a), "--size", "128", "--json"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["summary"]["mse"] == 0 and same["summary"]["ssim"] == pytest.approx(1.0)
    assert same["summary"]["psnr"] is None  # infinite: no JSON number
    assert 0 < worse["summary"]["mse"] < 0.05 and worse["summary"]["ssim"] < 1
    assert worse["frames"] == 8


def test_compare_refuses_videos_of_different_sizes(pair, tmp_path, capsys):
    a, _ = pair
    other = tmp_path / "small.mp4"
    samples.write_clip(other, samples.moving_face(320, 180), 8)
    assert main(["bench", "compare", str(a), str(other)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("videoinv: error:") and "different sizes" in err and err.count("\n") == 1
