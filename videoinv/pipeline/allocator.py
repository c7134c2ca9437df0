"""The C allocator: the ``videoinv`` command runs under jemalloc where it is installed, and
glibc's malloc keeps freed memory (set once per process before any thread allocates: ``import
videoinv`` does it; this module imports nothing heavy).

Why jemalloc: glibc's one heap fragments under the models' mix of block sizes. A cold 30-frame
edit of ``random:256`` grew its heap to 2.6 GB while at most 1.2-1.4 GB of it was in use (a
128 MB block of the encoder's first layer at a batch of 8 found no hole big enough at each call),
and every page of that growth is zeroed by the kernel when first touched (7% of the run's
cycles). Under jemalloc, which keeps freed blocks of each size class for reuse: peak memory
2.0-2.1 GB instead of 2.8-3.1 GB for that edit and 2.2 instead of 3.4 GB for warm runs of 24
frames, the cold edit 6% faster, warm runs as fast (light and full-size models alike). It must be
in place before the process starts (``LD_PRELOAD``), so the command starts itself again with it
once; ``VIDEOINV_ALLOCATOR=glibc`` keeps glibc's, ``=jemalloc`` insists on jemalloc. The Python
API uses whatever allocator the process has."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import sys
import tempfile

# keep freed memory for reuse (no decay back to the system) in one arena, as for glibc below;
# jemalloc's default decay returned memory within seconds: 6.5M page faults instead of 0.5M
# and the cold edit 30% slower
JEMALLOC_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1,narenas:1"
ENV = "VIDEOINV_ALLOCATOR"  # auto (default: jemalloc where installed), jemalloc (required) or glibc
CHOICES = ("auto", "jemalloc", "glibc")
_RELAUNCHED = "VIDEOINV_RELAUNCHED"  # set in the process started again: it must not start itself again


def jemalloc_library() -> str | None:
    """jemalloc's shared library name as the dynamic loader finds it, or None."""
    if not sys.platform.startswith("linux"):
        return None
    return ctypes.util.find_library("jemalloc")


def in_use() -> str:
    """``jemalloc`` when this process runs on it, else ``libc``."""
    try:
        with open("/proc/self/maps") as maps:
            return "jemalloc" if "libjemalloc" in maps.read() else "libc"
    except OSError:
        return "libc"


def relaunch_with_jemalloc(argv: list[str] | None = None) -> None:
    """Start this command again (``argv``, default ``python -m videoinv`` with this process's
    arguments) with jemalloc preloaded, once, where ``VIDEOINV_ALLOCATOR`` allows: ``auto`` (the
    default) where it is installed, else the command goes on with glibc's malloc; ``jemalloc``
    requires it; ``glibc`` keeps glibc's. Raises VideoinvError for any other value, or where
    jemalloc is required and cannot be loaded. Call it before anything heavy is imported: the
    process is replaced."""
    from ..errors import VideoinvError

    choice = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise VideoinvError(f"{ENV}={os.environ[ENV]!r} is not one of {', '.join(CHOICES)}; "
                            "set one of those or unset it")
    if choice == "glibc" or in_use() == "jemalloc":
        return
    required = choice == "jemalloc"
    library = jemalloc_library()
    if library is None or os.environ.get(_RELAUNCHED):
        if required:  # not installed, or preloaded and still not mapped (the loader refused it)
            raise VideoinvError(f"{ENV}=jemalloc but jemalloc " + (
                "is not installed; install libjemalloc2 (apt-get install libjemalloc2)"
                if library is None else f"({library}) did not load") + f", or set {ENV}=auto")
        return
    env = dict(os.environ)
    env[_RELAUNCHED] = "1"
    env["LD_PRELOAD"] = " ".join(filter(None, [env.get("LD_PRELOAD", ""), library]))
    env.setdefault("MALLOC_CONF", JEMALLOC_CONF)
    argv = argv or [sys.executable, "-m", "videoinv", *sys.argv[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(argv[0], argv, env)
    except OSError as err:  # cannot start it: go on as we are, unless it was required
        if required:
            raise VideoinvError(f"{ENV}=jemalloc but the command could not start again with it: "
                                f"{err.strerror}; set {ENV}=auto") from None
        return

_TUNED = False

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8


def _libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_info  # glibc's
        return libc
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return None


def keep_freed_memory() -> None:
    """Let glibc keep freed blocks for reuse instead of returning large ones to the system, and
    give every thread the one main arena.

    Torch's CPU tensors of a few MB are allocated and freed per layer; by default each is a
    fresh mmap whose pages fault in again (a third of the CPU time went to the kernel at 720p
    with random:256:32; keeping them made the run 15-25% faster and 1024 synthesis 2x faster).
    A thread's own arena is a chain of 64 MB heaps: it maps blocks larger than that afresh and
    unmaps a heap as soon as it empties, so a model on a pipeline thread refaults its memory.

    It must run before any thread other than the main one allocates: the first such thread gets
    an arena of its own whatever is set later, and glibc then hands that arena to later threads
    too. A clip written with PyAV (x264's threads) before the models were loaded was enough:
    every pipelined run of random:256:32 then took 24k-77k page faults (0.4-1.0 s of kernel
    time, 10-15% of its CPU time) against about 1k with one arena. Once per process."""
    global _TUNED
    if _TUNED:
        return
    _TUNED = True
    libc = _libc()
    if libc is None:
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)
    libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    libc.mallopt(_M_ARENA_MAX, 1)


def arena_count() -> int | None:
    """How many malloc arenas this process has (1: every thread shares the main one); None
    where the C library is not glibc."""
    libc = _libc()
    if libc is None:
        return None
    libc.fdopen.restype = ctypes.c_void_p
    with tempfile.TemporaryFile() as f:
        stream = libc.fdopen(libc.dup(f.fileno()), b"w")
        if not stream:
            return None
        libc.malloc_info(0, ctypes.c_void_p(stream))
        libc.fclose(ctypes.c_void_p(stream))
        f.seek(0)
        return len(re.findall(rb"<heap nr=", f.read()))
