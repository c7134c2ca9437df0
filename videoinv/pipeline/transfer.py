"""Frames to and from the model device, overlapped with compute on CUDA.

On CUDA an upload copies the frame into a pinned host buffer and from there to the GPU on a
dedicated copy stream; the computing stream waits for it through an event, so copying frame n+1
overlaps computing frame n. A download runs on another stream after an event recorded on the
computing stream and lands in a pinned buffer; only :meth:`Download.result` waits, for that one
copy (no device-wide synchronisation). Pinned buffers are reused once their copy has finished.
On other devices both are plain tensor conversions. The CUDA-only code is this module.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np
import torch


class Download:
    """A frame on its way to host memory; :meth:`result` is the [H,W,3] uint8 array."""

    def __init__(self, array: np.ndarray | None = None, host: torch.Tensor | None = None, event=None,
                 release=None):
        self._array, self._host, self._event, self._release = array, host, event, release

    def result(self) -> np.ndarray:
        if self._array is None:
            self._event.synchronize()
            self._array = self._host.numpy().copy()
            self._release(self._host, self._event)
        return self._array


class Transfer:
    """Uploads [H,W,3] uint8 frames as [3,H,W] uint8 tensors on ``device`` and downloads them."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"
        self._free: dict[tuple, list] = {}  # shape -> [(pinned tensor, event or None)]
        self._lock = threading.Lock()
        if self.cuda:
            self.up = torch.cuda.Stream(device)
            self.down = torch.cuda.Stream(device)

    # -- pinned buffers ------------------------------------------------------------------------
    def _pinned(self, shape: tuple, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
        with self._lock:
            pool = self._free.setdefault((shape, dtype), [])
            for i, (buffer, event) in enumerate(pool):
                if event is None or event.query():
                    del pool[i]
                    return buffer
        return torch.empty(shape, dtype=dtype).pin_memory()

    def _release(self, buffer: torch.Tensor, event) -> None:
        with self._lock:
            self._free.setdefault((tuple(buffer.shape), buffer.dtype), []).append((buffer, event))

    # -- the two directions --------------------------------------------------------------------
    def send(self, array: np.ndarray) -> torch.Tensor:
        """``array`` on the device (same shape and dtype), ready for work queued after this call
        on this thread. On CUDA it goes through a pinned buffer on the copy stream: a plain copy
        from host memory would first wait for all the work queued on the device."""
        if not self.cuda:
            return torch.from_numpy(np.require(array, None, ["C", "W"])).to(self.device)
        host = self._pinned(array.shape, torch.from_numpy(np.empty(0, array.dtype)).dtype)
        host.numpy()[...] = array
        done = torch.cuda.Event()
        with torch.cuda.stream(self.up):
            tensor = host.to(self.device, non_blocking=True)
            done.record(self.up)
        torch.cuda.current_stream(self.device).wait_event(done)
        tensor.record_stream(torch.cuda.current_stream(self.device))
        self._release(host, done)
        return tensor

    def upload(self, image: np.ndarray) -> torch.Tensor:
        """[3,H,W] uint8 on the device, ready for work queued after this call on this thread."""
        return self.send(np.asarray(image, np.uint8)).permute(2, 0, 1)

    def download(self, frame: torch.Tensor) -> Download:
        """Start copying ``frame`` [3,H,W] uint8 to host memory after the work queued so far."""
        hwc = frame.permute(1, 2, 0).contiguous()
        if not self.cuda:
            return Download(array=hwc.numpy())
        ready = torch.cuda.Event()
        ready.record(torch.cuda.current_stream(self.device))
        host = self._pinned(tuple(hwc.shape), hwc.dtype)
        done = torch.cuda.Event()
        with torch.cuda.stream(self.down):
            self.down.wait_event(ready)
            host.copy_(hwc, non_blocking=True)
            done.record(self.down)
        hwc.record_stream(self.down)
        return Download(host=host, event=done, release=self._release)


_TRANSFERS: dict[str, Transfer] = {}
_TRANSFERS_LOCK = threading.Lock()


def transfer_for(device: torch.device) -> Transfer:
    """The process's Transfer for ``device`` (its streams and pinned buffers are shared by the
    stages that upload and download)."""
    with _TRANSFERS_LOCK:
        key = str(device)
        if key not in _TRANSFERS:
            _TRANSFERS[key] = Transfer(torch.device(device))
        return _TRANSFERS[key]


class GpuClock:
    """GPU busy time from CUDA events: stages wrap their device work in :meth:`span`; after a
    run :meth:`busy_seconds` is the length of the union of those spans on the GPU's own
    timeline (spans from several threads may overlap). Nothing is recorded off CUDA."""

    def __init__(self):
        self.spans: list = []
        self.origin = None
        self.lock = threading.Lock()

    def reset(self) -> None:
        with self.lock:
            self.spans, self.origin = [], None

    @contextmanager
    def span(self, device: torch.device):
        if device.type != "cuda":
            yield
            return
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with self.lock:
            if self.origin is None:
                self.origin = torch.cuda.Event(enable_timing=True)
                self.origin.record()
        start.record()
        try:
            yield
        finally:
            end.record()
            with self.lock:
                self.spans.append((start, end))

    def busy_seconds(self) -> float | None:
        """None when nothing ran on a GPU."""
        with self.lock:
            spans, origin = list(self.spans), self.origin
        if origin is None:
            return None
        intervals = []
        for start, end in spans:
            end.synchronize()
            intervals.append((origin.elapsed_time(start), origin.elapsed_time(end)))
        total, reach = 0.0, float("-inf")
        for a, b in sorted(intervals):
            if b > reach:
                total += b - max(a, reach)
                reach = b
        return total / 1000


GPU_CLOCK = GpuClock()
