"""`videoinv edit --chain copy`: frames, colours, timing and audio survive the round trip."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest

from videoinv.cli import main
from videoinv.pipeline.jobs import edit_video
from videoinv.video.writer import EncodeOptions

from conftest import (audio_packets, audio_packets_hash, ffmpeg, ffmpeg_frames, ffprobe, first_audio_time, read_all,
                      video_times)

CASES = ["bt709", "bt601", "full_range", "untagged", "rot90", "odd", "no_audio", "vfr"]


def _edit(src, out, *extra) -> None:
    assert main(["edit", str(src), "-o", str(out), "--chain", "copy", "-q", *extra]) == 0


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("through_rgb", [False, True], ids=["as-decoded", "through-rgb"])
def test_lossless_copy_keeps_frames_timing_and_audio(clips, tmp_path, case, through_rgb):
    src = getattr(clips, case)
    out = tmp_path / "out.mkv"
    if through_rgb:  # what every edited frame goes through: decoded -> RGB -> encoded
        summary = edit_video(src, out, "copy", encode=EncodeOptions(codec="ffv1"), passthrough=False)
        assert summary["passed_through"] == 0
    else:
        _edit(src, out, "--codec", "ffv1")

    before, after = read_all(src), read_all(out)
    assert len(after) == len(before) > 0
    assert after[0].image.shape == before[0].image.shape
    worst = max(int(np.abs(a.image.astype(int) - b.image.astype(int)).max()) for a, b in zip(before, after))
    assert worst <= 2, f"{case}: output differs from the decoded input by up to {worst} levels"

    # Matroska cannot store the negative start of AAC priming, so it shifts every stream by
    # the same amount: compare times from the first frame, and the audio/video offset.
    t_in, tb_in = video_times(src)
    t_out, tb_out = video_times(out)
    tick = max(tb_in, tb_out)
    assert len(t_in) == len(t_out)
    assert all(abs((a - t_in[0]) - (b - t_out[0])) <= tick for a, b in zip(t_in, t_out)), "timing changed"
    if case != "no_audio":
        sync_in = t_in[0] - first_audio_time(src)
        sync_out = t_out[0] - first_audio_time(out)
        assert abs(sync_in - sync_out) <= tick, "audio/video offset changed"
    duration_in = float(ffprobe(src)["format"]["duration"])
    duration_out = float(ffprobe(out)["format"]["duration"])
    assert abs(duration_in - duration_out) <= 1 / 30

    h_in, n_in = audio_packets_hash(src)
    h_out, n_out = audio_packets_hash(out)
    assert (h_out, n_out) == (h_in, n_in)
    assert (n_out > 0) == (case != "no_audio")


@pytest.mark.parametrize("case", ["bt709", "bt601", "full_range", "untagged", "rot90"])
def test_another_decoder_sees_the_frames_we_wrote(clips, tmp_path, case):
    """The output's colour tags match its pixels: the ffmpeg program decodes our 4:4:4
    lossless output to the RGB frames we read from the input (and upright)."""
    src = getattr(clips, case)
    out = tmp_path / "out.mp4"
    _edit(src, out, "--crf", "0", "--preset", "ultrafast", "--pix-fmt", "yuv444p")
    w, h = (720, 1280) if case == "rot90" else (1280, 720)
    theirs = ffmpeg_frames(out, w, h)
    ours = np.stack([r.image for r in read_all(src)])
    assert theirs.shape == ours.shape
    assert int(np.abs(theirs.astype(int) - ours.astype(int)).max()) <= 2


def test_mp4_output_keeps_variable_frame_rate_timestamps_exactly(clips, tmp_path):
    out = tmp_path / "out.mp4"
    _edit(clips.vfr, out)
    t_in, tb_in = video_times(clips.vfr)
    t_out, tb_out = video_times(out)
    assert len(t_in) == len(t_out) == 60
    assert all(abs(a - b) <= max(tb_in, tb_out) for a, b in zip(t_in, t_out))
    steps = sorted({b - a for a, b in zip(t_out, t_out[1:])})
    assert [float(s) for s in steps] == pytest.approx([1 / 30, 1 / 15])
    stream_duration = float([s for s in ffprobe(out)["streams"] if s["codec_type"] == "video"][0]["duration"])
    source_duration = float([s for s in ffprobe(clips.vfr)["streams"] if s["codec_type"] == "video"][0]["duration"])
    assert abs(stream_duration - source_duration) <= float(max(tb_in, tb_out))


def test_avi_output_has_one_frame_per_tick_of_its_fixed_rate(clips, tmp_path):
    # AVI keeps no timestamps: written with the source's time base it became 613 frames at 600 fps
    # for 30 at 30, and AAC's priming packet pushed every frame after the first one tick later
    out = tmp_path / "out.avi"
    _edit(clips.bt709, out, "--codec", "mpeg4")
    times, tb = video_times(out)
    assert tb == Fraction(1, 30) and times == [Fraction(i, 30) for i in range(60)]
    assert len(read_all(out)) == 60 and first_audio_time(out) == 0
    assert len(audio_packets(out)) == len(audio_packets(clips.bt709))
    # variable timing lands on the rate's grid (a gap replays the frame before), with a warning
    result = subprocess.run([sys.executable, "-m", "videoinv", "edit", str(clips.vfr), "-o", str(tmp_path / "vfr.avi"),
                             "--chain", "copy", "--codec", "mpeg4"], capture_output=True, text=True)
    assert result.returncode == 0 and "fixed frame rate" in result.stderr and "a .mkv or .mp4 keeps it" in result.stderr
    (t_in, _), (t_out, _) = video_times(clips.vfr), video_times(tmp_path / "vfr.avi")
    assert len(t_out) == 60 and all(abs(a - b) <= Fraction(1, 60) for a, b in zip(t_in, t_out))


def test_default_h264_output_is_bt709_tagged_and_close(clips, tmp_path):
    out = tmp_path / "out.mp4"
    _edit(clips.bt601, out)
    v = [s for s in ffprobe(out)["streams"] if s["codec_type"] == "video"][0]
    assert (v["codec_name"], v["pix_fmt"], v["color_space"], v["color_range"]) == ("h264", "yuv420p", "bt709", "tv")
    source = [r.image.astype(int) for r in read_all(clips.bt601)]
    right = [r.image.astype(int) for r in read_all(out)]
    with av.open(str(out)) as c:  # the same file read as if it were BT.601
        wrong = [f.reformat(format="rgb24", src_colorspace=5, src_color_range=1, dst_color_range=2)
                 .to_ndarray().astype(int) for f in c.decode(video=0)]
    assert len(source) == len(right) == len(wrong)
    err_right = np.mean([np.abs(a - b).mean() for a, b in zip(source, right)])
    err_wrong = np.mean([np.abs(a - b).mean() for a, b in zip(source, wrong)])
    # 4:2:0 of testsrc2's saturated edges alone costs ~1.9 levels on average (measured with the
    # ffmpeg program too); CRF 18 adds little. A mismatched matrix costs several times more.
    assert err_right < 2.5 and err_right < err_wrong / 3


def test_rotated_clip_is_written_upright_without_rotation_metadata(clips, tmp_path):
    out = tmp_path / "out.mkv"
    _edit(clips.rot90, out, "--codec", "ffv1")
    v = [s for s in ffprobe(out)["streams"] if s["codec_type"] == "video"][0]
    assert (v["width"], v["height"]) == (720, 1280)
    assert not any("rotation" in sd for sd in v.get("side_data_list", []))
    upright = ffmpeg_frames(clips.rot90, 720, 1280).astype(int)
    ours = np.stack([r.image for r in read_all(out)]).astype(int)
    # the two decoders upsample 4:2:0 chroma differently (~1.5 levels on testsrc2's edges);
    # the other rotation direction is far off (exact checks of every orientation: test_orientation)
    assert np.abs(upright - ours).mean() < 2.5
    assert np.abs(upright - ours[:, ::-1, ::-1]).mean() > 20


@pytest.mark.parametrize("odd, size", [("pad", (642, 362)), ("crop", (640, 360))])
def test_odd_size_with_420_is_padded_or_cropped_by_one(clips, tmp_path, odd, size, caplog):
    out = tmp_path / "out.mp4"
    _edit(clips.odd, out, "--odd", odd, "--crf", "0")  # lossless H.264: only 4:2:0 remains
    v = [s for s in ffprobe(out)["streams"] if s["codec_type"] == "video"][0]
    assert (v["width"], v["height"]) == size
    src, dst = read_all(clips.odd), read_all(out)
    assert len(src) == len(dst)
    a, b = src[10].image.astype(int), dst[10].image.astype(int)
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    # the same picture, not moved by the pad/crop: no one-pixel shift matches better
    # (4:2:0 of this sharp 4:4:4 content costs ~3.7 levels on average even losslessly)
    err = {(dy, dx): np.abs(a[1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx] - b[1:h - 1, 1:w - 1]).mean()
           for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    assert min(err, key=err.get) == (0, 0) and err[0, 0] < 5
    if odd == "pad":  # the extra column/row repeats the edge
        assert np.abs(b[:360, 641] - b[:360, 640]).mean() < 3
        assert np.abs(b[361, :640] - b[360, :640]).mean() < 3


def test_trimmed_range_starts_at_zero_with_matching_audio(clips, tmp_path):
    out = tmp_path / "out.mp4"
    _edit(clips.bt709, out, "--start", "0.5", "--end", "1.5")
    frames = read_all(out)
    source = read_all(clips.bt709)
    assert len(frames) == 30
    assert frames[0].time == 0.0
    diff = np.abs(frames[0].image.astype(int) - source[15].image.astype(int)).mean()
    assert diff < 2.0  # the first output frame is source frame 15 (0.5 s)
    src_packets = audio_packets(clips.bt709)
    out_packets = audio_packets(out)
    # a contiguous run of the source's packets, unchanged, covering about one second
    first = src_packets.index(out_packets[0])
    assert src_packets[first:first + len(out_packets)] == out_packets
    assert 1.0 <= len(out_packets) * 1024 / 48000 <= 1.1


def test_audio_drop_and_audio_from_another_file(clips, tmp_path):
    dropped = tmp_path / "dropped.mp4"
    _edit(clips.bt709, dropped, "--audio", "drop")
    assert [s["codec_type"] for s in ffprobe(dropped)["streams"]] == ["video"]

    wav = tmp_path / "voice.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:sample_rate=44100:duration=5",
                                  "-ac", "2", wav)
    replaced = tmp_path / "replaced.mp4"
    _edit(clips.bt709, replaced, "--audio", str(wav))
    streams = ffprobe(replaced)["streams"]
    audio = [s for s in streams if s["codec_type"] == "audio"]
    assert len(audio) == 1 and audio[0]["codec_name"] == "aac"  # PCM cannot go into MP4
    assert abs(float(audio[0]["duration"]) - 2.0) < 0.1  # cut at the video's end

    m4a = tmp_path / "voice.m4a"
    ffmpeg("-i", wav, "-c:a", "aac", m4a)
    copied = tmp_path / "copied.mp4"
    _edit(clips.bt709, copied, "--audio", str(m4a))
    theirs, ours = audio_packets(m4a), audio_packets(copied)
    assert ours == theirs[:len(ours)] and 2.0 <= len(ours) * 1024 / 44100 <= 2.1


def _x264_settings(path) -> dict[str, str]:
    """The settings x264 wrote into the stream it encoded (its SEI text: "... options: k=v ...")."""
    found = re.search(rb"x264 - core \d+.*? options: ([^\x00]*)", path.read_bytes())
    assert found, f"{path} has no x264 settings"
    return dict(kv.split("=", 1) for kv in found.group(1).decode("ascii", "replace").split() if "=" in kv)


def test_x264_runs_veryfast_at_crf_18_by_default_and_takes_the_users_preset(clips, tmp_path):
    default, medium = tmp_path / "default.mp4", tmp_path / "medium.mp4"
    _edit(clips.bt709, default)
    _edit(clips.bt709, medium, "--preset", "medium", "--crf", "20")
    # x264's own parameters of each preset: veryfast searches 1 reference at subpel level 2
    # with a 10-frame lookahead, medium 3 references at level 7 with 40 frames
    ours = _x264_settings(default)
    assert (ours["subme"], ours["ref"], ours["rc_lookahead"], ours["crf"]) == ("2", "1", "10", "18.0")
    theirs = _x264_settings(medium)
    assert (theirs["subme"], theirs["ref"], theirs["rc_lookahead"], theirs["crf"]) == ("7", "3", "40", "20.0")


def test_hevc_encoder(clips, tmp_path):
    out = tmp_path / "hevc.mp4"
    _edit(clips.bt709, out, "--codec", "libx265", "--preset", "ultrafast", "--crf", "20")
    v = [s for s in ffprobe(out)["streams"] if s["codec_type"] == "video"][0]
    assert (v["codec_name"], v["color_space"], v["color_range"]) == ("hevc", "bt709", "tv")
    a, b = read_all(clips.bt709), read_all(out)
    assert len(a) == len(b) == 60
    assert np.mean([np.abs(x.image.astype(int) - y.image.astype(int)).mean() for x, y in zip(a, b)]) < 3


def test_quiet_means_quiet_with_encoders_that_print_banners(clips, tmp_path):
    # x265 and SVT-AV1 print their settings straight to stderr (20-odd lines) in the middle of
    # the progress bar, and even with -q
    codecs = [c for c in ("libx265", "libsvtav1") if c in av.codecs_available]
    assert codecs  # PyAV's wheels carry both
    for codec in codecs:
        out = tmp_path / f"{codec}.mp4"
        for flags, banner in ((["-q"], False), ([], False), (["-v"], True)):
            result = subprocess.run([sys.executable, "-m", "videoinv", "edit", str(clips.bt709), "-o", str(out), "-y",
                                     "--chain", "copy", "--codec", codec, "--end", "5f", *flags],
                                    capture_output=True, text=True, env={k: v for k, v in os.environ.items()
                                                                         if k != "SVT_LOG"})
            assert result.returncode == 0, result.stderr
            printed = [line for line in result.stderr.splitlines() if not line.startswith("videoinv:")]
            assert bool(printed) == banner, (codec, flags, printed[:3])
            if flags == ["-q"]:
                assert result.stderr == ""
        assert len(read_all(out)) == 5


def test_an_encoder_without_yuv420p_gets_its_own_pixel_format(clips, tmp_path):
    # prores_ks takes 4:2:2 and 4:4:4 only: without --pix-fmt it failed to open ("Invalid argument")
    out = tmp_path / "prores.mov"
    _edit(clips.bt709, out, "--codec", "prores_ks", "--end", "5f")
    v = [s for s in ffprobe(out)["streams"] if s["codec_type"] == "video"][0]
    assert (v["codec_name"], v["pix_fmt"]) == ("prores", "yuv422p10le")
    a, b = read_all(clips.bt709)[:5], read_all(out)
    assert len(b) == 5 and np.mean([np.abs(x.image.astype(int) - y.image.astype(int)).mean() for x, y in zip(a, b)]) < 2


def test_mpeg4_takes_a_fixed_quantiser(clips, tmp_path):
    # mpeg4 (and MPEG-1/2) ignored --crf and ran at FFmpeg's 200 kb/s: 33 dB on the sample clip
    fine, coarse = tmp_path / "fine.avi", tmp_path / "coarse.avi"
    _edit(clips.bt709, fine, "--codec", "mpeg4")  # quantiser 2 by default
    _edit(clips.bt709, coarse, "--codec", "mpeg4", "--crf", "20")
    source = np.stack([r.image for r in read_all(clips.bt709)]).astype(int)
    error = {out: np.abs(np.stack([r.image for r in read_all(out)]).astype(int) - source).mean() for out in (fine, coarse)}
    assert error[fine] < 1.5 and error[coarse] > 2 * error[fine]
    assert fine.stat().st_size > 2 * coarse.stat().st_size
    result = subprocess.run([sys.executable, "-m", "videoinv", "edit", str(clips.bt709), "-o", str(tmp_path / "x.avi"),
                             "--chain", "copy", "--codec", "mpeg4", "--crf", "0"], capture_output=True, text=True)
    assert result.returncode == 1 and "--crf 0 is outside mpeg4's range 1-31" in result.stderr


def test_nvenc_works_where_there_is_a_gpu_and_says_why_where_not(clips, tmp_path):
    out = tmp_path / "nv.mp4"
    result = subprocess.run([sys.executable, "-m", "videoinv", "edit", str(clips.bt709), "-o", str(out),
                             "--codec", "h264_nvenc", "-q"], capture_output=True, text=True)
    if result.returncode == 0:
        v = [s for s in ffprobe(out)["streams"] if s["codec_type"] == "video"][0]
        assert v["codec_name"] == "h264" and len(read_all(out)) == 60
    else:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "h264_nvenc" in lines[0] and "GPU" in lines[0]
        assert not out.exists()


def _srt(path) -> str:
    return subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-map", "0:s:0", "-f", "srt", "-"],
                          check=True, capture_output=True, text=True).stdout


def _kinds(path) -> list[str]:
    return [s["codec_type"] for s in ffprobe(path)["streams"]]


def test_subtitles_are_copied_where_the_file_type_can_hold_them(clips, tmp_path):
    # they were left out without a word
    cues = tmp_path / "cues.srt"
    cues.write_text("1\n00:00:00,000 --> 00:00:00,900\nHello\n\n2\n00:00:01,000 --> 00:00:01,500\nWorld\n")
    mkv, mp4 = tmp_path / "in.mkv", tmp_path / "in.mp4"
    ffmpeg("-i", clips.bt709, "-i", cues, "-map", "0", "-map", "1", "-c", "copy", mkv)
    ffmpeg("-i", clips.bt709, "-i", cues, "-map", "0", "-map", "1", "-c", "copy", "-c:s", "mov_text", mp4)

    def edit(src, out, *extra):
        result = subprocess.run([sys.executable, "-m", "videoinv", "edit", str(src), "-o", str(out), "--chain", "copy",
                                 "--json", *extra], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout), result.stderr

    probed = json.loads(subprocess.run([sys.executable, "-m", "videoinv", "probe", str(mkv), "--json"], check=True,
                                       capture_output=True, text=True).stdout)
    assert probed["subtitles"] == [{"index": 2, "codec": "srt", "language": None}]
    summary, _ = edit(mkv, tmp_path / "out.mkv")
    assert summary["subtitles"] == 1 and _kinds(tmp_path / "out.mkv") == ["video", "audio", "subtitle"]
    assert _srt(tmp_path / "out.mkv") == _srt(mkv) and "World" in _srt(mkv)
    summary, _ = edit(mp4, tmp_path / "out.mp4")  # MP4's own text subtitles
    assert summary["subtitles"] == 1 and _srt(tmp_path / "out.mp4") == _srt(mp4)
    # trimmed: a cue across the start is cut there, and the output still starts at 0
    # (the audio packet across the start may begin a few ms before it: Matroska then starts all at that)
    edit(mkv, tmp_path / "trim.mkv", "--start", "0.5s")
    video_start = video_times(tmp_path / "trim.mkv")[0][0]
    assert video_start < Fraction(1024, 48000)
    with av.open(str(tmp_path / "trim.mkv")) as c:
        s = c.streams.subtitles[0]
        cues = [(round(float(p.pts * s.time_base - video_start), 2), round(float(p.duration * s.time_base), 2))
                for p in c.demux(s) if p.size]
    assert cues == [(0.0, 0.4), (0.5, 0.5)]
    summary, _ = edit(mkv, tmp_path / "silent.mkv", "--audio", "drop")  # subtitles are not audio
    assert summary["audio"] == "none" and _kinds(tmp_path / "silent.mkv") == ["video", "subtitle"]
    summary, err = edit(mkv, tmp_path / "srt.mp4")  # SubRip does not go into MP4: said, not hidden
    assert summary["subtitles"] == 0 and _kinds(tmp_path / "srt.mp4") == ["video", "audio"]
    assert "subtitle stream #2 (srt) of" in err and "left out (a .mkv keeps it)" in err
    # filter-file (the ffmpeg program around the raw pipe) keeps them the same way
    for out, kinds in (("ff.mkv", ["video", "subtitle"]), ("ff.mp4", ["video"])):
        result = subprocess.run([sys.executable, "-m", "videoinv", "filter-file", str(mkv), str(tmp_path / out),
                                 "--audio", "drop"], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert _kinds(tmp_path / out) == kinds and ("left out (a .mkv keeps it)" in result.stderr) == (out == "ff.mp4")
        said = "audio none, 1 subtitle stream copied in " if out == "ff.mkv" else "audio none in "
        assert said in result.stderr.splitlines()[-1]  # the summary says what it kept, as edit's does
    assert _srt(tmp_path / "ff.mkv") == _srt(mkv)


def _attached(path) -> list[tuple[str, str, bytes]]:
    """(file name, MIME type, bytes) of each file attached to ``path``, as ffmpeg dumps them."""
    found = []
    for stream in ffprobe(path)["streams"]:
        if stream["codec_type"] == "attachment":
            dump = path.parent / f"dump-{stream['index']}"
            subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", f"-dump_attachment:{stream['index']}", str(dump),
                            "-i", str(path)], capture_output=True)  # exits 1 (no output named) after dumping
            found.append((stream["tags"]["filename"], stream["tags"]["mimetype"], dump.read_bytes()))
    return found


def test_attached_files_are_kept_where_the_file_type_can_hold_them(clips, tmp_path):
    # the fonts a Matroska file's styled subtitles are drawn with were left out without a word
    font, notes = tmp_path / "Face Sans.ttf", tmp_path / "notes.txt"
    font.write_bytes(bytes(range(256)) * 40)
    notes.write_text("made on set\n")
    mkv = tmp_path / "in.mkv"
    ffmpeg("-i", clips.bt709, "-attach", font, "-metadata:s:t:0", "mimetype=font/ttf", "-attach", notes,
           "-metadata:s:t:1", "mimetype=text/plain", "-c", "copy", mkv)
    files = _attached(mkv)
    assert [(name, mime) for name, mime, _ in files] == [("Face Sans.ttf", "font/ttf"), ("notes.txt", "text/plain")]
    # probe lists them, so the user knows what goes with the video
    probed = json.loads(subprocess.run([sys.executable, "-m", "videoinv", "probe", str(mkv), "--json"], check=True,
                                       capture_output=True, text=True).stdout)
    assert [(a["filename"], a["mimetype"], a["size"]) for a in probed["attachments"]] == [
        (name, mime, len(data)) for name, mime, data in files]
    table = subprocess.run([sys.executable, "-m", "videoinv", "probe", str(mkv)], check=True, capture_output=True,
                           text=True).stdout
    assert "Face Sans.ttf (font/ttf, 10,240 bytes)" in table
    for command in (["edit", mkv, "-o", tmp_path / "e.mkv", "--start", "5f"],
                    ["filter-file", mkv, tmp_path / "f.mkv", "--start", "5f"]):
        result = subprocess.run([sys.executable, "-m", "videoinv", *map(str, command), "--chain", "copy"],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "has attached files" not in result.stderr
    assert _attached(tmp_path / "e.mkv") == _attached(tmp_path / "f.mkv") == files
    # a file type without attachments says what it left out; a picture has no use for them
    said = "has attached files (Face Sans.ttf, notes.txt) that the output's file type (mp4) cannot hold: left out"
    for command, warned in ((["edit", mkv, "-o", tmp_path / "e.mp4"], True), (["filter-file", mkv, tmp_path / "f.mp4"], True),
                            (["edit", mkv, "-o", tmp_path / "e.png", "--end", "1f"], False)):
        result = subprocess.run([sys.executable, "-m", "videoinv", *map(str, command), "--chain", "copy"],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert (said in result.stderr) == warned, result.stderr


def _cover(path) -> tuple[bytes, dict] | None:
    """The cover picture of ``path`` (its bytes, and its tags: Matroska's file name and type)."""
    covers = [s for s in ffprobe(path)["streams"] if s.get("disposition", {}).get("attached_pic")]
    if not covers:
        return None
    picture = path.parent / f"{path.name}.cover"
    ffmpeg("-i", path, "-map", f"0:{covers[0]['index']}", "-c", "copy", "-f", "image2", picture)
    return picture.read_bytes(), {k: v for k, v in covers[0].get("tags", {}).items() if k in ("filename", "mimetype")}


def test_a_cover_picture_is_kept_in_mp4_and_matroska(clips, tmp_path):
    # yt-dlp's --embed-thumbnail writes one; it was left out without a word
    cover = tmp_path / "thumb.jpg"
    ffmpeg("-i", clips.bt709, "-frames:v", "1", "-vf", "scale=160:90", cover)
    mp4 = tmp_path / "in.mp4"
    ffmpeg("-i", clips.bt709, "-i", cover, "-map", "0", "-map", "1", "-c", "copy", "-disposition:v:1", "attached_pic", mp4)
    picture = cover.read_bytes()
    assert _cover(mp4) == (picture, {})
    probed = json.loads(subprocess.run([sys.executable, "-m", "videoinv", "probe", str(mp4), "--json"], check=True,
                                       capture_output=True, text=True).stdout)
    assert probed["cover"] == {"index": 2, "codec": "mjpeg", "width": 160, "height": 90, "filename": None}
    assert probed["stream_index"] == 0 and (probed["width"], probed["height"]) != (160, 90)  # the video, not the cover
    said = "the cover picture of"
    as_file = {"filename": "cover.jpg", "mimetype": "image/jpeg"}
    for command, out, kept in ((["edit", mp4, "-o"], "e.mp4", {}), (["filter-file", mp4], "f.mp4", {}),
                               (["edit", mp4, "-o"], "e.mkv", as_file), (["filter-file", mp4], "f.mkv", as_file),
                               (["edit", mp4, "-o"], "e.mov", None), (["filter-file", mp4], "f.mov", None),
                               (["edit", mp4, "--end", "1f", "-o"], "e.png", None)):
        out = tmp_path / out
        # a range too (the cover packet has no time: the ffmpeg program's -ss dropped it)
        result = subprocess.run([sys.executable, "-m", "videoinv", *map(str, command), str(out), "--chain", "copy",
                                 *(["--start", "5f"] if out.suffix != ".png" else [])], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert (said in result.stderr) == (out.suffix == ".mov"), result.stderr  # a picture has no use for one
        if kept is not None:
            assert _cover(out) == (picture, kept)
            assert [s["codec_type"] for s in ffprobe(out)["streams"]][:2] == ["video", "audio"]  # the edit is the video
    # a Matroska cover keeps its own file name
    mkv = tmp_path / "poster.mkv"
    ffmpeg("-i", clips.bt709, "-attach", cover, "-metadata:s:t:0", "mimetype=image/jpeg", "-c", "copy", mkv)
    assert _cover(mkv) == (picture, {"filename": "thumb.jpg", "mimetype": "image/jpeg"})
    for command in (["edit", mkv, "-o", tmp_path / "p.mkv"], ["filter-file", mkv, tmp_path / "fp.mkv"]):
        subprocess.run([sys.executable, "-m", "videoinv", *map(str, command), "--chain", "copy"], check=True,
                       capture_output=True)
    assert _cover(tmp_path / "p.mkv") == _cover(tmp_path / "fp.mkv") == _cover(mkv)


def _with_chapters(source, out, metadata: str):
    """``source`` copied into ``out`` with the tags and chapters of FFMETADATA text ``metadata``."""
    text = out.with_suffix(".txt")
    text.write_text(";FFMETADATA1\n" + metadata)
    ffmpeg("-i", source, "-i", text, "-map", "0", "-map_metadata", "1", "-map_chapters", "1", "-c", "copy", out)
    return out


def _probe_tags(path) -> dict:
    return json.loads(subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_chapters",
                                      "-show_format", str(path)], check=True, capture_output=True).stdout)


