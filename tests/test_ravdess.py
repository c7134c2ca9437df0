"""The RAVDESS evaluation's fast parts: file-name indexing, sampling, result keys, and the report
files rendered from hand-made per-video results (no video is processed here)."""

from __future__ import annotations

import csv
import io
import json
import random
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from videoinv.cli import main
from videoinv.errors import InputError, VideoinvError
from videoinv.metrics import ravdess, report, svg
from videoinv.metrics.ravdess import BenchSettings, index, parse_actors, parse_name, select


def touch(root: Path, rel: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_parse_name_reads_every_field():
    v = parse_name("Actor_12/02-01-06-01-02-01-12.mp4")
    assert (v.modality, v.vocal, v.emotion, v.intensity, v.statement, v.repetition, v.actor) == \
        ("video-only", "speech", "fearful", 1, 2, 1, 12)
    assert v.stem == "02-01-06-01-02-01-12"
    w = parse_name("01-02-08-02-01-02-24.MP4")
    assert (w.modality, w.vocal, w.emotion, w.intensity, w.actor) == ("av", "song", "surprised", 2, 24)


@pytest.mark.parametrize("name", [
    "03-01-06-01-02-01-12.wav",  # audio only
    "03-01-06-01-02-01-12.mp4",  # modality 03 is audio only, whatever the extension
    "02-01-09-01-02-01-12.mp4",  # emotion 09 does not exist
    "02-01-06-01-02-01-25.mp4",  # actor 25
    "02-03-06-01-02-01-12.mp4",  # vocal channel 03
    "02-01-06-01-02-01.mp4",  # six fields
    "02-01-06-01-02-01-12.txt",
    "x02-01-06-01-02-01-12.mp4",
])
def test_parse_name_rejects(name):
    assert parse_name(name) is None


def test_index_finds_both_layouts_and_ignores_the_rest(tmp_path):
    touch(tmp_path, "Actor_01/02-01-01-01-01-01-01.mp4")
    touch(tmp_path, "Video_Speech_Actor_02/Actor_02/01-01-03-02-01-02-02.mp4")
    touch(tmp_path, "Video_Song_Actor_02/Actor_02/02-02-03-02-01-02-02.mp4")
    touch(tmp_path, "Audio_Speech_Actors_01-24/Actor_01/03-01-01-01-01-01-01.wav")
    touch(tmp_path, "Actor_01/notes.txt")
    touch(tmp_path, "Actor_01/02-01-01-01-01-01-01.mp4.part")
    found = index(tmp_path)
    assert [v.stem for v in found] == ["01-01-03-02-01-02-02", "02-01-01-01-01-01-01", "02-02-03-02-01-02-02"]


def test_index_counts_a_name_found_twice_once(tmp_path, caplog):
    touch(tmp_path, "a/Actor_01/02-01-01-01-01-01-01.mp4")
    touch(tmp_path, "b/Actor_01/02-01-01-01-01-01-01.mp4")
    found = index(tmp_path)
    assert len(found) == 1 and found[0].path.parts[-3] == "a"
    assert "more than once" in caplog.text


def test_index_refuses_a_folder_without_ravdess_files(tmp_path):
    touch(tmp_path, "Actor_01/clip.mp4")
    with pytest.raises(InputError, match="no RAVDESS videos under") as err:
        index(tmp_path)
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="not found"):
        index(tmp_path / "missing")


def test_parse_actors():
    assert parse_actors("1,2,5-8") == {1, 2, 5, 6, 7, 8}
    assert parse_actors(" 24 ") == {24}
    assert parse_actors(None) is None and parse_actors("") is None
    for bad in ("0", "25", "8-5", "a", "1,,x", "3-30"):
        with pytest.raises(VideoinvError):
            parse_actors(bad)


