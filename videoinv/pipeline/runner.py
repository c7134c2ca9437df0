"""Running a chain of stages over a stream of frame records."""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterable, Iterator, TypeVar

from ..chain import Chain, build_stages
from ..errors import ChainError
from ..video.frame import FrameRecord

T = TypeVar("T")
_END = object()


class Pipeline:
    """The stages of a chain, run over records in batches, order and count preserved.

    Use :meth:`run` over an iterable, or :meth:`push` batches and :meth:`flush` at the end
    (frame by frame, as the raw-frame pipe does). ``from_frames``: the records come in as bare
    decoded frames, so a stage whose input no stage before it makes is refused (a video's
    chain; tests feed single stages records made by hand).
    """

    def __init__(self, chain: str | Chain = "copy", registry=None, batch_size: int = 8, threaded: bool = False,
                 from_frames: bool = False):
        self.stages = build_stages(chain, registry, from_frames)
        wanted = {stage.tf32 for stage in self.stages} - {None}
        if len(wanted) > 1:
            self.close()
            raise ChainError("the chain's model stages ask for float32 and tf32 at once; TensorFloat-32 is "
                             "set for the whole run: give them the same dtype")
        self.tf32 = wanted.pop() if wanted else None  # applied while the pipeline is entered
        self._math = None
        self.batch_size = max(1, int(batch_size))
        self.threaded = threaded  # run() runs each stage on its own thread (see run_threaded)
        self._in = 0
        self._out = 0
        self.seconds: dict[str, float] = defaultdict(float)  # busy time per stage (name#position)

    @property
    def is_identity(self) -> bool:
        return not self.stages

    @property
    def reads_parts(self) -> bool:
        """Whether the stages read only parts of pictures (see ``Stage.reads_parts``)."""
        return bool(self.stages) and all(stage.reads_parts for stage in self.stages)

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
            stage.ahead(batch)
            batch = stage.process(batch)
            self.seconds[f"{stage.name}#{i}"] += time.perf_counter() - t
        self._out += len(batch)
        return batch

    def flush(self) -> list[FrameRecord]:
        """End of input: drain every stage's held-back records, in order."""
        out: list[FrameRecord] = []
        for i, stage in enumerate(self.stages):
            t = time.perf_counter()
            if out:
                stage.ahead(out)
            out = (stage.process(out) if out else []) + stage.flush()
            self.seconds[f"{stage.name}#{i}"] += time.perf_counter() - t
        self._out += len(out)
        if self._out != self._in:
            raise RuntimeError(f"pipeline lost frames: {self._in} in, {self._out} out "
                               f"(stages: {', '.join(s.name for s in self.stages)})")
        return out

    def run(self, records: Iterable[FrameRecord]) -> Iterator[FrameRecord]:
        """Every record through every stage, in order (on threads when ``threaded``)."""
        if self.threaded and self.stages:
            return self.run_threaded(records)
        return self.run_sequential(records)

    def run_sequential(self, records: Iterable[FrameRecord]) -> Iterator[FrameRecord]:
        """Batch after batch through the stages one after the other, on the calling thread."""
        batch: list[FrameRecord] = []
        for record in records:
            batch.append(record)
            if len(batch) == self.batch_size:
                yield from self.push(batch)
                batch = []
        if batch:
            yield from self.push(batch)
        yield from self.flush()

    def run_threaded(self, records: Iterable[FrameRecord], depth: int = 1) -> Iterator[FrameRecord]:
        """Like :meth:`run`, but every stage works on its own thread, connected to the next by a
        queue of at most ``depth`` batches: stage k works on batch n while stage k+1 works on
        batch n-1 (torch, OpenCV, PyAV and the detection workers release the GIL). Each stage
        sees the same batches in the same order as with :meth:`run`, so the output is the same.
        An error in any stage stops them all and is raised here."""
        if not self.stages:
            yield from self.run_sequential(records)
            return
        stop = threading.Event()
        queues = [queue.Queue(maxsize=max(1, depth)) for _ in range(len(self.stages) + 1)]

        def put(q: queue.Queue, item) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def get(q: queue.Queue):
            while not stop.is_set():
                try:
                    return q.get(timeout=0.1)
                except queue.Empty:
                    continue
            return _END, None

        def feed() -> None:
            try:
                batch: list[FrameRecord] = []
                for record in records:
                    batch.append(record)
                    if len(batch) == self.batch_size:
                        self._in += len(batch)
                        self.stages[0].ahead(batch)
                        if not put(queues[0], (batch, None)):
                            return
                        batch = []
                if batch:
                    self._in += len(batch)
                    self.stages[0].ahead(batch)
                    put(queues[0], (batch, None))
                put(queues[0], (_END, None))
            except BaseException as err:  # noqa: BLE001 - handed to the consumer
                put(queues[0], (_END, err))

        def work(i: int, stage) -> None:
            key = f"{stage.name}#{i}"
            source, target = queues[i], queues[i + 1]
            after = self.stages[i + 1] if i + 1 < len(self.stages) else None

            def send(batch) -> bool:
                if after is not None:
                    after.ahead(batch)
                return put(target, (batch, None))

            try:
                while True:
                    batch, err = get(source)
                    if batch is _END:
                        if err is None and not stop.is_set():
                            t = time.perf_counter()
                            tail = stage.flush()
                            self.seconds[key] += time.perf_counter() - t
                            if tail:
                                send(tail)
                        put(target, (_END, err))
                        return
                    t = time.perf_counter()
                    batch = stage.process(batch)
                    self.seconds[key] += time.perf_counter() - t
                    if batch and not send(batch):
                        return
            except BaseException as err:  # noqa: BLE001
                put(target, (_END, err))

        threads = [threading.Thread(target=feed, name="videoinv-feed", daemon=True)]
        threads += [threading.Thread(target=work, args=(i, s), name=f"videoinv-{s.name}", daemon=True)
                    for i, s in enumerate(self.stages)]
        for stage in self.stages:
            stage.stop_when(stop)
        for thread in threads:
            thread.start()
        try:
            while True:
                batch, err = get(queues[-1])
                if batch is _END:
                    if err is not None:
                        raise err
                    break
                self._out += len(batch)
                yield from batch
        finally:
            stop.set()
            for thread in threads:
                thread.join()
            for stage in self.stages:
                stage.stop_when(None)
        if self._out != self._in:
            raise RuntimeError(f"pipeline lost frames: {self._in} in, {self._out} out "
                               f"(stages: {', '.join(s.name for s in self.stages)})")

    @contextmanager
    def stream(self, frames: Iterator[FrameRecord], depth: int | None = None):
        """The records of ``frames`` (a reader's generator) through the stages, for a ``with``
        block. A threaded pipeline decodes ahead on its own thread (at most ``depth`` records,
        default one batch). However the block ends, the stages' threads stop first, then the
        decoding, so the reader can be closed after it."""
        source = prefetch(frames, depth=depth or self.batch_size) if self.threaded else frames
        records = self.run(source)
        try:
            yield records
        finally:
            records.close()
            source.close()
            frames.close()

    def close(self) -> None:
        for stage in self.stages:
            stage.close()

    def __enter__(self) -> Pipeline:
        if self.tf32 is not None:
            from ..models.tuning import float32_math

            self._math = float32_math(self.tf32)
            self._math.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.close()
        finally:
            if self._math is not None:
                self._math.__exit__(None, None, None)
                self._math = None


def timed(items: Iterable[T], seconds: dict, key: str) -> Iterator[T]:
    """``items``, adding the time spent producing each to ``seconds[key]`` (e.g. decoding)."""
    iterator = iter(items)
    try:
        while True:
            t = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                return
            finally:
                seconds[key] += time.perf_counter() - t
            yield item
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


@contextmanager
def torch_threads(threads: int | None = None):
    """Torch's intra-op thread count for a run: ``threads`` (default: every core). Only when
    torch is in use (a model stage imported it); restored afterwards."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    from ..models.tuning import cpu_count

    before = torch.get_num_threads()
    torch.set_num_threads(threads or cpu_count())
    try:
        yield
    finally:
        torch.set_num_threads(before)


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
