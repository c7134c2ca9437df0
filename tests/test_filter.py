"""The raw-frame pipe (`videoinv filter`) and `videoinv filter-file` around the ffmpeg program."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import BARS, FFMPEG, audio_packets_hash, bar_centres, encode_bars, ffmpeg_frames, ffprobe, read_all

W, H = 64, 48


def filter_cmd(*extra) -> list[str]:
    return [sys.executable, "-m", "videoinv", "filter", "--size", f"{W}x{H}", "--rate", "30", *extra]


@pytest.mark.parametrize("pix_fmt", ["rgb24", "bgr24"])
def test_identity_chain_passes_frames_byte_exactly(pix_fmt):
    frames = np.random.default_rng(0).integers(0, 256, (25, H, W, 3), dtype=np.uint8).tobytes()
    result = subprocess.run(filter_cmd("--pix-fmt", pix_fmt, "--chain", "copy"), input=frames,
                            capture_output=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == frames  # same bytes, so the same count
    assert result.stderr == b""


def test_truncated_input_is_a_one_line_error():
    data = np.zeros((3 * H * W * 3 + 100,), np.uint8).tobytes()  # three frames and a bit
    result = subprocess.run(filter_cmd(), input=data, capture_output=True, text=False)
    assert result.returncode != 0
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("videoinv: error:")
    assert "100 bytes into frame 3" in lines[0] and "--size" in lines[0]
    assert len(result.stdout) == 3 * H * W * 3  # the complete frames went through


def test_empty_input_is_zero_frames():
    result = subprocess.run(filter_cmd(), input=b"", capture_output=True)
    assert result.returncode == 0 and result.stdout == b""


def test_a_chain_that_reads_the_video_twice_is_refused_on_a_pipe():
    # a pipe is read once; filter-file, which reads a file, runs offline smoothing's first pass
    data = np.zeros((3, H, W, 3), np.uint8).tobytes()
    result = subprocess.run(filter_cmd("--chain", "detect,align=smooth=offline"), input=data, capture_output=True)
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode != 0 and result.stdout == b"" and len(lines) == 1
    assert "reads the video twice (smooth=offline)" in lines[0] and "or filter-file" in lines[0]


def test_filter_in_a_real_ffmpeg_pipeline(clips, tmp_path):
    """The README's pipe: ffmpeg decodes, videoinv filters, ffmpeg encodes and copies the audio."""
    out = tmp_path / "piped.mp4"
    decode = subprocess.Popen([FFMPEG, "-v", "error", "-i", str(clips.bt709), "-f", "rawvideo",
                               "-pix_fmt", "rgb24", "-"], stdout=subprocess.PIPE)
    filt = subprocess.Popen([sys.executable, "-m", "videoinv", "filter", "--size", "1280x720", "--rate", "30",
                             "--chain", "copy"], stdin=decode.stdout, stdout=subprocess.PIPE)
    decode.stdout.close()
    encode = subprocess.run([FFMPEG, "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "1280x720",
                             "-r", "30", "-i", "-", "-i", str(clips.bt709), "-map", "0:v", "-map", "1:a?",
                             "-c:a", "copy", "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p", str(out)],
                            stdin=filt.stdout, capture_output=True)
    filt.stdout.close()
    assert decode.wait() == 0 and filt.wait() == 0 and encode.returncode == 0, encode.stderr
    assert len(read_all(out)) == 60
    assert audio_packets_hash(out) == audio_packets_hash(clips.bt709)