def _library(tmp_path) -> list:
    names = [f"{m:02d}-{c:02d}-{e:02d}-01-01-{r:02d}-{a:02d}" for m in (1, 2) for c in (1, 2) for e in (1, 4, 7)
             for r in (1, 2) for a in range(1, 9)]
    for n in names:
        touch(tmp_path, f"Actor_{n[-2:]}/{n}.mp4")
    return index(tmp_path)


def test_sampling_is_deterministic_and_independent_of_listing_order(tmp_path):
    videos = _library(tmp_path)
    a = select(videos, 20, seed=3)
    shuffled = list(videos)
    random.Random(1).shuffle(shuffled)
    assert [v.stem for v in select(shuffled, 20, seed=3)] == [v.stem for v in a]
    assert len({v.stem for v in a}) == 20
    assert all(v.modality == "video-only" for v in a)
    assert [v.stem for v in select(videos, 20, seed=4)] != [v.stem for v in a]
    # a larger sample with the same seed extends the smaller one
    assert [v.stem for v in select(videos, 35, seed=3)][:20] == [v.stem for v in a]


def test_sampling_filters(tmp_path):
    videos = _library(tmp_path)
    pool = select(videos, 1000, modality="av", actors=frozenset({2, 5, 6}), vocal="song")
    assert pool and all(v.modality == "av" and v.actor in (2, 5, 6) and v.vocal == "song" for v in pool)
    assert len(pool) == 3 * 3 * 2  # actors x emotions x repetitions
    with pytest.raises(InputError, match="none of the .* matches modality av, actors 20-21"):
        select(videos, 5, modality="av", actors=frozenset({20, 21}))


def test_a_result_made_with_other_settings_is_refused(tmp_path):
    models = {"spec": "random:64:16", "generator": "g"}
    key = ravdess.result_key(BenchSettings(model="random:64:16", crop=256), models)
    other = ravdess.result_key(BenchSettings(model="random:64:16", crop=128), models)
    (tmp_path / "a.json").write_text(json.dumps({"key": key, "frames": 3}))
    (tmp_path / "b.json").write_text(json.dumps({"key": other, "frames": 3}))
    (tmp_path / "c.json").write_text("{not json")
    assert set(ravdess._finished(tmp_path, key, ["a", "c", "d"])) == {"a"}
    with pytest.raises(VideoinvError, match=r"other settings: crop 128 \(now 256\)"):
        ravdess._finished(tmp_path, key, ["a", "b"])
    # where it ran is not part of what it measured
    assert ravdess.result_key(BenchSettings(device="cpu"), {}) == ravdess.result_key(BenchSettings(device="cuda"), {})


# -- the report from hand-made results ------------------------------------------------------------
def fake_video(stem: str, psnr: list, ssim: list, lpips=None, id_=0.9, fps=2.0, tl=1.0) -> dict:
    n = len(psnr)
    v = parse_name(f"{stem}.mp4").describe()
    v["path"] = f"/data/{stem}.mp4"
    return {
        "key": {}, "video": v, "frames": n + 1, "frames_with_face": n, "crop": 256,
        "lpips_unavailable": None if lpips else "LPIPS unavailable: alexnet-owt-7be5be79.pth is missing",
        "output": {"output": f"videos/{stem}.mp4"},
        "summary": {"psnr": sum(psnr) / n, "ssim": sum(ssim) / n, "mse": 0.01,
                    "lpips": None if not lpips else sum(lpips) / n,
                    "id": id_, "tl_id": tl, "tg_id": tl, "quad_jitter": 0.5, "warp": 0.001, "warp_floor": 0.0005,
                    "mask_iou": 0.95, "mask_boundary_change": 0.3, "seam": 0.02},
        "throughput": {"seconds": (n + 1) / fps + 1.0, "metric_seconds": 1.0, "fps": fps, "fps_with_metrics": 1.0},
        "per_frame": {"index": list(range(n + 1)), "time": [i / 30 for i in range(n + 1)],
                      "face": [True] * n + [False], "psnr": psnr + [None], "ssim": ssim + [None],
                      "mse": [0.01] * n + [None], "lpips": (lpips or [None] * n) + [None], "id": [id_] * n + [None],
                      "seam": [0.02] * n + [None], "warp": [None] + [0.001] * (n - 1) + [None]},
    }


