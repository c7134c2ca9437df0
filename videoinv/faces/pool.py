"""Face detection in worker processes, ahead of the tracker.

A detection takes 13-26 ms of CPU on a 640-pixel copy of the frame, far longer than anything
else of the tracker's, so :class:`DetectionAhead` runs the detector in worker processes on the
frames the tracker will most likely ask about (its regular schedule: every N frames after the
last detection), as soon as they are decoded; when the tracker then asks, the answer is usually
ready. A frame it asks about that was not sent ahead (the schedule moved because tracking was
unsure) is detected in the calling thread and unused answers are dropped, so the results are
exactly the detector's own.

A worker is ``python -m videoinv.faces.pool`` (not a fork of a process running threads, and not
a re-import of the caller's main script). Frames go down its stdin as a JSON header line plus
raw bytes; boxes come back as JSON lines.

Processes because dlib was taken to hold Python's lock while it detects. Its HOG detector does
not: a Python thread beside it runs on, and two threads ran 40 detections in 0.32 s against
0.54 s on one (its landmark fitter does hold the lock, 0.8 ms a face). Threads would then do for
``hog`` without copying frames through pipes or starting interpreters; the CNN detector's
behaviour is unmeasured, and on our 2-core machines no pool pays (see recipe.detect_workers).
"""

from __future__ import annotations

import itertools
import json
import logging
import subprocess
import sys
import threading
from concurrent.futures import Future

import numpy as np

from ..errors import VideoinvError
from .detect import CnnDetector, Detection, HogDetector, _DlibDetector, _scaled

log = logging.getLogger(__name__)


class _Worker:
    def __init__(self, detector: _DlibDetector):
        settings = {"detector": detector.name, "detect_size": detector.detect_size,
                    "upsample": detector.upsample, "threshold": detector.threshold}
        self.proc = subprocess.Popen([sys.executable, "-m", __name__, json.dumps(settings)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        self.futures: dict[int, Future] = {}
        self.lock = threading.Lock()
        self.ready = False  # has answered once (a starting worker is slower than detecting here)
        self.reader = threading.Thread(target=self._read, name="videoinv-detect-results", daemon=True)
        self.reader.start()

    def submit(self, job: int, small: np.ndarray, scale: float) -> Future:
        future: Future = Future()
        small = np.ascontiguousarray(small, np.uint8)
        header = json.dumps({"id": job, "shape": list(small.shape), "scale": scale}).encode() + b"\n"
        with self.lock:
            self.futures[job] = future
            try:
                self.proc.stdin.write(header)
                self.proc.stdin.write(small.tobytes())
            except (BrokenPipeError, OSError) as err:
                self.futures.pop(job, None)
                future.set_exception(VideoinvError(f"the detection worker stopped: {err}"))
        return future

    def _read(self) -> None:
        for line in self.proc.stdout:
            answer = json.loads(line)
            with self.lock:
                future = self.futures.pop(answer["id"], None)
            self.ready = True
            if future is None:
                continue
            if "error" in answer:
                future.set_exception(VideoinvError(f"detection worker: {answer['error']}"))
            else:
                future.set_result([Detection(np.array(f[:4], np.float64), float(f[4])) for f in answer["found"]])
        with self.lock:  # the worker is gone: nothing pending will be answered
            for future in self.futures.values():
                future.set_exception(VideoinvError("the detection worker stopped unexpectedly"))
            self.futures.clear()

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=5)


class DetectionAhead:
    """Wraps a dlib detector: ``schedule(index, image)`` sends a frame to a worker,
    ``detect(image)`` (as the tracker calls it, after ``at(index)``) answers from the worker
    when that frame was sent, else detects here."""

    def __init__(self, detector: _DlibDetector, workers: int = 1):
        self.detector = detector
        self.workers = [_Worker(detector) for _ in range(max(1, workers))]
        self.pending: dict[int, tuple[_Worker, Future]] = {}
        self.lock = threading.Lock()
        self.jobs = itertools.count()
        self.index: int | None = None
        self.hits = self.misses = 0

    @staticmethod
    def supports(detector) -> bool:
        return isinstance(detector, _DlibDetector) and getattr(detector, "name", None) in ("hog", "cnn")

    def schedule(self, index: int, image: np.ndarray) -> None:
        with self.lock:
            if index in self.pending or (self.index is not None and index < self.index):
                return
            job = next(self.jobs)
        small, scale = _scaled(image, self.detector.detect_size)
        worker = self.workers[job % len(self.workers)]
        future = worker.submit(job, small, scale)
        with self.lock:
            self.pending[index] = (worker, future)

    def at(self, index: int) -> None:
        """The frame the next ``detect`` call is about; answers for earlier frames are dropped."""
        with self.lock:
            self.index = index
            for old in [i for i in self.pending if i < index]:
                del self.pending[old]

    def detect(self, image: np.ndarray) -> list[Detection]:
        with self.lock:
            worker, future = self.pending.pop(self.index, (None, None))
        if future is None or (not future.done() and not worker.ready):
            self.misses += 1
            return self.detector.detect(image)
        self.hits += 1
        return future.result()

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        log.debug("detection ahead: %d answered by workers, %d detected in place", self.hits, self.misses)


def _serve(settings: dict) -> None:
    """The worker's loop: frames in on stdin, boxes out on stdout, until stdin closes."""
    # the two dlib detectors directly: the registry would import every stage, torch too (2.5 s
    # of CPU at every start, on the cores the run it serves needs)
    cls = {"hog": HogDetector, "cnn": CnnDetector}[settings["detector"]]
    detector = cls(detect_size=settings["detect_size"], upsample=settings["upsample"],
                   threshold=settings["threshold"])
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    while True:
        line = source.readline()
        if not line:
            return
        job = json.loads(line)
        shape = tuple(job["shape"])
        data = source.read(int(np.prod(shape)))
        try:
            small = np.frombuffer(data, np.uint8).reshape(shape)
            found = [[*map(float, d.box), d.score] for d in detector.detect_scaled(small, job["scale"])]
            answer = {"id": job["id"], "found": found}
        except Exception as err:  # noqa: BLE001 - reported to the parent, which raises it
            answer = {"id": job["id"], "error": f"{type(err).__name__}: {err}"}
        sink.write(json.dumps(answer).encode() + b"\n")
        sink.flush()


if __name__ == "__main__":
    _serve(json.loads(sys.argv[1]))
