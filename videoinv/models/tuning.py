"""Choices that depend on the machine: the form of the modulated convolution for a batch size,
and the number of torch threads."""

from __future__ import annotations

import logging
import os
import time

import torch

from .ops import active_conv_mode, conv_mode
from .stylegan2 import LayersRunner

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
    """The faster form for this generator, batch size (rows through the convs) and device.

    On CUDA both forms are timed once per (generator, batch, dtype) in the process. On the CPU
    the rule is fixed, so a run's output does not depend on a timing (the two forms differ by
    float rounding; the golden checks pass in both): the grouped conv for one row, the shared
    form for more. A row of one in channels-last measured 10% faster grouped on one torch
    thread (a light model's blocks, one per core) and 8% slower on two (random:256:32); from two
    rows on the shared form is faster everywhere measured, and much faster where the weights
    are large: the layers before k of random:256 for 8 frames ([w; w~], 16 rows) 26 against 69
    ms per frame on two threads, and without the per-row weights (151 MB per conv at 16 rows)
    the first, traced call held 1.1 GB instead of 4.9 GB."""
    if device.type != "cuda":
        return "grouped" if batch == 1 else "shared"
    key = (id(G), batch, str(device), dtype)
    if key not in _CHOSEN:
        times = time_conv_modes(G, batch, device, dtype)
        _CHOSEN[key] = min(times, key=times.get)
        log.info("modulated conv at batch %d: %s (grouped %.1f ms, shared %.1f ms)", batch, _CHOSEN[key],
                 times["grouped"] * 1e3, times["shared"] * 1e3)
    return _CHOSEN[key]


LIGHT_GFLOP = 20.0  # below this per face, a CPU runs model blocks side by side (see cpu_plan)


def synthesis_gflop(G) -> float:
    """Approximate GFLOP of one synthesis (the 3x3 styled convs, which dominate)."""
    total, c = 0.0, G.channels
    for i in range(3, G.log_size + 1):
        res = 2 ** i
        total += 2 * 9 * res * res * (c[res // 2] * c[res] + c[res] * c[res])
    return total / 1e9


def cpu_plan(G, threaded: bool) -> tuple[int, int]:
    """(model blocks at once, torch threads) for a run on the CPU.

    A light model (under LIGHT_GFLOP per face, e.g. random:256:32) spends its time in small,
    memory-bound ops that two intra-op threads barely speed up: a threaded run then renders one
    block per core, each on one torch thread. A heavy one (every real model) scales across
    intra-op threads and two blocks at once would only fight over memory bandwidth: one block,
    every core (benchmarks/throughput.py measured both). A sequential run: one block, every core."""
    cores = cpu_count()
    if threaded and cores > 1 and is_light(G):
        return cores, 1
    return 1, cores


def is_light(G) -> bool:
    """Under LIGHT_GFLOP per synthesis (random test models; every real model is heavy)."""
    return synthesis_gflop(G) < LIGHT_GFLOP


COMPILE_MODES = {"off": None, "on": "default", "graphs": "reduce-overhead"}


class CompiledGenerator(LayersRunner):
    """A generator whose synthesis runs through ``torch.compile`` (``graphs``: with CUDA graphs,
    torch's "reduce-overhead" mode); every other attribute is the generator's own. Compiled code
    is specialised to the batch size: callers keep batches at a fixed size (see pad_batch).

    The modulated convs' form (this thread's ``conv_mode``) is read here and passed in, so the
    layers compile as one graph per (batch shape, form): read inside, where torch.compile cannot
    follow a ContextVar, it cut the graph at every conv, and the pieces, recompiled for every
    layer's shapes, ran into torch's recompile limit and ran eagerly from then on."""

    def __init__(self, G, mode: str):
        super().__init__(G)
        self._compiled = torch.compile(G._layers, mode=COMPILE_MODES[mode], dynamic=False)

    def _layers(self, w, noise, start, stop, out=None, skip=None, rgb=True):
        return self._compiled(w, noise, start, stop, out, skip, rgb, active_conv_mode())


def compiled_encoder(E, mode: str):
    """``E`` through ``torch.compile`` (same call, same outputs up to float rounding)."""
    return torch.compile(E, mode=COMPILE_MODES[mode], dynamic=False)


def pad_batch(x: torch.Tensor, size: int) -> torch.Tensor:
    """``x`` [n,...] repeated at its last row up to [size,...] (n <= size): a fixed batch shape
    for compiled code and CUDA graphs; the extra rows' results are dropped."""
    n = x.shape[0]
    if n >= size:
        return x
    return torch.cat([x, x[-1:].expand(size - n, *x.shape[1:])])
