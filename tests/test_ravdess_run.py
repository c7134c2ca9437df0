"""The whole RAVDESS evaluation on a miniature RAVDESS-shaped folder (real-face clips, 1280x720,
30 fps, the audio-video ones with sound) with random models: every report file, their
consistency, resuming after a kill, refusing other settings, and the HTML page in a real browser.
The numbers are meaningless with random weights; the plumbing is what is checked."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from videoinv.cli import main
from videoinv.metrics.lpips import lpips_unavailable_reason
from videoinv.metrics.ravdess import write_miniature

from conftest import ffprobe

pytestmark = pytest.mark.slow

ROOT_DIR = Path(__file__).resolve().parents[1]
NAMES = ("01-01-03-01-01-01-01", "01-01-05-02-02-01-02",  # audio-video, with sound
         "02-01-01-01-01-01-01", "02-01-03-02-01-02-02", "02-02-04-01-02-01-03", "02-01-06-01-01-02-04")
ARTIFACTS = ROOT_DIR / "tests" / "artifacts"


@pytest.fixture(scope="session")
def mini_ravdess(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ravdess") / "RAVDESS"
    write_miniature(root, NAMES, seconds=1.0)
    return root


def frame_count(path) -> int:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                          "stream=nb_read_frames", "-of", "csv=p=0", str(path)], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.strip())


def has_audio(path) -> bool:
    return any(s["codec_type"] == "audio" for s in ffprobe(path)["streams"])


@pytest.fixture(scope="session")
def full_run(mini_ravdess, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results"
    started = time.time()
    rc = main(["bench", "ravdess", str(mini_ravdess), "-o", str(out), "--model", "random:256:32", "--n", "3",
               "--seed", "1", "--modality", "av", "--frames", "10", "--side-by-side", "2", "-q"])
    assert rc == 0
    return out, time.time() - started


def test_every_report_file_is_written_and_consistent(full_run, mini_ravdess):
    out, _ = full_run
    data = json.loads((out / "results.json").read_text())
    stems = [v["video"]["stem"] for v in data["videos"]]
    assert sorted(stems) == ["01-01-03-01-01-01-01", "01-01-05-02-02-01-02"]  # the two audio-video files (n=3)
    for stem in stems:
        result = json.loads((out / "videos" / f"{stem}.json").read_text())
        assert result["frames"] == 10 and result["frames_with_face"] == 10
        assert frame_count(out / "videos" / f"{stem}.mp4") == 10
        assert has_audio(out / "videos" / f"{stem}.mp4")
    # the CSV: one row per video, the JSON's per-video means
    rows = list(csv.DictReader((out / "videos.csv").open()))
    assert [r["video"] for r in rows] == stems
    for row, video in zip(rows, data["videos"]):
        frames = [x for x in video["per_frame"]["psnr"] if x is not None]
        assert len(frames) == 10
        assert float(row["psnr"]) == pytest.approx(np.mean(frames))
        assert int(row["frames"]) == 10
    # the summary pools the per-frame values of every video
    pooled = [x for v in data["videos"] for x in v["per_frame"]["ssim"]]
    assert data["summary"]["ssim"] == pytest.approx(np.mean(pooled))
    s = data["summary"]
    for key in ("ssim", "psnr", "mse", "id", "tl_id", "tg_id", "warp", "warp_floor", "quad_jitter", "mask_iou", "seam",
                "fps"):
        assert s[key] is not None and math.isfinite(s[key]), key
    assert 0 < s["mse"] < 1 and -1 <= s["ssim"] <= 1 and -1 <= s["id"] <= 1 and s["fps"] > 0
    assert s["psnr"] == pytest.approx(np.mean([-10 * math.log10(m) for v in data["videos"]
                                               for m in v["per_frame"]["mse"]]))
    for video in data["videos"]:
        pf = video["per_frame"]
        assert pf["warp"][0] is None and all(w is not None for w in pf["warp"][1:])
    # LPIPS: a number only where its weights are present
    reason = lpips_unavailable_reason("alex")
    md = (out / "report.md").read_text()
    assert "| FeatureStyleEncoder (paper, Table 2) | 0.818 | 26.64 | 0.009 | 0.122 | 0.895 |" in md
    ours = next(line for line in md.splitlines() if line.startswith("| ours: random:256:32"))
    if reason is not None:
        assert s["lpips"] is None and data["summary"]["lpips_unavailable"] == reason
        assert "| unavailable |" in ours and "LPIPS unavailable" in md
    else:
        assert math.isfinite(s["lpips"]) and "unavailable" not in ours
    # side-by-side clips: source | output, the source's frame count and audio
    clips = sorted((out / "side_by_side").glob("*.mp4"))
    assert [c.stem for c in clips] == sorted(stems)
    for clip in clips:
        info = next(st for st in ffprobe(clip)["streams"] if st["codec_type"] == "video")
        assert (int(info["width"]), int(info["height"])) == (2 * 640 + 4, 360)
        assert frame_count(clip) == 10 and has_audio(clip)
    html = (out / "report.html").read_text()
    assert html.count("<svg ") >= 10 and all(f"side_by_side/{c.name}" in html for c in clips)
    assert not list((out / "videos").glob(".*partial*"))


def test_the_side_by_side_left_half_is_the_source(full_run, mini_ravdess):
    from videoinv.video.reader import Reader

    out, _ = full_run
    clip = sorted((out / "side_by_side").glob("*.mp4"))[0]
    source = next(mini_ravdess.rglob(clip.name))
    import cv2

    with Reader(clip) as a, Reader(source) as b:
        left = next(iter(a)).image[:, :640].astype(float)
        src = cv2.resize(next(iter(b)).image, (640, 360), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(left - src).mean() < 4


def _command(root, out, *extra):
    return [sys.executable, "-m", "videoinv", "bench", "ravdess", str(root), "-o", str(out), "--model", "random:64:16",
            "--n", "4", "--frames", "8", "--side-by-side", "1", *extra]


def _finished(videos):
    """The per-video results written under their final names (pathlib's ``*`` also matches the
    hidden ``.<name>.<random>.partial.json`` a run is still writing)."""
    return [p for p in videos.glob("*.json") if not p.name.startswith(".")]


def test_killed_run_resumes_without_recomputing(mini_ravdess, tmp_path):
    out = tmp_path / "results"
    env = dict(os.environ, PYTHONPATH=str(ROOT_DIR) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(_command(mini_ravdess, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not _finished(out / "videos"):
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    done = {p.stem: p.stat().st_mtime_ns for p in _finished(out / "videos")}
    assert 1 <= len(done) < 4
    assert not (out / "report.md").exists()

    result = subprocess.run(_command(mini_ravdess, out), env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for stem in done:
        assert f"{stem}: finished in an earlier run, reused" in result.stderr
        assert f"{stem}: evaluating" not in result.stderr
    assert f"{4 - len(done)} video(s) evaluated, {len(done)} reused" in result.stderr
    after = {p.stem: p.stat().st_mtime_ns for p in _finished(out / "videos")}
    assert len(after) == 4 and all(after[s] == t for s, t in done.items())
    assert not list((out / "videos").glob(".*partial*"))  # the killed run's temporary files are gone
    data = json.loads((out / "results.json").read_text())
    assert len(data["videos"]) == 4 and len(list(csv.DictReader((out / "videos.csv").open()))) == 4

    # other settings in the same folder: refused, naming the difference; nothing is touched
    refused = subprocess.run(_command(mini_ravdess, out, "--crop", "128"), env=env, capture_output=True, text=True)
    assert refused.returncode == 1
    assert "other settings: crop 256 (now 128)" in refused.stderr and refused.stderr.count("videoinv: error") == 1
    refused = subprocess.run(_command(mini_ravdess, out, "--edit", "sefa0=3"), env=env, capture_output=True, text=True)
    assert refused.returncode == 1 and "edits [] (now ['sefa0=3'])" in refused.stderr
    assert {p.stem: p.stat().st_mtime_ns for p in (out / "videos").glob("*.json")} == after


def test_an_edit_is_measured_and_labelled(mini_ravdess, tmp_path, capsys):
    out = tmp_path / "edit"
    args = ["bench", "ravdess", str(mini_ravdess), "-o", str(out), "--model", "random:64:16", "--n", "1",
            "--frames", "4", "--side-by-side", "0", "-q"]
    assert main(args + ["--edit", "sefa0=3"]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["settings"]["edits"] == ["sefa0=3"] and data["key"]["settings"]["edits"] == ["sefa0=3"]
    assert "| ours: random:64:16, edit sefa0=3, 1 video, 4 frames |" in (out / "report.md").read_text()
    assert not (out / "side_by_side").exists() or not any((out / "side_by_side").iterdir())
    # the same video without the edit differs from it (the edit reached the synthesized crops)
    assert main(args + ["-o", str(tmp_path / "plain")]) == 0
    plain = json.loads((tmp_path / "plain" / "results.json").read_text())
    assert plain["videos"][0]["video"]["stem"] == data["videos"][0]["video"]["stem"]
    assert plain["videos"][0]["per_frame"]["mse"] != data["videos"][0]["per_frame"]["mse"]


def test_report_opens_in_headless_chromium(full_run):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no chromium here to open the HTML report (scripts/setup.sh installs Debian's chromium "
                    "unless WITH_CHROMIUM=0)")
    out, _ = full_run
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "ravdess_report.png"
    shot.unlink(missing_ok=True)
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1100,2600", f"--screenshot={shot}", (out / "report.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    import cv2

    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (2600, 1100)
    # a rendered page, not a blank one: dark text and coloured plot marks on white
    assert (image.min(axis=2) < 80).mean() > 0.002
    blue = (image[..., 0] > 150) & (image[..., 2] < 120)
    assert blue.sum() > 500
