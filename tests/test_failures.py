"""Bad input and interruptions: one-line errors, non-zero exits, nothing damaged or left behind."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ffmpeg


def videoinv(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "videoinv", *map(str, args)], capture_output=True,
                          text=True, **kwargs)


def one_line_error(result, *words) -> str:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("videoinv: error: "), lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name)


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_missing_file(tmp_path):
    one_line_error(videoinv("edit", tmp_path / "nope.mp4", "-o", tmp_path / "out.mp4"), "not found", "nope.mp4")
    assert not (tmp_path / "out.mp4").exists()


def test_directory_as_input(tmp_path):
    one_line_error(videoinv("edit", tmp_path, "-o", tmp_path / "out.mp4"), "directory")


def test_truncated_mp4_without_index(clips, tmp_path):
    bad = tmp_path / "cut.mp4"
    bad.write_bytes(clips.bt709.read_bytes()[:100_000])  # the moov atom is at the end
    one_line_error(videoinv("edit", bad, "-o", tmp_path / "out.mp4"), "cannot read", "cut.mp4")
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []


def test_a_text_file_named_as_a_picture_is_one_plain_line(tmp_path):
    # FFmpeg's image demuxer opens any file named .jpg; the decoder then fails on the first frame,
    # and its errno and function name ("[Errno 1094995529] ... 'avcodec_send_packet()'") are noise
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a picture")
    for command in (["probe", notes], ["edit", notes, "-o", tmp_path / "out.jpg"]):
        line = one_line_error(videoinv(*command), "cannot decode", "notes.jpg", "valid picture file")
        assert "Errno" not in line and "avcodec" not in line
    assert not (tmp_path / "out.jpg").exists() and leftovers(tmp_path) == []


def test_truncated_mp4_fails_midway_and_leaves_nothing(clips, tmp_path):
    faststart = tmp_path / "fs.mp4"
    ffmpeg("-i", clips.bt709, "-c", "copy", "-movflags", "+faststart", faststart)
    bad = tmp_path / "cut.mp4"
    bad.write_bytes(faststart.read_bytes()[: faststart.stat().st_size // 2])  # index intact, data cut
    out = tmp_path / "out.mp4"
    one_line_error(videoinv("edit", bad, "-o", out), "truncated", "--salvage")
    assert not out.exists() and leftovers(tmp_path) == []
    # probe tells the same story with and without --scan (the scan counted the cut packet twice)
    whole = json.loads(videoinv("probe", faststart, "--json").stdout)
    quick, scanned = (json.loads(videoinv("probe", bad, "--json", *scan).stdout) for scan in ([], ["--scan"]))
    assert quick["frame_count"] == scanned["frame_count"] == whole["frame_count"]
    assert quick["missing_frames"] == scanned["missing_frames"] > 0
    # the user can still get what is there
    result = videoinv("edit", bad, "-o", out, "--salvage", "--json", "-q")
    assert result.returncode == 0, result.stderr
    assert 10 < json.loads(result.stdout)["frames"] < 60 and out.exists()
    # and a range inside the intact part needs no flag
    assert videoinv("edit", bad, "-o", tmp_path / "head.mp4", "--end", "5f", "-q").returncode == 0


def test_output_equal_to_input_is_refused(clips, tmp_path):
    src = tmp_path / "in.mp4"
    src.write_bytes(clips.bt709.read_bytes())
    before = sha(src)
    one_line_error(videoinv("edit", src, "-o", src, "-y"), "same file as the input")
    link = tmp_path / "link.mp4"
    link.symlink_to(src)
    one_line_error(videoinv("edit", src, "-o", link, "-y"), "same file as the input")
    assert sha(src) == before and leftovers(tmp_path) == []


def test_existing_output_needs_overwrite(clips, tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"finished work")
    one_line_error(videoinv("edit", clips.bt709, "-o", out), "exists", "--overwrite")
    assert out.read_bytes() == b"finished work"
    assert videoinv("edit", clips.bt709, "-o", out, "-y", "-q").returncode == 0
    assert out.stat().st_size > 10_000


def test_output_in_missing_folder(clips, tmp_path):
    one_line_error(videoinv("edit", clips.bt709, "-o", tmp_path / "no" / "out.mp4"), "does not exist")


def test_a_folder_given_as_output_suggests_a_file_of_the_right_kind(clips, tmp_path):
    one_line_error(videoinv("edit", clips.bt709, "-o", tmp_path), "is a directory", str(tmp_path / "out.mp4"))
    # the track log is JSON: suggesting out.mp4 there would mislead
    one_line_error(videoinv("inspect", clips.bt709, "-o", tmp_path / "i.mp4", "--json", tmp_path),
                   "is a directory", str(tmp_path / "tracks.json"))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_standard_input_and_output_are_refused_with_what_to_do_instead(clips, tmp_path):
    # "-" was taken for a file: "input not found: -", and "-o -" said "it has no extension"
    with open(clips.bt709, "rb") as stdin:
        for command in (["edit", "-", "-o", tmp_path / "out.mp4"], ["filter-file", "-", tmp_path / "out.mp4"],
                        ["probe", "-"]):
            stdin.seek(0)
            one_line_error(videoinv(*command, stdin=stdin), "cannot read a video from standard input",
                           "save it to a file first", "videoinv filter")
    for command in (["edit", clips.bt709, "-o", "-", "--chain", "copy"], ["filter-file", clips.bt709, "-"]):
        result = videoinv(*command)
        one_line_error(result, "cannot write to standard output", "such as out.mp4", "videoinv filter")
        assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_a_precision_the_device_lacks_is_refused_before_loading_anything(clips, tmp_path):
    out = tmp_path / "out.mp4"
    one_line_error(videoinv("edit", clips.bt709, "-o", out, "--model", "random:64:16", "--device", "cpu",
                            "--edit", "sefa0=3", "--dtype", "tf32"), "dtype=tf32 needs a CUDA device")
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("device", ["tpu", "cpu:1", "cuda:x"])
def test_a_device_that_is_not_cpu_or_cuda_is_a_one_line_error(clips, tmp_path, device):
    out = tmp_path / "out.mp4"
    one_line_error(videoinv("edit", clips.bt709, "-o", out, "--model", "random:64:16", "--device", device,
                            "--edit", "sefa0=3"), "bad device", repr(device), "cuda:N")
    assert not out.exists() and leftovers(tmp_path) == []


def test_a_gpu_index_the_machine_lacks_names_the_gpus_it_has(monkeypatch):
    import torch

    from videoinv.errors import VideoinvError
    from videoinv.models.specs import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(VideoinvError, match=r"cuda:2 .* has 2 CUDA GPU\(s\), cuda:0 to cuda:1"):
        pick_device("cuda:2")
    # one GPU has one name: 'cuda' and 'auto' are the current one, so a chain's stages that name
    # it in two ways agree (and its models are loaded once)
    from videoinv.edit.stages import device_spec

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert pick_device("cuda") == pick_device("auto") == torch.device("cuda", 1)
    assert device_spec("cuda") == device_spec("auto") == device_spec("cuda:1") == "cuda:1"


@pytest.mark.parametrize("args, words", [
    (["--models", "random:32:16,bogus"], ["bad model 'bogus'"]),
    (["--models", "random:32:16,missing.pt+random:32:16"], ["checkpoint not found: missing.pt"]),
    (["--models", "random:32:16", "-o", "{tmp}/no/speed.json"], ["folder", "does not exist"]),
    (["--models", "random:32:16", "-o", "{tmp}"], ["is a directory", "such as {tmp}/speed.json"]),
])
def test_bench_speed_refuses_bad_models_and_outputs_before_it_runs(tmp_path, args, words):
    # one line and nothing else: before the fix the clip was made and its ceilings measured
    # (a progress line) and, for the output, the whole benchmark ran before the error
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    words = [w.replace("{tmp}", str(tmp_path)) for w in words]
    one_line_error(videoinv("bench", "speed", "--device", "cpu", "--frames", "8", "--repeat", "1", *args), *words)


@pytest.mark.parametrize("args, words", [
    (["--crf", "99"], ["--crf 99", "libx264's range 0-51"]),  # x264 would clamp it to 51 unsaid
    (["--crf", "-1"], ["--crf -1", "0-51"]),
    (["--codec", "libx265", "--crf", "52"], ["libx265's range 0-51"]),
    (["--faces", "0,x"], ["bad faces '0,x'", "largest"]),
    (["--faces", "-1"], ["bad faces '-1'"]),
    (["--start", "0.5", "--end", "0.2"], ["--end 0.2s is not after --start 0.5s"]),
    (["--start", "10f", "--end", "10f"], ["--end 10f is not after --start 10f"]),
    (["--start", "soon"], ["bad time 'soon'"]),
    (["--end", "0f"], ["--end 0f keeps no frame", "--end 1f"]),  # was "none in the selected range" after the work
    (["--end", "0:00"], ["--end 0s keeps no frame"]),
    (["--pix-fmt", "yuv999p"], ["unknown --pix-fmt 'yuv999p'"]),  # was an internal error
    (["--pix-fmt", "rgb24"], ["libx264 cannot encode --pix-fmt rgb24", "yuv420p"]),
    (["-o", "{tmp}/out.txt"], ["cannot write out.txt", "no container format 'txt'", ".mp4"]),
    (["-o", "{tmp}/out"], ["cannot write out", "no extension", ".mp4"]),
    (["-o", "{tmp}/out.webm", "--codec", "libx264"], [".webm file cannot hold libx264", "libvpx-vp9", ".mp4"]),
    (["-o", "{tmp}/out.mkv", "--codec", "h263"], [".mkv file cannot hold h263", "--codec libx264", ".mov name"]),
    (["--edit", "nosuch=1"], ["unknown direction 'nosuch'", "sefaN"]),  # these were after the load
    (["--edit", "{tmp}/nope.npy=1"], ["direction file not found", "nope.npy"]),
    (["--latents", "{tmp}/nope.vinv"], ["latent cache not found", "videoinv invert"]),
    (["--segments", "nose+foo"], ["bad --segments 'nose+foo'", "'foo' is not a segment", "mouth"]),
    (["--exclude", "eye"], ["bad --exclude 'eye'", "'eye' is not a segment"]),
    # pasting nothing said "no face was found in any frame" after the work
    (["--exclude", "face"], ["segments face without face leave nothing to paste", "exclude eyes"]),
    (["--segments", "mouth", "--exclude", "lips+mouth"], ["segments mouth without lips+mouth leave nothing"]),
])
def test_bad_options_are_refused_before_the_models_load(clips, tmp_path, args, words):
    # one line: the models were not loaded (loading random weights logs a warning); the later
    # -o replaces the first
    out = tmp_path / "out.mp4"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    one_line_error(videoinv("edit", clips.bt709, "-o", out, "--model", "random:64:16", "--edit", "sefa0=3", *args),
                   *words)
    assert not out.exists() and leftovers(tmp_path) == []


def on_small_disk(tmp_path, *args, size="24k", readonly=False):
    """``videoinv *args`` with ``{disk}`` a real 24 KB tmpfs (read-only if asked), mounted in a
    mount namespace of its own; returns the result and what was left on the disk."""
    import shutil

    disk = tmp_path / "disk"
    disk.mkdir()
    script = ('mount -t tmpfs -o size="$1" tmpfs "$2" || exit 77\n'
              + ('mount -o remount,ro "$2" || exit 77\n' if readonly else "")
              + '"${@:3}"; rc=$?\nls -A "$2" > "$2.left"; exit $rc')
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare to mount a small disk")
    result = subprocess.run(["unshare", "-m", "bash", "-c", script, "_", size, str(disk), sys.executable, "-m",
                             "videoinv", *[str(a).replace("{disk}", str(disk)) for a in args]],
                            capture_output=True, text=True)
    if result.returncode == 77:
        pytest.skip("cannot mount a tmpfs here (needs root or user namespaces)")
    return result, (tmp_path / "disk.left").read_text().split()


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("face") / "face.mp4"
    assert videoinv("sample", path, "--seconds", "1", "--size", "640x360", "-q").returncode == 0
    return path


@pytest.mark.parametrize("args", [
    ["edit", "{clip}", "-o", "{disk}/out.mp4", "--model", "random:64:16", "--edit", "sefa0=1"],
    ["invert", "{clip}", "-o", "{disk}/out.vinv", "--model", "random:64:16"],  # 30 faces' W+ and F
    ["inspect", "{clip}", "-o", "{disk}/out.mp4", "--json", "{disk}/out.json"],
    ["sample", "{disk}/out.mp4"],
])
def test_a_full_disk_is_a_one_line_error_naming_the_output_and_leaves_nothing(face_clip, tmp_path, args):
    # they were internal errors (invert also left its working folder behind), or blamed the codec
    args = [a.replace("{clip}", str(face_clip)) for a in args] + ["-q"]
    result, left = on_small_disk(tmp_path, *args)
    line = one_line_error(result, "no space left on the device", "free some space")
    assert f"cannot write {tmp_path / 'disk' / 'out.'}" in line  # the output's own name, not a temporary one
    assert left == []


def test_os_errors_are_told_in_the_users_words_and_only_where_they_are_the_users_to_fix():
    import errno

    from videoinv.files import os_problem

    # a permission error may come from reading as well as writing: no "cannot write" for it
    assert os_problem(PermissionError(errno.EACCES, "Permission denied", "/v/.out.ab12.partial.mp4")) == \
        "/v/out.mp4: permission denied; check the permissions of the file and its folder"
    assert os_problem(OSError(errno.ENOSPC, "No space left on device", "/v/.out.ab12.partial.mp4")).startswith(
        "cannot write /v/out.mp4: no space left on the device")
    assert os_problem(OSError(errno.EPERM, "Operation not permitted")) is None  # NVENC without a GPU says this
    assert os_problem(OSError(errno.EIO, "Input/output error", "/v/out.mp4")) is None  # not the user's to fix


def test_a_read_only_folder_is_refused_before_the_models_load(clips, tmp_path):
    result, left = on_small_disk(tmp_path, "edit", clips.bt709, "-o", "{disk}/out.mp4", "--model", "random:64:16",
                                 "--edit", "sefa0=1", "-q", readonly=True)
    one_line_error(result, f"cannot write {tmp_path / 'disk' / 'out.mp4'}", "is not writable")
    assert left == []


def test_a_misspelt_direction_is_named_before_the_missing_weights(clips, tmp_path):
    # before, the user was sent to fetch the FSE weights and learnt of the typo only after that
    env = dict(os.environ, VIDEOINV_HOME=str(tmp_path / "home"))
    one_line_error(videoinv("edit", clips.bt709, "-o", tmp_path / "out.mp4", "--edit", "smiel=1", env=env),
                   "unknown direction 'smiel'", "smile")


def test_a_webm_output_gets_vp9_and_opus_without_being_told(clips, tmp_path):
    from conftest import ffprobe

    out = tmp_path / "out.webm"
    result = videoinv("edit", clips.bt709, "-o", out, "--chain", "copy", "--end", "5f")
    assert result.returncode == 0, result.stderr
    assert "re-encoding it to libopus" in result.stderr  # AAC cannot go into WebM: said so
    codecs = {s["codec_type"]: s["codec_name"] for s in ffprobe(out)["streams"]}
    assert codecs == {"video": "vp9", "audio": "opus"}


@pytest.mark.parametrize("args, words", [
    (["{tmp}/s.mp4", "--size", "13x7"], ["13x7", "must be even", "14x8"]),  # was an internal error
    (["{tmp}/s.webm"], ["cannot write s.webm", "H.264", ".mp4"]),
    (["{tmp}/s.txt"], ["cannot write s.txt", ".mp4"]),
])
def test_sample_refuses_what_it_cannot_write(tmp_path, args, words):
    one_line_error(videoinv("sample", *[a.replace("{tmp}", str(tmp_path)) for a in args], "--seconds", "0.2"), *words)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, words", [
    (["--method", "sefa", "--layers", "abc"], ["bad --layers 'abc'", "A-B"]),  # were internal errors
    (["--method", "sefa", "--layers", "3-1"], ["bad --layers '3-1'", "1-3"]),
    (["--method", "sefa", "--layers", "99"], ["--layers 99", "rows 0-9"]),
    (["--method", "ganspace", "--layers", "2-3"], ["--layers is for --method sefa"]),
])
def test_directions_compute_refuses_rows_the_generator_lacks(tmp_path, args, words):
    env = dict(os.environ, VIDEOINV_HOME=str(tmp_path))
    result = videoinv("directions", "compute", "--model", "random:64:16", *args, env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]  # after the random-weights warning, where loaded
    assert last.startswith("videoinv: error: ") and all(w in last for w in words), result.stderr
    assert not list(tmp_path.rglob("*.safetensors"))


def test_a_crf_in_range_reaches_the_encoder_and_one_it_ignores_is_only_a_warning(clips, tmp_path):
    out = tmp_path / "out.mp4"
    assert videoinv("edit", clips.bt709, "-o", out, "--chain", "copy", "--crf", "51", "-q").returncode == 0
    assert b"crf=51.0" in out.read_bytes()  # x264's settings, written into the stream
    lossless = tmp_path / "out.mkv"
    result = videoinv("edit", clips.bt709, "-o", lossless, "--chain", "copy", "--codec", "ffv1", "--crf", "99")
    assert result.returncode == 0 and "ffv1 has no CRF setting; --crf 99 is ignored" in result.stderr


def test_unknown_encoder_lists_the_available_ones(clips, tmp_path):
    line = one_line_error(videoinv("edit", clips.bt709, "-o", tmp_path / "o.mp4", "--codec", "nosuch"), "nosuch")
    assert "libx264" in line and "ffv1" in line
    assert leftovers(tmp_path) == [] and not (tmp_path / "o.mp4").exists()


def test_unknown_stage_exits_2_and_lists_stages(clips, tmp_path):
    result = videoinv("edit", clips.bt709, "-o", tmp_path / "o.mp4", "--chain", "warp=1")
    assert result.returncode == 2
    one_line_error(result, "unknown stage 'warp'", "copy")


def test_face_edit_options_next_to_a_chain_are_refused_not_dropped(clips, tmp_path):
    # --chain builds its own stages: --segments, --feather, --dtype ... used to be ignored without a word
    out = tmp_path / "o.mp4"
    line = one_line_error(videoinv("edit", clips.bt709, "-o", out, "--chain", "copy", "--segments", "mouth"),
                          "--segments sets up the face edit, which --chain replaces", "blend=segments=")
    assert "--feather" not in line
    one_line_error(videoinv("edit", clips.bt709, "-o", out, "--chain", "copy", "--feather", "3", "--faces", "0",
                            "--dtype", "bfloat16"), "--feather, --faces, --dtype set up the face edit")
    assert not out.exists() and leftovers(tmp_path) == []
    # how the run uses the machine still applies to a chain
    assert videoinv("edit", clips.bt709, "-o", out, "--chain", "copy", "--threads", "1", "--sequential",
                    "--end", "3f", "-q").returncode == 0 and out.exists()


def test_bad_time_and_audio_file(clips, tmp_path):
    one_line_error(videoinv("edit", clips.bt709, "-o", tmp_path / "o.mp4", "--start", "soon"), "bad time")
    one_line_error(videoinv("edit", clips.bt709, "-o", tmp_path / "o.mp4", "--audio", tmp_path / "x.wav"),
                   "audio file not found")
    assert leftovers(tmp_path) == []


def test_an_unusable_audio_file_is_refused_before_weights_are_asked_for(clips, tmp_path):
    # these came after the models loaded and the first frame was edited, or after the missing-weights error
    env = {**os.environ, "VIDEOINV_HOME": str(tmp_path / "empty")}
    not_media, silent = tmp_path / "notes.txt", tmp_path / "still.png"
    not_media.write_text("not a sound")
    ffmpeg("-i", clips.bt709, "-frames:v", "1", silent)
    run = lambda audio: videoinv("edit", clips.bt709, "-o", tmp_path / "o.mp4", "--edit", "smile=1",  # noqa: E731
                                 "--audio", audio, env=env)
    one_line_error(run(tmp_path / "x.wav"), "audio file not found", "x.wav")
    one_line_error(run(not_media), "cannot read the --audio file", "notes.txt", "give an audio or video file")
    one_line_error(run(silent), "still.png has no audio stream to use with --audio")
    assert not (tmp_path / "o.mp4").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_write_leaves_nothing(clips, tmp_path, sig):
    out = tmp_path / "out.mp4"
    # a test run started in the background by a shell inherits SIGINT ignored, and Python then
    # keeps it ignored (as a job under nohup should); Ctrl-C at a terminal finds the default
    proc = subprocess.Popen([sys.executable, "-m", "videoinv", "edit", str(clips.long), "-o", str(out),
                             "--preset", "slow", "--chain", "copy"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while not leftovers(tmp_path) and time.time() < deadline:  # wait until it is writing
        time.sleep(0.05)
    assert leftovers(tmp_path), "the job never started writing"
    time.sleep(0.5)
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    assert not out.exists() and leftovers(tmp_path) == []


def _editing(tmp_path) -> tuple[subprocess.Popen, object]:
    """A face edit with a real-sized model, once it is writing frames and its models are busy
    (on 2 cores the clean-up after an interrupt then takes seconds: the running batches finish)."""
    from videoinv import samples

    clip, out = tmp_path / "face.mp4", tmp_path / "out.mp4"
    samples.write_clip(clip, samples.moving_face(), 240, audio=True)
    proc = subprocess.Popen([sys.executable, "-m", "videoinv", "edit", str(clip), "-o", str(out),
                             "--model", "random:256", "--device", "cpu", "--edit", "sefa0=3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not leftovers(tmp_path) and time.time() < deadline:
        time.sleep(0.05)
    assert leftovers(tmp_path), "the edit never started writing"
    time.sleep(1.0)
    return proc, out


def test_a_second_interrupt_lets_the_clean_up_finish(tmp_path):
    # `timeout` signals the command and then its whole process group, and an impatient user
    # presses Ctrl-C twice: a second signal that cut the clean-up short left stage threads
    # working in torch as Python exited, and the process aborted ("terminate called", SIGABRT)
    proc, out = _editing(tmp_path)
    os.kill(proc.pid, signal.SIGTERM)
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "terminate called" not in err and "Traceback" not in err
    assert err.strip().endswith("videoinv: interrupted; no output was left behind")
    assert not out.exists() and leftovers(tmp_path) == []


def test_a_signal_after_the_command_has_returned_is_ignored():
    # Python's shutdown puts back the default handlers, so a second SIGTERM (timeout's, to the
    # process group) that landed after the clean-up killed the process: status 143, not 130
    code = ("import os, signal, sys, time; from videoinv.cli import main; sys.argv = ['videoinv', 'stages', '-q']; "
            "rc = main(); os.kill(os.getpid(), signal.SIGTERM); time.sleep(0.2); "
            "print(signal.getsignal(signal.SIGTERM) is signal.SIG_IGN); sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip().endswith("True"), result.stderr


def test_a_third_interrupt_quits_at_once_and_never_under_the_final_name(tmp_path):
    # a user pressing Ctrl-C again and again: a signal every 20 ms until the command has gone.
    # The clean-up can take as little as 0.1 s (the busy stage was between batches), so signals
    # 0.1 s apart let it finish first; two that land before the main thread runs the handler
    # count as one (Python keeps a flag, not a count), and any that come after it has returned
    # must be ignored
    proc, out = _editing(tmp_path)
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.02)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    assert "interrupted again; quitting without cleaning up" in err and "terminate called" not in err
    assert not out.exists()


def test_called_from_python_the_command_puts_back_the_callers_signal_handlers(clips):
    from videoinv.cli import main

    def mine(signum, frame):
        pass

    saved = signal.signal(signal.SIGTERM, mine)
    try:
        before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
        assert main(["probe", str(clips.bt709), "--json"]) == 0
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    finally:
        signal.signal(signal.SIGTERM, saved)
