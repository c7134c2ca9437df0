"""The `videoinv` command runs under jemalloc where it is installed (glibc's heap fragments under
the models' block sizes: 1 GB more at the peak of a full-size edit), once, keeping what the user
set, and not where the user asks for glibc's malloc."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from videoinv.errors import VideoinvError
from videoinv.pipeline import allocator

needs_jemalloc = pytest.mark.skipif(allocator.jemalloc_library() is None,
                                    reason="jemalloc is not installed (scripts/setup.sh installs libjemalloc2)")

REPORT = ("import os; from videoinv.pipeline.allocator import in_use; "
          "print(in_use(), os.environ.get('LD_PRELOAD', ''), os.environ.get('MALLOC_CONF', ''), sep='|')")


def _relaunched(env: dict) -> list[str]:
    """What a process started through ``relaunch_with_jemalloc`` reports about its allocator."""
    code = ("import sys; from videoinv.pipeline.allocator import relaunch_with_jemalloc; "
            f"relaunch_with_jemalloc([sys.executable, '-c', {REPORT!r}]); " + REPORT)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**_clean_env(), **env})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().split("|")


def _clean_env() -> dict:
    """This environment without any allocator choice or preload of its own."""
    return {k: v for k, v in os.environ.items()
            if k not in ("LD_PRELOAD", "MALLOC_CONF", allocator.ENV, allocator._RELAUNCHED)}


def _command(*args: str, env: dict) -> subprocess.CompletedProcess:
    """The installed `videoinv` console script."""
    exe = Path(sys.executable).parent / "videoinv"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60,
                          env={**_clean_env(), **env})


@needs_jemalloc
def test_a_command_starts_again_under_jemalloc_once_keeping_what_the_user_preloads():
    used, preload, conf = _relaunched({})
    assert used == "jemalloc" and "jemalloc" in preload
    assert conf == allocator.JEMALLOC_CONF  # freed memory kept for reuse, not given back
    # a library the user preloads stays, and their own jemalloc settings win
    mine = ctypes.util.find_library("m")
    used, preload, conf = _relaunched({"LD_PRELOAD": mine, "MALLOC_CONF": "narenas:2"})
    assert used == "jemalloc" and preload.split()[0] == mine and conf == "narenas:2"


def test_videoinv_allocator_glibc_keeps_glibc():
    used, preload, _ = _relaunched({allocator.ENV: "glibc"})
    assert used == "libc" and "jemalloc" not in preload


@needs_jemalloc
def test_videoinv_allocator_jemalloc_runs_on_it():
    used, preload, _ = _relaunched({allocator.ENV: "JEMALLOC"})
    assert used == "jemalloc" and "jemalloc" in preload


def test_an_unknown_allocator_choice_stops_the_command_with_one_line(tmp_path):
    done = _command("probe", str(tmp_path / "any.mp4"), env={allocator.ENV: "tcmalloc"})
    assert done.returncode != 0 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("videoinv: error: ")
    assert "VIDEOINV_ALLOCATOR='tcmalloc'" in lines[0] and "auto, jemalloc, glibc" in lines[0]


def test_jemalloc_required_but_missing_is_an_error_not_a_silent_glibc(monkeypatch):
    monkeypatch.setattr(allocator, "jemalloc_library", lambda: None)
    monkeypatch.setattr(allocator, "in_use", lambda: "libc")
    monkeypatch.delenv(allocator._RELAUNCHED, raising=False)
    monkeypatch.setenv(allocator.ENV, "jemalloc")
    with pytest.raises(VideoinvError, match="not installed; install libjemalloc2"):
        allocator.relaunch_with_jemalloc(["/bin/false"])
    monkeypatch.setenv(allocator.ENV, "auto")  # auto: where it is missing, glibc's it is
    allocator.relaunch_with_jemalloc(["/bin/false"])


@needs_jemalloc
def test_a_started_again_command_that_is_still_not_on_jemalloc_does_not_loop():
    """Started again (the marker set) but jemalloc not mapped, as when the loader refuses the
    preload: the command goes on once (auto) or stops with one line (jemalloc), never restarts."""
    probe = ["--version"]
    went_on = _command(*probe, env={allocator._RELAUNCHED: "1"})
    assert went_on.returncode == 0, went_on.stderr
    refused = _command(*probe, env={allocator._RELAUNCHED: "1", allocator.ENV: "jemalloc"})
    assert refused.returncode != 0 and "did not load" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


@needs_jemalloc
@pytest.mark.parametrize("choice", ["auto", "glibc"])
def test_the_installed_command_runs_on_the_allocator_chosen(choice):
    """The console script itself: a `videoinv filter` pipe, seen while it runs, passes a frame
    through unchanged either way."""
    exe = Path(sys.executable).parent / "videoinv"
    env = _clean_env()
    proc = subprocess.Popen([str(exe), "filter", "--size", "4x4", "--rate", "30", "--chain", "copy",
                             "--batch-size", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**env, allocator.ENV: choice})
    try:
        frame = bytes(range(48))
        proc.stdin.write(frame)
        proc.stdin.flush()
        assert proc.stdout.read(48) == frame
        with open(f"/proc/{proc.pid}/maps") as maps:  # the same process: it replaced itself
            mapped = "libjemalloc" in maps.read()
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0, proc.stderr.read()[-2000:]
    finally:
        proc.kill()
    assert mapped == (choice == "auto")
