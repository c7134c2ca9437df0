"""How the C allocator (glibc) keeps freed memory, set once per process before any thread
allocates: ``import videoinv`` does it (this module imports nothing heavy)."""

from __future__ import annotations

import ctypes
import re
import tempfile

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
