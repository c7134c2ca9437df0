"""The threads swscale may use for the RGB conversions of decoding and encoding.

FFmpeg's choice (0) is one slice per core: right for a run whose other work leaves cores idle
(a sequential one, or one whose models are on a GPU). A pipelined run with its models on the CPU
keeps every core busy with its stages, and there the slices only wait for each other: a 720p
YUV -> RGB conversion took 4.5 ms of CPU on one thread and 6.0 ms on two, and a pipelined edit
of random:256:32 on 2 cores ran 4% faster on 4% less CPU with one (benchmarks in
``videoinv bench speed``). The setting is process-wide, like torch's thread count, and read by
every conversion (``Reader.to_rgb``, ``Writer``) when it runs.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

_lock = threading.Lock()
_threads = 0  # FFmpeg's choice


def threads() -> int:
    """swscale threads for a conversion starting now (0: FFmpeg's choice)."""
    return _threads


@contextmanager
def conversion_threads(n: int):
    """Convert with ``n`` swscale threads (0: FFmpeg's choice) inside the block; restored after."""
    global _threads
    if n < 0:
        raise ValueError(f"conversion threads must be 0 (FFmpeg's choice) or more, not {n}")
    with _lock:
        before, _threads = _threads, n
    try:
        yield
    finally:
        with _lock:
            _threads = before
