"""Model batches that shrink when memory runs out, without losing any item."""

from __future__ import annotations

import logging
import threading
from typing import Callable, Sequence, TypeVar

import torch

from ..errors import VideoinvError

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


def is_out_of_memory(err: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or an allocator's failure on any device."""
    if isinstance(err, torch.OutOfMemoryError):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


class Stopped(Exception):
    """A threaded run is stopping (Ctrl-C, or another stage's error): a model stage gives up the
    rest of its batch instead of finishing work nobody will take."""


def check_stop(event: threading.Event | None) -> None:
    """Raise :class:`Stopped` once ``event`` (a threaded run's stop signal) is set."""
    if event is not None and event.is_set():
        raise Stopped


def _release_cached_memory() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


class AdaptiveBatch:
    """Runs a model over items in chunks of at most ``size`` (None: all at once); on
    out-of-memory it halves the chunk, retries the same items, and keeps the smaller size for
    later calls. Results come back in item order, one per item. ``stopping``: a threaded run's
    stop signal, looked at before each chunk (see :class:`Stopped`)."""

    def __init__(self, what: str, size: int | None = None):
        self.what = what
        self.size = size
        self.stopping: threading.Event | None = None

    def map(self, run: Callable[[Sequence[T]], Sequence[R]], items: Sequence[T]) -> list[R]:
        out: list[R] = []
        i = 0
        while i < len(items):
            n = len(items) - i if self.size is None else min(self.size, len(items) - i)
            check_stop(self.stopping)
            try:
                out.extend(run(items[i:i + n]))
            except Exception as err:  # noqa: BLE001 - only out-of-memory is handled
                if not is_out_of_memory(err):
                    raise
                if n == 1:
                    raise VideoinvError(f"{self.what}: out of memory even for one face; free memory on the "
                                        f"device or use a smaller model or --device cpu") from err
                _release_cached_memory()
                self.size = max(1, n // 2)
                log.warning("%s: out of memory at a batch of %d, going on with %d", self.what, n, self.size)
                continue
            i += n
        return out