META = {"root": "/data", "selection": {"n": 120, "seed": 0, "modality": "video-only", "actors": "all", "vocal": "any"},
        "settings": BenchSettings(model="random:256:32").describe()}


def test_aggregate_pools_frames_and_averages_videos():
    videos = [fake_video("02-01-01-01-01-01-01", [20.0, 22.0, 24.0], [0.5, 0.6, 0.7], fps=2.0, tl=1.0),
              fake_video("02-01-01-01-01-01-02", [30.0], [0.9], fps=4.0, tl=0.9)]
    agg = report.aggregate(videos)
    assert agg["psnr"] == pytest.approx((20 + 22 + 24 + 30) / 4)  # pooled frames, not (22 + 30) / 2
    assert agg["ssim"] == pytest.approx((0.5 + 0.6 + 0.7 + 0.9) / 4)
    assert agg["tl_id"] == pytest.approx(0.95)  # per-video values averaged
    assert agg["frames"] == 6 and agg["frames_with_face"] == 4 and agg["videos"] == 2
    assert agg["fps"] == pytest.approx(6 / (4 / 2.0 + 2 / 4.0))  # all frames over all pipeline seconds
    assert agg["lpips"] is None and "alexnet" in agg["lpips_unavailable"]
    assert [v["video"]["stem"] for v in report.ranked(videos)] == ["02-01-01-01-01-01-02", "02-01-01-01-01-01-01"]


def test_markdown_has_the_papers_row_and_ours():
    videos = [fake_video("02-01-01-01-01-01-01", [20.0, 22.0], [0.5, 0.7]),
              fake_video("02-01-01-01-01-01-02", [25.0], [0.8])]
    text = report.render_markdown(report.aggregate(videos), videos, META)
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[0] == "| Method | SSIM ↑ | PSNR ↑ | MSE ↓ | LPIPS ↓ | ID ↑ |"
    assert "| FeatureStyleEncoder (paper, Table 2) | 0.818 | 26.64 | 0.009 | 0.122 | 0.895 |" in rows
    ours = next(r for r in rows if r.startswith("| ours: random:256:32, 2 videos, 3 frames"))
    cells = [c.strip() for c in ours.strip("|").split("|")]
    assert cells[1:] == ["0.667", "22.33", "0.0100", "unavailable", "0.900 (dlib)"]
    assert "LPIPS unavailable: alexnet-owt-7be5be79.pth is missing" in text
    assert "random weights" in text


def test_markdown_with_lpips_shows_the_number():
    videos = [fake_video("02-01-01-01-01-01-01", [20.0, 22.0], [0.5, 0.7], lpips=[0.2, 0.3])]
    text = report.render_markdown(report.aggregate(videos), videos, META)
    ours = next(line for line in text.splitlines() if line.startswith("| ours:"))
    assert "| 0.250 |" in ours and "unavailable" not in text


def test_csv_has_one_row_per_video_and_blank_missing_values():
    videos = [fake_video("02-01-01-01-01-01-01", [20.0, 22.0], [0.5, 0.7]),
              fake_video("02-01-03-01-01-01-05", [25.0], [0.8])]
    rows = list(csv.DictReader(io.StringIO(report.render_csv(videos))))
    assert [r["video"] for r in rows] == ["02-01-01-01-01-01-01", "02-01-03-01-01-01-05"]
    assert rows[1]["actor"] == "5" and rows[1]["emotion"] == "happy"
    assert float(rows[0]["psnr"]) == pytest.approx(21.0)
    assert rows[0]["lpips"] == ""


