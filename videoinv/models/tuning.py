"""Choices that depend on the machine: the form of the modulated convolution for a batch size,
and the number of torch threads."""

from __future__ import annotations

import logging
import os
import time

import torch

from .ops import conv_mode

log = logging.getLogger(__name__)

_CHOSEN: dict[tuple, str] = {}


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def time_conv_modes(G, batch: int, device: torch.device, dtype: torch.dtype | None = None,
                    repeat: int = 2) -> dict[str, float]:
    """Seconds per call of ``G.synthesize`` on a [batch] W+ (with F at layer 5) in each form."""
    w = torch.zeros(batch, G.n_latent, G.style_dim, device=device)
    feat = torch.zeros(batch, G.channels[16], 16, 16, device=device)
    noise = G.make_noise(0, device)
    times = {}
    for mode in ("grouped", "shared"):
        with torch.no_grad(), conv_mode(mode), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            G.synthesize(w, feature=feat, k=5, noise=noise)  # warm-up (kernels, allocator)
            _sync(device)
            t = time.perf_counter()
            for _ in range(repeat):
                G.synthesize(w, feature=feat, k=5, noise=noise)
            _sync(device)
            times[mode] = (time.perf_counter() - t) / repeat
    return times


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def choose_conv_mode(G, batch: int, device: torch.device, dtype: torch.dtype | None = None) -> str:
    """The faster form for this generator, batch size and device.

    On CUDA both forms are timed once per (generator, batch, dtype) in the process. On the CPU
    the rule is fixed, so a run's output does not depend on a timing (the two forms differ by
    float rounding): the grouped conv, within a few percent of the shared one at batch 1 (the
    CPU default) and faster at batch 8 in ``benchmarks/throughput.py``'s measurements."""
    if device.type != "cuda":
        return "grouped"
    key = (id(G), batch, str(device), dtype)
    if key not in _CHOSEN:
        times = time_conv_modes(G, batch, device, dtype)
        _CHOSEN[key] = min(times, key=times.get)
        log.info("modulated conv at batch %d: %s (grouped %.1f ms, shared %.1f ms)", batch, _CHOSEN[key],
                 times["grouped"] * 1e3, times["shared"] * 1e3)
    return _CHOSEN[key]


def default_torch_threads(threaded: bool) -> int:
    """Intra-op threads for torch on the CPU: all cores for a sequential run; in a threaded run
    the decoder, detector, blender and encoder need cores too, so half of them (at least 1)."""
    n = cpu_count()
    return max(1, n // 2) if threaded else n