def _chapter_marks(path) -> list[tuple[str, float, float]]:
    """(title, start, end) of each chapter of ``path``, in seconds."""
    return [(c["tags"]["title"], float(c["start_time"]), float(c["end_time"])) for c in _probe_tags(path)["chapters"]]


def test_file_tags_and_chapters_are_kept(clips, tmp_path):
    # title, creation time and chapters were dropped (the ffmpeg program keeps them)
    src = _with_chapters(clips.bt709, tmp_path / "in.mkv", "title=Our clip\ncreation_time=2024-05-01T10:00:00Z\n"
                         "[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=800\ntitle=Intro\n"
                         "[CHAPTER]\nTIMEBASE=1/1000\nSTART=800\nEND=2000\ntitle=Main\n")
    whole, trimmed = tmp_path / "whole.mkv", tmp_path / "trimmed.mkv"
    _edit(src, whole)
    _edit(src, trimmed, "--start", "0.5s")
    probe = _probe_tags
    tags = {k.lower(): v for k, v in probe(whole)["format"]["tags"].items()}
    assert tags["title"] == "Our clip" and tags["creation_time"].startswith("2024-05-01T10:00:00")
    marks = lambda path: [(title, round(start, 2), round(end, 2)) for title, start, end in _chapter_marks(path)]  # noqa: E731
    assert marks(whole) == [("Intro", 0.0, 0.8), ("Main", 0.8, 2.0)]
    # trimmed: the marks stay on the same pictures (the first frame kept is the source's 16th, at its
    # time in the file: Matroska may start the video a few ms in), give or take Matroska's own shift
    first = float(video_times(src)[0][15])
    (_, s0, e0), (_, s1, e1) = marks(trimmed)
    assert s0 == 0.0 and abs(e0 - (0.8 - first)) < 0.015 and s1 == e0 and abs(e1 - (2.0 - first)) < 0.015
    assert [title for title, *_ in marks(trimmed)] == ["Intro", "Main"]
    # filter-file (the ffmpeg program around the raw pipe) too, with or without the audio
    for audio in ("copy", "drop"):
        out = tmp_path / f"ff-{audio}.mkv"
        result = subprocess.run([sys.executable, "-m", "videoinv", "filter-file", str(src), str(out), "--audio", audio,
                                 "-q"], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert {k.lower(): v for k, v in probe(out)["format"]["tags"].items()}["title"] == "Our clip"
        assert marks(out) == [("Intro", 0.0, 0.8), ("Main", 0.8, 2.0)]


def test_chapters_end_with_the_range(clips, tmp_path):
    # chapters after --end were kept, running on past the end of the video (edit and filter-file)
    src = _with_chapters(clips.bt709, tmp_path / "in.mkv", "[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=800\ntitle=Intro\n"
                         "[CHAPTER]\nTIMEBASE=1/1000\nSTART=800\nEND=1500\ntitle=Act 2\\; scene \\= 1\n"
                         "[CHAPTER]\nTIMEBASE=1/1000\nSTART=1500\nEND=2000\ntitle=Outro\n")
    times = video_times(src)[0]  # 30 fps; Matroska may start the video a few ms in
    marks = _chapter_marks

    def run(command, out, *range_):
        args = ["edit", str(src), "-o", str(out), "--chain", "copy"] if command == "edit" else [
            "filter-file", str(src), str(out)]
        assert main([*args, "-q", *range_]) == 0
        out_times = video_times(out)[0]
        return marks(out), float(out_times[-1] - out_times[0]) + 1 / 30  # the video's length

    for command in ("edit", "filter-file"):
        for ext in ("mkv", "mp4"):
            # the end inside the second chapter: it ends with the video, the third goes
            got, length = run(command, tmp_path / f"{command}-1s.{ext}", "--end", "1s")
            assert [title for title, *_ in got] == ["Intro", "Act 2; scene = 1"], (command, ext, got)
            assert got[0][1:] == (0.0, 0.8) and got[1][1] == 0.8 and abs(got[1][2] - length) < 0.03, (command, got)
            # a range that ends on a chapter mark keeps no sliver of the next chapter
            got, length = run(command, tmp_path / f"{command}-24f.{ext}", "--end", "24f")
            assert len(got) == 1 and got[0][0] == "Intro" and abs(got[0][2] - length) < 0.03, (command, ext, got)
            # cut at both ends: the marks stay on the same pictures
            got, length = run(command, tmp_path / f"{command}-10f-50f.{ext}", "--start", "10f", "--end", "50f")
            assert [title for title, *_ in got] == ["Intro", "Act 2; scene = 1", "Outro"], (command, ext, got)
            first = float(times[10])  # the 11th frame's time, in both
            assert got[0][1] == 0.0 and abs(got[1][1] - (0.8 - first)) < 0.002 and abs(got[2][1] - (1.5 - first)) < 0.002
            assert abs(got[2][2] - length) < 0.03, (command, ext, got)


def test_chapters_end_at_a_frame_number_of_a_variable_rate_video(clips, tmp_path):
    # edit cut chapters at a frame-number --end counted at the nominal rate: in the VFR clip
    # (30 frames at 30 fps, then 15 fps) 35f was put at 1.17 s instead of 1.33 s, and the
    # chapter that begins at 1.25 s, in which frame 34 starts, went
    src, out = tmp_path / "vfr.mkv", tmp_path / "out.mkv"
    _with_chapters(clips.vfr, src, "[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1250\ntitle=A\n"
                   "[CHAPTER]\nTIMEBASE=1/1000\nSTART=1250\nEND=3000\ntitle=B\n")
    times = video_times(src)[0]
    assert abs(float(times[34]) - (1 + 4 / 15)) < 0.03  # frame 34 starts after 1.25 s
    _edit(src, out, "--end", "35f")
    found = _chapter_marks(out)
    assert [title for title, *_ in found] == ["A", "B"]
    assert abs(found[1][2] - float(times[35])) < 0.002  # at frame 35's own time


def test_a_picture_in_and_out(clips, tmp_path):
    # .png and .jpg outputs were refused ("no container format 'png'")
    source = read_all(clips.bt709)[10].image.astype(int)
    png, jpg, again = tmp_path / "f10.png", tmp_path / "f10.jpg", tmp_path / "again.png"
    _edit(clips.bt709, png, "--start", "10f", "--end", "11f")
    _edit(clips.bt709, jpg, "--start", "10f", "--end", "11f")
    (ours,) = read_all(png)
    assert np.array_equal(ours.image, source)  # lossless, the frame as we decode it
    _edit(png, again)  # a picture in, a picture out
    assert np.array_equal(read_all(again)[0].image, source)
    assert [s["codec_name"] for s in ffprobe(jpg)["streams"]] == ["mjpeg"]
    theirs = ffmpeg_frames(jpg, 1280, 720)[0].astype(int)  # another decoder reads JPEG's colours the same
    assert np.abs(theirs - source).mean() < 1.5 and abs((theirs - source).mean()) < 0.5

    def refused(out, *args):
        result = subprocess.run([sys.executable, "-m", "videoinv", "edit", str(clips.bt709), "-o", str(out), "--chain",
                                 "copy", *args], capture_output=True, text=True)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith("videoinv: error: "), result.stderr
        assert not out.exists() and not [p for p in tmp_path.iterdir() if "partial" in p.name]
        return lines[0]

    assert "has 60 frames: pick one with --start and --end" in refused(tmp_path / "all.png")
    # a range of several frames is refused before any work (it was found at the second frame)
    assert "--start/--end take 3 frames" in refused(tmp_path / "three.png", "--start", "5f", "--end", "8f")
    assert "take 3 frames" in refused(tmp_path / "three.png", "--start", "0.1", "--end", "0.2")
    assert "holds png pictures, not libx264" in refused(tmp_path / "h264.png", "--codec", "libx264", "--end", "1f")
    assert "cannot hold the --audio" in refused(tmp_path / "sound.png", "--audio", str(clips.bt709), "--end", "1f")
    # filter-file (the ffmpeg program around the raw pipe) writes pictures the same way
    ff = tmp_path / "ff.jpg"
    result = subprocess.run([sys.executable, "-m", "videoinv", "filter-file", str(png), str(ff), "-q"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    theirs = ffmpeg_frames(ff, 1280, 720)[0].astype(int)
    assert np.abs(theirs - source).mean() < 1.5 and abs((theirs - source).mean()) < 0.5
    result = subprocess.run([sys.executable, "-m", "videoinv", "filter-file", str(clips.bt709), str(tmp_path / "x.png")],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "pick one with --start and --end" in result.stderr
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("ext, codec", [(".webp", "webp"), (".tif", "tiff"), (".bmp", "bmp")])
def test_lossless_pictures_of_other_kinds(clips, tmp_path, ext, codec):
    # .png and .jpg were the only pictures: .webp, .tif and .bmp were refused
    source = read_all(clips.bt709)[10].image.astype(int)
    out = tmp_path / f"f10{ext}"
    _edit(clips.bt709, out, "--start", "10f", "--end", "11f")
    assert [s["codec_name"] for s in ffprobe(out)["streams"]] == [codec]
    assert np.array_equal(ffmpeg_frames(out, 1280, 720)[0], source)  # lossless, as another decoder reads it
    back = tmp_path / f"back{ext}"  # and read as an input: one frame, the same pixels
    result = subprocess.run([sys.executable, "-m", "videoinv", "edit", str(out), "-o", str(back), "--chain", "copy"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert np.array_equal(read_all(back)[0].image, source)
    # the summary speaks of a picture: no frame rate, no sound, no colour guesses for RGB
    assert f"a 1280x720 {codec if codec != 'webp' else 'libwebp'} picture" in result.stderr
    assert "audio" not in result.stderr and "fps" not in result.stderr and "colour tags" not in result.stderr
    assert json.loads(subprocess.run([sys.executable, "-m", "videoinv", "probe", str(out), "--json"],
                                     capture_output=True, text=True, check=True).stdout)["frame_count"] == 1
    if ext == ".tif":  # compressed without loss (FFmpeg's default, PackBits, left a photo at full size)
        assert out.stat().st_size < 0.6 * 1280 * 720 * 3


@pytest.mark.parametrize("orientation, transpose", [(None, None), (1, None), (6, "ROTATE_270"), (7, "TRANSVERSE")])
def test_photos_and_camera_photos_with_exif_are_read_upright(tmp_path, orientation, transpose):
    # FFmpeg 8 attaches a camera JPEG's EXIF to its frame, a side-data type PyAV does not list:
    # every such photo stopped with "internal error: ValueError: 31 is not a valid Type". And a
    # plain JPEG, read by FFmpeg's image-sequence demuxer, had no frame left after the probe
    # ("no frames to write")
    from PIL import Image

    rng = np.random.default_rng(orientation)
    stored = np.repeat(np.repeat(rng.integers(0, 256, (12, 20, 3), dtype=np.uint8), 16, 0), 16, 1)  # 320x192
    exif = Image.Exif()
    if orientation is not None:
        exif[0x010F], exif[0x0112] = "Camera maker", orientation  # Make, Orientation
    photo = tmp_path / "photo.jpg"
    Image.fromarray(stored).save(photo, quality=98, subsampling=0, exif=exif.tobytes())
    out = tmp_path / "out.png"
    result = subprocess.run([sys.executable, "-m", "videoinv", "edit", str(photo), "-o", str(out), "--chain", "copy"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    decoded = Image.open(photo).convert("RGB")  # another decoder's pixels, turned as the tag says
    upright = np.asarray(decoded if transpose is None else decoded.transpose(getattr(Image.Transpose, transpose)))
    ours = read_all(out)[0].image
    assert ours.shape == upright.shape
    assert np.abs(ours.astype(int) - upright).mean() < 1
    assert "colour tags" not in result.stderr  # JPEG's colours are JPEG's own, not a guess


def test_gif_output_has_a_palette_per_frame_and_the_timing(clips, tmp_path):
    # a .gif output was refused ("cannot hold libx264"), and --codec gif stopped with an internal
    # error (no room for the AAC audio); swscale's own fixed palette would have banded every face
    source, times = read_all(clips.bt709)[:10], video_times(clips.bt709)[0][:10]
    out = tmp_path / "out.gif"
    result = subprocess.run([sys.executable, "-m", "videoinv", "edit", str(clips.bt709), "-o", str(out), "--chain",
                             "copy", "--end", "10f"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "holds no sound: the audio of" in result.stderr  # said, not a failure
    assert [s["codec_name"] for s in ffprobe(out)["streams"]] == ["gif"]
    ours = read_all(out)
    assert len(ours) == 10
    # GIF keeps time in hundredths of a second
    assert all(abs(float(a) - float(b)) <= 0.01 for a, b in zip(video_times(out)[0], times))
    error = lambda frames: np.mean([np.abs(a.image.astype(int) - b.image.astype(int)).mean()  # noqa: E731
                                    for a, b in zip(frames, source)])
    theirs = tmp_path / "ffmpeg.gif"  # the ffmpeg program's GIF, through swscale's fixed palette
    ffmpeg("-i", clips.bt709, "-frames:v", "10", theirs)
    assert error(ours) < 4 and error(ours) < error(read_all(theirs)) / 3
    # filter-file (the ffmpeg program around the raw pipe) writes the same kind of GIF
    ff = tmp_path / "ff.gif"
    short = tmp_path / "short.mkv"
    _edit(clips.bt709, short, "--end", "10f", "--codec", "ffv1")
    result = subprocess.run([sys.executable, "-m", "videoinv", "filter-file", str(short), str(ff)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len(read_all(ff)) == 10 and error(read_all(ff)) < 4
    # sound asked for by name cannot go in: refused before any work, nothing left behind
    bad = subprocess.run([sys.executable, "-m", "videoinv", "edit", str(clips.bt709), "-o", str(tmp_path / "s.gif"),
                          "--chain", "copy", "--audio", str(clips.bt709)], capture_output=True, text=True)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1
    assert "a .gif file holds no sound, so it cannot take --audio" in bad.stderr
    assert not (tmp_path / "s.gif").exists() and not [p for p in tmp_path.iterdir() if "partial" in p.name]



def test_width_scales_the_output(clips, tmp_path):
    # there was no way to make a smaller output (a .gif or a preview at 480 wide) but a second program
    import cv2

    source = [r.image for r in read_all(clips.bt709)[:6]]
    out = tmp_path / "small.mkv"
    _edit(clips.bt709, out, "--end", "6f", "--width", "640", "--codec", "ffv1", "--pix-fmt", "yuv444p")
    ours = read_all(out)
    assert [r.image.shape for r in ours] == [(360, 640, 3)] * 6
    shrunk = [cv2.resize(image, (640, 360), interpolation=cv2.INTER_AREA).astype(int) for image in source]
    assert np.mean([np.abs(a.image.astype(int) - b).mean() for a, b in zip(ours, shrunk)]) < 1
    # filter-file scales the same picture with the ffmpeg program's area filter
    ff = tmp_path / "ff.mkv"
    result = subprocess.run([sys.executable, "-m", "videoinv", "filter-file", str(out), str(ff), "--width", "320",
                             "--codec", "ffv1", "--pix-fmt", "yuv444p", "--json", "-q"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["width"] == 320 and read_all(ff)[0].image.shape == (180, 320, 3)
    halved = cv2.resize(shrunk[0].astype(np.uint8), (320, 180), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(read_all(ff)[0].image.astype(int) - halved).mean() < 2
    # 4:2:0 needs even sizes: the height in proportion is rounded to an even one, an odd width padded
    odd = tmp_path / "odd.mp4"
    _edit(clips.bt709, odd, "--end", "2f", "--width", "321")
    assert (ffprobe(odd)["streams"][0]["width"], ffprobe(odd)["streams"][0]["height"]) == (322, 180)


def test_filter_file_takes_a_range_as_edit_does(clips, tmp_path):
    # filter-file had no --start/--end: a part of a video needed edit, or a cut first
    source = read_all(clips.bt709)

    def run(out, *args):
        result = subprocess.run([sys.executable, "-m", "videoinv", "filter-file", str(clips.bt709), str(out), "-q",
                                 *args], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return read_all(out)

    def nearest(frames):  # the source frame each output frame is
        return [int(np.argmin([np.abs(f.image.astype(int) - s.image.astype(int)).mean() for s in source]))
                for f in frames]

    by_frame = run(tmp_path / "frames.mkv", "--start", "10f", "--end", "20f", "--codec", "ffv1")
    assert nearest(by_frame) == list(range(10, 20))
    assert max(np.abs(f.image.astype(int) - source[i].image.astype(int)).mean()
               for f, i in zip(by_frame, range(10, 20))) < 2  # the same pictures, through 8-bit YUV once more
    by_time = run(tmp_path / "times.mp4", "--start", "0.5", "--end", "1")
    _edit(clips.bt709, tmp_path / "edit.mp4", "--start", "0.5", "--end", "1")
    assert len(by_time) == len(read_all(tmp_path / "edit.mp4")) == 15 and nearest(by_time) == list(range(15, 30))
    # the sound starts with the first frame kept (no audio from before the start) and ends with the last
    for path in (tmp_path / "frames.mkv", tmp_path / "times.mp4"):
        audio = ffprobe(path)["streams"][1]
        assert audio["codec_type"] == "audio" and 0 <= float(first_audio_time(path)) < 0.025
        assert float(video_times(path)[0][0]) < 0.02  # Matroska moved the video later to hold sound before it
        video_end = len(read_all(path)) / 30
        assert abs(float(audio.get("duration") or video_end) - video_end) < 0.05
    assert abs(float(json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(tmp_path / "frames.mkv")],
        capture_output=True, text=True, check=True).stdout)["format"]["duration"]) - 10 / 30) < 0.05
    # one frame to a picture, and a start past the end refused before any work
    (picture,) = run(tmp_path / "f12.png", "--start", "12f", "--end", "13f")
    assert nearest([picture]) == [12]
    several = subprocess.run([sys.executable, "-m", "videoinv", "filter-file", str(clips.bt709),
                              str(tmp_path / "f3.png"), "--start", "12f", "--end", "15f"], capture_output=True, text=True)
    assert several.returncode == 1 and "--start/--end take 3 frames" in several.stderr  # was ffmpeg's image2 error
    assert not (tmp_path / "f3.png").exists()
    late = subprocess.run([sys.executable, "-m", "videoinv", "filter-file", str(clips.bt709), str(tmp_path / "late.mp4"),
                           "--start", "90f"], capture_output=True, text=True)
    assert late.returncode == 1 and "--start 90f is past the end" in late.stderr
    assert not (tmp_path / "late.mp4").exists()


def test_a_range_keeps_the_same_frames_in_edit_and_filter_file_whatever_the_container(clips, tmp_path):
    # filter-file counted frame numbers at the nominal rate from 0: a Matroska copy whose video
    # starts 23 ms in gave frames 9-18 for 10f-20f, and a variable-rate clip other frames still.
    # In MPEG-TS (no index) a seek lands on the next keyframe: edit found no frame for 20f-24f
    # ("none in the selected range") and started later ones at that keyframe, as the ffmpeg
    # program's own -ss did for filter-file
    # In AVI (a tick is a whole frame) "half a frame early" was a whole tick: 27f began at 26
    mkv, ts, avi = tmp_path / "late.mkv", tmp_path / "gop15.ts", tmp_path / "ticks.avi"
    ffmpeg("-i", clips.bt709, "-map", "0", "-c", "copy", mkv)
    ffmpeg("-i", clips.bt709, "-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-c:a", "copy", ts)
    ffmpeg("-i", clips.bt709, "-c:v", "mpeg4", "-q:v", "2", "-g", "20", "-c:a", "pcm_s16le", avi)
    assert float(video_times(mkv)[0][0]) > 1 / 60  # over half a frame after the start
    cases = [(mkv, ("10f", "20f"), range(10, 20)), (clips.vfr, ("35f", "40f"), range(35, 40)),
             (clips.vfr, ("0f", "3f"), range(0, 3)), (ts, ("20f", "24f"), range(20, 24)),
             (ts, ("40f", "44f"), range(40, 44)), (ts, ("1.11", "1.2"), range(33, 36)),
             (ts, ("0.7", None), range(21, 60)), (avi, ("27f", "30f"), range(27, 30)),
             (avi, ("0.9", "1"), range(27, 30))]
    thumbs = {}  # each source frame, every 4th pixel: enough to tell them apart, a 16th of the work
    for n, (src, (first, last), expected) in enumerate(cases):
        if src not in thumbs:
            thumbs[src] = np.stack([s.image[::4, ::4] for s in read_all(src)]).astype(np.int16)
        out, edited = tmp_path / f"ff-{n}.mkv", tmp_path / f"edit-{n}.mkv"
        limits = ["--start", first] + (["--end", last] if last else [])
        result = subprocess.run([sys.executable, "-m", "videoinv", "filter-file", str(src), str(out), "-q",
                                 *limits, "--codec", "ffv1"], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        _edit(src, edited, *limits, "--codec", "ffv1")
        for path in (out, edited):
            got = [int(np.abs(thumbs[src] - f.image[::4, ::4]).mean(axis=(1, 2, 3)).argmin()) for f in read_all(path)]
            assert got == list(expected), (src.name, first, last, path.name, got)
        # the sound starts with the first frame kept
        assert abs(float(first_audio_time(out)) - float(video_times(out)[0][0])) < 0.025


def test_filter_file_gives_the_stages_the_frames_numbers_and_times_that_edit_does(clips, tmp_path):
    # filter-file numbered the frames of a range from 0 and timed them at the nominal rate from
    # 0: a keyframed edit (smile=0:0s,5:1.5s) with --start 30f ran from strength 0 instead of
    # 3.3, frame-number keyframes counted from the range, and a latent cache replayed the
    # faces of other frames; a variable-rate clip or a late start was off without a range too
    from videoinv.pipeline.jobs import filter_file

    mkv, ts = tmp_path / "late.mkv", tmp_path / "gop15.ts"
    ffmpeg("-i", clips.bt709, "-map", "0", "-c", "copy", mkv)
    ffmpeg("-i", clips.bt709, "-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-c:a", "copy", ts)
    encode = EncodeOptions(codec="ffv1")
    for n, (src, start, end) in enumerate([(clips.bt709, "30f", "45f"), (mkv, "10f", None), (mkv, None, None),
                                           (clips.vfr, "35f", "40f"), (clips.vfr, None, None), (ts, "0.7", None)]):
        seen: dict = {"edit": [], "filter-file": []}
        edit_video(src, tmp_path / f"e{n}.mkv", chain="copy", start=start, end=end, encode=encode,
                   on_frame=lambda r: seen["edit"].append((r.index, round(r.time, 6))))
        filter_file(src, tmp_path / f"f{n}.mkv", chain="copy", start=start, end=end, encode=encode,
                    on_frame=lambda r: seen["filter-file"].append((r.index, round(r.time, 6))))
        assert len(seen["edit"]) >= 5 and seen["filter-file"] == seen["edit"], (src.name, start, end)
        if start is not None and start.endswith("f"):
            assert seen["edit"][0][0] == int(start[:-1])  # the source's own frame numbers


def test_filter_file_smooths_offline_as_edit_does(tmp_path):
    # filter-file never ran the first pass that smooth=offline needs: the alignment went on with
    # no look-ahead at all (quads up to 0.9 px from edit's on the sample clip), without a word
    from videoinv import samples
    from videoinv.pipeline.jobs import filter_file

    clip = tmp_path / "face.mp4"
    samples.write_clip(clip, samples.moving_face(640, 360), 40)
    chain, quads = "detect,align=smooth=offline:crops=no", {"edit": {}, "filter-file": {}}
    for name, run in (("edit", edit_video), ("filter-file", filter_file)):
        run(clip, tmp_path / f"{name}.mkv", chain=chain, start="5f", encode=EncodeOptions(codec="ffv1"),
            on_frame=lambda r, seen=quads[name]: seen.update({r.index: [f.quad.to_vector() for f in r.faces]}))
    assert len(quads["edit"]) == 35 and sum(map(len, quads["edit"].values())) >= 30
    assert quads["filter-file"].keys() == quads["edit"].keys()
    for index, faces in quads["edit"].items():
        assert len(faces) == len(quads["filter-file"][index])
        assert all(np.abs(a - b).max() < 0.01 for a, b in zip(faces, quads["filter-file"][index]))


def test_a_gif_of_a_face_keeps_still_areas_still(tmp_path):
    # paletteuse's default error diffusion changed its noise with every frame's palette: pixels
    # the source left unchanged moved 1.9 levels from frame to frame on the sample face clip
    from videoinv import samples

    clip, out = tmp_path / "face.mp4", tmp_path / "face.gif"
    samples.write_clip(clip, samples.moving_face(width=640, height=360), 10)
    _edit(clip, out)
    source, ours = [r.image.astype(int) for r in read_all(clip)], [r.image.astype(int) for r in read_all(out)]
    still = [np.abs(b - a).max(axis=2) == 0 for a, b in zip(source, source[1:])]
    assert np.mean([m.mean() for m in still]) > 0.3  # a background that stays put
    moved = np.mean([np.abs(b - a).max(axis=2)[m].mean() for a, b, m in zip(ours, ours[1:], still)])
    assert moved < 1.7
    assert np.mean([np.abs(a - b).mean() for a, b in zip(ours, source)]) < 2


def test_a_copy_job_starts_without_loading_the_models_libraries(clips, tmp_path):
    # every job imported torch and scipy (~2 s of a 3.6 s copy of a 1 s clip): the registry
    # imported every core stage module to find `copy`, and the edit package imported torch
    code = ("import sys; from videoinv.cli import main\n"
            "for args in sys.argv[1:]:\n"
            "    assert main(args.split('|')) == 0\n"
            "print('loaded:', *(m for m in ('torch', 'scipy', 'videoinv.edit.stages') if m in sys.modules))")
    loaded = lambda out: out.strip().splitlines()[-1].split()  # noqa: E731
    jobs = [f"edit|{clips.bt709}|-o|{tmp_path / 'e.mkv'}|--chain|copy|--end|5f|-q",
            f"filter-file|{clips.bt709}|{tmp_path / 'f.mkv'}|--end|5f|-q", f"probe|{clips.bt709}"]
    result = subprocess.run([sys.executable, "-c", code, *jobs], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert loaded(result.stdout) == ["loaded:"], result.stdout
    assert len(read_all(tmp_path / "e.mkv")) == len(read_all(tmp_path / "f.mkv")) == 5
    # a chain with a model stage brings them in, as it must
    result = subprocess.run([sys.executable, "-c", code, f"edit|{clips.bt709}|-o|{tmp_path / 'm.mkv'}|--end|2f|"
                             "--model|random:64:8|--edit|sefa0=1|-q"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert loaded(result.stdout) == ["loaded:", "torch", "scipy", "videoinv.edit.stages"]
