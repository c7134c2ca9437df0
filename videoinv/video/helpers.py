"""FFmpeg's helper threads in decoding and in the RGB conversions, on or off for a run.

By default FFmpeg decodes on frame and slice threads and converts YUV <-> RGB in one swscale
slice per core: right for a run whose other work leaves cores idle (a sequential one, or one
whose models are on a GPU). A pipelined run with its models on the CPU keeps every core busy
with its stages, and there those helpers only wait for each other: a 720p YUV -> RGB conversion
took 4.5 ms of CPU on one thread and 6.0 ms on two, and interleaved pipelined edits of
random:256:32 on 2 cores ran 4% faster on 4% less CPU with one swscale thread, and 4.5% faster
on 5% less again with the decoder on the reading thread. Decoded pictures and conversions are
the same either way. The encoder keeps its threads (without them it was no faster, and its
bitstream would change). The setting is process-wide, like torch's thread count: a Reader reads
it when it opens, every conversion when it runs.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

_lock = threading.Lock()
_on = True


def on() -> bool:
    """Whether FFmpeg may start helper threads for decoding and conversions now."""
    return _on


def swscale_threads() -> int:
    """swscale's threads for a conversion starting now (0: FFmpeg's choice, one per core)."""
    return 0 if _on else 1


@contextmanager
def ffmpeg_helpers(enabled: bool):
    """Decode and convert with (``True``, FFmpeg's choice) or without FFmpeg's helper threads
    inside the block; restored after."""
    global _on
    with _lock:
        before, _on = _on, bool(enabled)
    try:
        yield
    finally:
        with _lock:
            _on = before
