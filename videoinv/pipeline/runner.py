"""Running a chain of stages over a stream of frame records."""

from __future__ import annotations

import queue
import threading
import time
from collections import defaultdict
from typing import Iterable, Iterator, TypeVar

from ..chain import Chain, build_stages
from ..video.frame import FrameRecord

T = TypeVar("T")


class Pipeline:
    """The stages of a chain, run over records in batches, order and count preserved.

    Use :meth:`run` over an iterable, or :meth:`push` batches and :meth:`flush` at the end
    (frame by frame, as the raw-frame pipe does).
    """

    def __init__(self, chain: str | Chain = "copy", registry=None, batch_size: int = 8):
        self.stages = build_stages(chain, registry)
        self.batch_size = max(1, int(batch_size))
        self._in = 0
        self._out = 0
        self.seconds: dict[str, float] = defaultdict(float)  # busy time per stage (name#position)

    @property
    def is_identity(self) -> bool:
        return not self.stages

    @property
    def needs_prepass(self) -> bool:
        return any(stage.needs_prepass for stage in self.stages)

    def prepass(self, records: Iterable[FrameRecord]) -> None:
        """Run the whole video through the stages before the first stage that needs a pre-pass
        and hand their output to it (e.g. offline smoothing sees every track before the main
        pass). Only small per-frame results are kept, never frames."""
        k = next(i for i, stage in enumerate(self.stages) if stage.needs_prepass)
        before, target = self.stages[:k], self.stages[k]
        for stage in before:
            stage.begin_prepass()

        def through(batch):
            for stage in before:
                if not batch:
                    break
                batch = stage.process(batch)
            return batch

        batch: list[FrameRecord] = []
        for record in records:
            batch.append(record)
            if len(batch) == self.batch_size:
                target.observe(through(batch))
                batch = []
        target.observe(through(batch))
        tail: list[FrameRecord] = []
        for stage in before:
            tail = (stage.process(tail) if tail else []) + stage.flush()
        target.observe(tail)
        target.observed()
        for stage in before:
            stage.end_prepass()

    def push(self, batch: list[FrameRecord]) -> list[FrameRecord]:
        """Feed records; returns those that have passed every stage (possibly none yet)."""
        self._in += len(batch)
        for i, stage in enumerate(self.stages):
            if not batch:
                break
            t = time.perf_counter()
            batch = stage.process(batch)
            self.seconds[f"{stage.name}#{i}"] += time.perf_counter() - t
        self._out += len(batch)
        return batch

    def flush(self) -> list[FrameRecord]:
        """End of input: drain every stage's held-back records, in order."""
        out: list[FrameRecord] = []
        for i, stage in enumerate(self.stages):
            t = time.perf_counter()
            out = (stage.process(out) if out else []) + stage.flush()
            self.seconds[f"{stage.name}#{i}"] += time.perf_counter() - t
        self._out += len(out)
        if self._out != self._in:
            raise RuntimeError(f"pipeline lost frames: {self._in} in, {self._out} out "
                               f"(stages: {', '.join(s.name for s in self.stages)})")
        return out

    def run(self, records: Iterable[FrameRecord]) -> Iterator[FrameRecord]:
        batch: list[FrameRecord] = []
        for record in records:
            batch.append(record)
            if len(batch) == self.batch_size:
                yield from self.push(batch)
                batch = []
        if batch:
            yield from self.push(batch)
        yield from self.flush()

    def close(self) -> None:
        for stage in self.stages:
            stage.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_END = object()


def prefetch(items: Iterable[T], depth: int = 8) -> Iterator[T]:
    """Produce ``items`` on a background thread, at most ``depth`` ahead of the consumer.

    Exceptions of the producer are re-raised in the consumer. When the consumer stops early
    (or is closed) the producer is told to stop and is waited for.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((_END, None))
        except BaseException as err:  # noqa: BLE001 - handed to the consumer
            q.put((_END, err))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()  # in this thread, before the consumer may close what it reads from

    thread = threading.Thread(target=produce, name="videoinv-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, err = q.get()
            if item is _END:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.05)
