"""`videoinv probe`, `sample`, `stages`, `--version`, and the parsing of times, rates and sizes."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction

import pytest

import videoinv
from videoinv.errors import VideoinvError
from videoinv.video.timing import TimePoint, parse_rate, parse_size

from conftest import ffprobe, read_all


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "videoinv", *map(str, args)], capture_output=True, text=True)


def probe_json(path, *extra) -> dict:
    result = run("probe", path, "--json", *extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_probe_describes_streams_colour_and_audio(clips):
    info = probe_json(clips.bt709)
    assert (info["width"], info["height"], info["fps"], info["frame_count"]) == (1280, 720, "30/1", 60)
    assert info["vfr"] is False and info["orientation"] == "none"
    assert info["colour_tags"] == {"matrix": "bt709", "range": "tv", "primaries": "bt709", "transfer": "bt709"}
    assert info["colour"]["assumed"] == []
    assert info["has_audio"] and info["audio"][0]["codec"] == "aac" and info["audio"][0]["sample_rate"] == 48000
    assert abs(info["duration"] - float(ffprobe(clips.bt709)["format"]["duration"])) < 1e-3


def test_probe_rotation_untagged_vfr_no_audio(clips):
    rot = probe_json(clips.rot90)
    assert (rot["width"], rot["height"], rot["coded_width"]) == (720, 1280, 1280)
    assert rot["orientation"] != "none"
    untagged = probe_json(clips.untagged)
    assert untagged["colour_tags"]["matrix"] == "unspecified"
    assert untagged["colour"]["matrix"] == "bt709" and "matrix" in untagged["colour"]["assumed"]
    vfr = probe_json(clips.vfr, "--scan")
    assert vfr["vfr"] is True and vfr["frame_count"] == 60 and vfr["frame_count_exact"]
    assert probe_json(clips.no_audio)["has_audio"] is False


def test_probe_table_for_people(clips):
    result = run("probe", clips.rot90)
    assert result.returncode == 0
    for words in ("720x1280", "stored 1280x720", "rotation", "30.000 fps", "bt709", "aac"):
        assert words in result.stdout


@pytest.mark.parametrize("name, picture_first", [("cover.mp4", False), ("cover.mkv", True)])
def test_a_cover_picture_is_not_taken_for_the_video(clips, tmp_path, name, picture_first):
    # MP4 marks cover art attached_pic; Matroska keeps no such mark, so a picture stream put first
    # was edited as the video: one 320x240 frame out of a 60-frame clip
    from conftest import ffmpeg

    picture, src = tmp_path / "cover.png", tmp_path / name
    out = tmp_path / f"out{src.suffix}"
    ffmpeg("-f", "lavfi", "-i", "testsrc=s=320x240:d=1", "-frames:v", "1", picture)
    inputs = ["-i", picture, "-i", clips.bt709] if picture_first else ["-i", clips.bt709, "-i", picture]
    maps = ["-map", "0", "-map", "1"]
    pic = 0 if picture_first else 1
    ffmpeg(*inputs, *maps, "-c", "copy", f"-c:v:{pic}", "png", f"-disposition:v:{pic}", "attached_pic", src)
    codecs = [s["codec_name"] for s in ffprobe(src)["streams"] if s["codec_type"] == "video"]
    assert codecs == (["png", "h264"] if picture_first else ["h264", "png"])
    info = videoinv.probe(src)
    assert (info.width, info.height) == (1280, 720)
    summary = videoinv.edit_video(src, out, chain="copy")
    assert (summary["frames"], summary["width"]) == (60, 1280) and len(read_all(out)) == 60


def test_quiet_and_verbose_may_come_before_the_command(clips, tmp_path):
    # 'videoinv -q edit ...' was a usage error (exit 2): the flags were the commands' only
    out = tmp_path / "o.mp4"
    args = ["filter-file", clips.bt709, out, "--chain", "copy", "-y"]
    plain, quiet, verbose = run(*args), run("-q", *args), run("-v", *args)
    assert plain.returncode == quiet.returncode == verbose.returncode == 0
    assert quiet.stderr == "" and plain.stderr.startswith("videoinv: wrote")
    assert "videoinv: encoder: " in verbose.stderr and "videoinv: encoder: " not in plain.stderr
    assert run("filter-file", *args[1:], "-v").stderr.count("videoinv: encoder: ") == 1  # after it, as before


def test_python_api_mirrors_the_cli(clips, tmp_path):
    info = videoinv.probe(clips.bt709)
    assert (info.width, info.height, info.has_audio) == (1280, 720, True)
    summary = videoinv.edit_video(clips.bt709, tmp_path / "o.mp4", chain="copy", start="10f", end="20f")
    assert summary["frames"] == 10 and len(read_all(tmp_path / "o.mp4")) == 10


def test_python_api_takes_one_edit_and_segments_as_plain_text(clips, tmp_path):
    # a string used to be taken letter by letter: "bad edit 's'", "'m' is not a valid segment"
    options = videoinv.EditOptions(edits="sefa0=1", segments="mouth+eyes", exclude="eyes")
    assert (options.edits, options.segments, options.exclude) == (["sefa0=1"], ("mouth", "eyes"), ("eyes",))
    summary = videoinv.edit_video(clips.bt709, tmp_path / "o.mp4", edits="sefa0=1", model="random:64:16", end="3f")
    assert summary["frames"] == 3


def test_sample_clip_has_a_face_sized_picture_and_sound(tmp_path):
    out = tmp_path / "sample.mp4"
    result = run("sample", out, "--seconds", "1", "--size", "640x360", "-q")
    assert result.returncode == 0, result.stderr
    info = probe_json(out)
    assert (info["width"], info["height"], info["frame_count"]) == (640, 360, 30)
    assert info["colour_tags"]["matrix"] == "bt709" and info["has_audio"]
    frames = read_all(out)
    centre = frames[0].image[100:260, 240:400].astype(float)
    assert centre.std() > 20  # a photograph, not a flat background
    assert abs(frames[0].image.astype(float) - frames[-1].image.astype(float)).mean() > 1  # it moves


def test_version_and_stages():
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"videoinv {videoinv.__version__}"
    stages = run("stages")
    names = [line.split()[0] for line in stages.stdout.splitlines() if line and not line.startswith(" ")]
    assert stages.returncode == 0 and {"copy", "detect", "align", "blend", "annotate"} <= set(names)
    assert "    every=int" in stages.stdout


def test_usage_errors_exit_2():
    result = run("edit")
    assert result.returncode == 2 and "Missing argument" in result.stderr


@pytest.mark.parametrize("text, expected", [
    ("12.5", TimePoint(seconds=Fraction(25, 2))), ("12.5s", TimePoint(seconds=Fraction(25, 2))),
    ("1:02.5", TimePoint(seconds=Fraction(125, 2))), ("01:00:03.250", TimePoint(seconds=Fraction(14413, 4))),
    ("150f", TimePoint(frame=150)), (" 7 ", TimePoint(seconds=Fraction(7))),
])
def test_time_points(text, expected):
    assert TimePoint.parse(text) == expected


@pytest.mark.parametrize("bad", ["-1", "1:75", "1:60:00", "f150", "soon", "1.2.3"])
def test_bad_time_points(bad):
    with pytest.raises(VideoinvError, match="time"):
        TimePoint.parse(bad)


def test_rates_and_sizes():
    assert parse_rate("30000/1001") == Fraction(30000, 1001)
    assert parse_rate("29.97") == Fraction(30000, 1001)
    assert parse_rate("23.976") == Fraction(24000, 1001)
    assert parse_rate("25") == 25 and parse_rate(12.5) == Fraction(25, 2)
    assert parse_size("1280x720") == (1280, 720)
    for bad in ("0", "-5", "1/0", "fast"):
        with pytest.raises(VideoinvError):
            parse_rate(bad)
    for bad in ("1280", "0x720", "axb"):
        with pytest.raises(VideoinvError):
            parse_size(bad)