def test_filter_file_matches_the_input(clips, tmp_path):
    out = tmp_path / "ff.mp4"
    result = subprocess.run([sys.executable, "-m", "videoinv", "filter-file", str(clips.rot90), str(out),
                             "--chain", "copy", "--crf", "0", "--pix-fmt", "yuv444p", "--json", "-q"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    v = [s for s in ffprobe(out)["streams"] if s["codec_type"] == "video"][0]
    assert (v["width"], v["height"], v["color_space"], v["color_range"]) == (720, 1280, "bt709", "tv")
    ours = np.stack([r.image for r in read_all(clips.rot90)]).astype(int)  # upright, our colour rule
    theirs = ffmpeg_frames(out, 720, 1280).astype(int)
    assert theirs.shape == ours.shape
    assert np.abs(theirs - ours).mean() < 0.5 and np.percentile(np.abs(theirs - ours), 99.9) <= 2
    assert audio_packets_hash(out) == audio_packets_hash(clips.rot90)


def test_filter_file_uses_our_colour_rule_for_untagged_hd(tmp_path):
    src = encode_bars(tmp_path, (1280, 720), "bt709", "tv", tags=False)
    out = tmp_path / "ff.mp4"
    assert subprocess.run([sys.executable, "-m", "videoinv", "filter-file", str(src), str(out),
                           "--crf", "0", "--pix-fmt", "yuv444p", "-q"]).returncode == 0
    theirs = ffmpeg_frames(out, 1280, 720)[0]
    assert np.abs(bar_centres(theirs).astype(int) - BARS.astype(int)).max() <= 2


def test_filter_file_stops_with_the_encoders_reason_when_ffmpeg_cannot_encode(clips, tmp_path):
    # H.263 takes only a few picture sizes: the encoding ffmpeg exits at once. The run used to
    # wait for ever on the decoding ffmpeg, blocked on a pipe nobody read any more.
    out = tmp_path / "ff.mov"
    result = subprocess.run([sys.executable, "-m", "videoinv", "filter-file", str(clips.bt709), str(out),
                             "--codec", "h263"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"videoinv: error: ffmpeg could not encode {out}: h263: The specified picture size of 1280x720 "
        "is not valid for the H.263 codec."]
    assert list(tmp_path.iterdir()) == []


def test_filter_file_refuses_an_encoder_or_pixel_format_the_ffmpeg_program_cannot_give(clips, tmp_path):
    # an unknown encoder was an internal error (UnknownCodecError), and a pixel format the
    # encoder does not take was replaced by another without a word (libx264: rgb24 -> yuv444p)
    out = tmp_path / "ff.mkv"

    def refused(*args):
        result = subprocess.run([sys.executable, "-m", "videoinv", "filter-file", str(clips.bt709), str(out), *args],
                                capture_output=True, text=True, timeout=60)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith("videoinv: error: "), result.stderr
        assert list(tmp_path.iterdir()) == []
        return lines[0]

    assert "encoder 'libfoo' is not in the ffmpeg program's build" in refused("--codec", "libfoo")
    assert "available: libx264, " in refused("--codec", "libfoo")
    assert "'aac' is not a video encoder; use one of libx264" in refused("--codec", "aac")
    assert "libx264 cannot encode --pix-fmt rgb24; it takes yuv420p" in refused("--pix-fmt", "rgb24")
    assert "mpeg4 cannot encode --pix-fmt yuv444p; it takes yuv420p" in refused("--codec", "mpeg4", "--pix-fmt",
                                                                                  "yuv444p")
    # what the encoder takes is written as asked
    result = subprocess.run([sys.executable, "-m", "videoinv", "filter-file", str(clips.bt709), str(out),
                             "--pix-fmt", "yuv444p", "--audio", "drop", "-q"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert [s["pix_fmt"] for s in ffprobe(out)["streams"]] == ["yuv444p"]


def test_filter_file_to_webm_picks_vp9_and_re_encodes_the_audio_it_cannot_copy(clips, tmp_path):
    out = tmp_path / "ff.webm"
    result = subprocess.run([sys.executable, "-m", "videoinv", "filter-file", str(clips.bt709), str(out)],
                            capture_output=True, text=True, timeout=120)  # it used to hang here
    assert result.returncode == 0, result.stderr
    assert "aac audio cannot be stored in this format; re-encoding it to libopus" in result.stderr
    assert f"wrote {out}: 60 frames 1280x720 libvpx-vp9, audio re-encoded in " in result.stderr  # as edit says it
    streams = ffprobe(out)["streams"]
    assert {s["codec_type"]: s["codec_name"] for s in streams} == {"video": "vp9", "audio": "opus"}
    audio = [s for s in streams if s["codec_type"] == "audio"][0]
    assert abs(float(audio["duration"] if "duration" in audio else ffprobe(out)["format"]["duration"]) - 2.0) < 0.1


def test_filter_file_refuses_to_overwrite_its_input(clips, tmp_path):
    src = tmp_path / "in.mp4"
    src.write_bytes(clips.bt709.read_bytes())
    result = subprocess.run([sys.executable, "-m", "videoinv", "filter-file", str(src), str(src), "-y"],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "same file as the input" in result.stderr
    assert src.read_bytes() == clips.bt709.read_bytes()