def test_html_is_well_formed_and_draws_the_plots():
    videos = [fake_video(f"02-01-0{e}-01-01-01-0{a}", [20.0 + e, 22.0 + a], [0.5, 0.7]) for e in (1, 2) for a in (1, 2)]
    page = report.render_html(report.aggregate(videos), videos, META, [("02-01-01-01-01-01-01", "side_by_side/x.mp4")])
    charts = page.count("<svg ")
    assert charts >= 10 + 5 + 1  # distributions, best/worst over time, throughput
    start = 0
    for _ in range(charts):
        a = page.index("<svg ", start)
        b = page.index("</svg>", a) + len("</svg>")
        ET.fromstring(page[a:b])  # each chart parses as XML
        start = b
    assert "<video" in page and "side_by_side/x.mp4" in page
    assert "0.818" in page and "unavailable" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")  # self-contained


def test_svg_ticks_cover_the_data():
    for lo, hi in [(0.00078, 0.00079), (0.189, 0.1905), (0, 30), (-3.2, 7.7), (5, 5)]:
        ticks = svg.nice_ticks(lo, hi)
        assert ticks[0] <= lo and ticks[-1] >= hi and len(ticks) >= 2
        labels = [svg.tick_format(ticks)(t) for t in ticks]
        assert len(set(labels)) == len(labels), labels


def test_an_empty_series_draws_a_labelled_frame():
    ET.fromstring(svg.strip_plot([None, None], "LPIPS"))
    assert "no values" in svg.line_plot({"a": ([0, 1], [None, None])}, "x")


# -- the CLI's errors -------------------------------------------------------------------------------
def _run(args, capsys) -> tuple[int, str]:
    rc = main(args)
    err = capsys.readouterr().err
    return rc, err


def test_cli_errors_are_one_line(tmp_path, capsys):
    touch(tmp_path, "root/Actor_01/notes.txt")
    rc, err = _run(["bench", "ravdess", str(tmp_path / "root"), "-o", str(tmp_path / "out"), "--model", "random:64:16"],
                   capsys)
    assert rc == 1 and err.startswith("videoinv: error: no RAVDESS videos under") and err.count("\n") == 1
    touch(tmp_path, "root/Actor_01/02-01-01-01-01-01-01.mp4")
    rc, err = _run(["bench", "ravdess", str(tmp_path / "root"), "-o", str(tmp_path / "root" / "res")], capsys)
    assert rc == 1 and "inside ROOT" in err
    rc, err = _run(["bench", "ravdess", str(tmp_path / "root"), "-o", str(tmp_path / "o"), "--actors", "30"], capsys)
    assert rc == 1 and "RAVDESS actors are 1-24" in err
    rc, err = _run(["bench", "ravdess", str(tmp_path / "root"), "-o", str(tmp_path / "o"), "--modality", "av",
                    "--model", "random:64:16"], capsys)
    assert rc == 1 and "none of the 1 RAVDESS videos matches modality av" in err
    (tmp_path / "file").write_text("x")
    rc, err = _run(["bench", "ravdess", str(tmp_path / "root"), "-o", str(tmp_path / "file"),
                    "--model", "random:64:16"], capsys)
    assert rc == 1 and "is a file" in err
    assert (tmp_path / "file").read_text() == "x"


def test_cli_fse_without_weights_says_what_to_get(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VIDEOINV_HOME", str(tmp_path / "empty-cache"))
    touch(tmp_path, "root/Actor_01/02-01-01-01-01-01-01.mp4")
    rc, err = _run(["bench", "ravdess", str(tmp_path / "root"), "-o", str(tmp_path / "out")], capsys)
    assert rc != 0 and err.count("\n") == 1 and err.startswith("videoinv: error:")
    assert not (tmp_path / "out" / "videos").exists() or not any((tmp_path / "out" / "videos").iterdir())


def test_cli_compare_missing_input(tmp_path, capsys):
    rc, err = _run(["bench", "compare", str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")], capsys)
    assert rc == 1 and err.startswith("videoinv: error:") and "a.mp4" in err and err.count("\n") == 1
