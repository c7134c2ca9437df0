"""Choices that depend on the machine: the form of the modulated convolution for a batch size,
and the number of torch threads."""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import contextmanager

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

    On CUDA both forms are timed once per (generator, batch, dtype, TF32 or not) in the process. On the CPU
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
    key = (id(G), batch, str(device), dtype, torch.backends.cudnn.conv.fp32_precision
           if hasattr(torch.backends.cudnn, "conv") else torch.backends.cudnn.allow_tf32)  # TF32 or not
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
        self._compiled = CompiledCall(G._layers, mode)

    def _layers(self, w, noise, start, stop, out=None, skip=None, rgb=True):
        return self._compiled(w, noise, start, stop, out, skip, rgb, active_conv_mode())


def compiled_encoder(E, mode: str):
    """``E`` through ``torch.compile`` (same call, same outputs up to float rounding)."""
    return CompiledCall(E, mode)


class _CompileGate:
    """A call that may compile runs alone; calls of code already compiled run side by side.

    torch compiles one call at a time by itself, but in torch 2.11 a compiled function called on
    one thread while another thread compiled raised "Detected that you are using FX to
    symbolically trace a dynamo-optimized function" (tracing is flagged process-wide), which
    stopped a pipelined ``--compile`` run in its first blocks. A waiting compile goes before new
    calls. A thread already inside the gate (a compiled call made from within another) passes."""

    def __init__(self):
        self._cond = threading.Condition()
        self._running = 0  # calls of compiled code in flight
        self._compiling = False
        self._waiting = 0  # compiles waiting for the running calls to end
        self._inside = threading.local()

    @contextmanager
    def enter(self, may_compile: bool):
        if getattr(self._inside, "depth", 0):
            yield
            return
        with self._cond:
            if may_compile:
                self._waiting += 1
                while self._compiling or self._running:
                    self._cond.wait()
                self._waiting -= 1
                self._compiling = True
            else:
                while self._compiling or self._waiting:
                    self._cond.wait()
                self._running += 1
        self._inside.depth = 1
        try:
            yield
        finally:
            self._inside.depth = 0
            with self._cond:
                if may_compile:
                    self._compiling = False
                else:
                    self._running -= 1
                self._cond.notify_all()


_GATE = _CompileGate()
GRAPH_SETUP_CALLS = 3  # compile and warm-up, capture, and one to spare


class CompiledCall:
    """``fn`` through ``torch.compile`` (``dynamic=False``), for calls from a pipelined run's
    stage threads.

    A call whose signature this callable has not run yet (tensor shapes, strides, dtypes and
    devices, the other arguments, grad mode and autocast: what a guard of ``dynamic=False`` code
    looks at) may compile, so it goes through the process's gate alone (_CompileGate); a call
    with a signature it has run goes through side by side with others. With CUDA graphs a
    signature's first GRAPH_SETUP_CALLS calls go alone: after the compile, torch warms the code
    up and then captures the graph on the next calls.

    With CUDA graphs (``graphs``) a call's results live in memory that the graph's next replay
    overwrites, and a pipelined run still holds them then (a block's latents wait in the next
    stage's queue while the encoder replays for the following block): CUDA tensors among the
    results are copied out, a device copy small beside the call.

    Made on the main thread, it first settles the CUDA device guard that compiling needs: on a
    CUDA build of torch that sees no GPU, torch's compiler installs a stand-in guard owned by the
    compiling thread; once that thread ended (a stage thread, after its run), the next compile
    on another thread used the freed guard and the process died of a segmentation fault (torch
    2.11, every time). Installed from the main thread, the stand-in lasts as long as the
    process and later compiles keep it."""

    def __init__(self, fn, mode: str):
        ensure_guard = getattr(torch._C, "_ensureCUDADeviceGuardSet", None)
        if ensure_guard is not None and threading.current_thread() is threading.main_thread():
            ensure_guard()  # a no-op on CPU builds and where a GPU is visible
        self._compiled = torch.compile(fn, mode=COMPILE_MODES[mode], dynamic=False)
        self._copy_out = mode == "graphs"
        self._alone = GRAPH_SETUP_CALLS if mode == "graphs" else 1  # first calls of a signature that go alone
        self._calls: dict[tuple, int] = {}

    def __call__(self, *args):
        key = (_signature(args), _grad_and_autocast())
        calls = self._calls.get(key, 0)
        with _GATE.enter(may_compile=calls < self._alone):
            out = self._compiled(*args)
        if calls < self._alone:
            self._calls[key] = calls + 1
        return _owned(out) if self._copy_out else out


def _signature(value):
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), value.stride(), value.dtype, str(value.device), value.requires_grad)
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, *(_signature(v) for v in value))
    if value is None or isinstance(value, (bool, int, float, str, torch.dtype, torch.device)):
        return value
    return ("object", type(value).__name__)


def _grad_and_autocast() -> tuple:
    return (torch.is_grad_enabled(),
            *((torch.is_autocast_enabled(d), torch.get_autocast_dtype(d)) for d in ("cpu", "cuda")))


def _owned(value):
    """``value`` with its CUDA tensors copied (nested tuples and lists followed)."""
    if isinstance(value, torch.Tensor):
        return value.clone() if value.is_cuda else value
    if isinstance(value, (list, tuple)):
        return type(value)(_owned(v) for v in value)
    return value


def pad_batch(x: torch.Tensor, size: int) -> torch.Tensor:
    """``x`` [n,...] repeated at its last row up to [size,...] (n <= size): a fixed batch shape
    for compiled code and CUDA graphs; the extra rows' results are dropped."""
    n = x.shape[0]
    if n >= size:
        return x
    return torch.cat([x, x[-1:].expand(size - n, *x.shape[1:])])


def _tf32_flags():
    """How float32 convolutions and matrix products on CUDA are set to run now, in a form
    :func:`_set_tf32_flags` restores."""
    b = torch.backends
    try:
        return ("allow", b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32)
    except RuntimeError:  # set through torch's per-operator precision API, which the old flags cannot show
        return ("precision", b.cudnn.conv.fp32_precision, b.cudnn.rnn.fp32_precision, b.cuda.matmul.fp32_precision)


def _set_tf32_flags(flags) -> None:
    b = torch.backends
    if flags[0] == "allow":
        b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32 = flags[1], flags[2]
    else:
        b.cudnn.conv.fp32_precision, b.cudnn.rnn.fp32_precision, b.cuda.matmul.fp32_precision = flags[1:]


@contextmanager
def float32_math(tf32: bool | None):
    """float32 convolutions and matrix products on CUDA in TensorFloat-32 (``tf32=True``: inputs
    rounded to a 10-bit mantissa, on the tensor cores of Ampere and later GPUs) or in full float32
    (``False``) inside the block, then as before; None leaves torch's settings alone. The setting
    is the process's, so a run sets it once for all its stages. Torch's own default runs cuDNN's
    convolutions in TF32: a pixel that rounds differently anywhere then moves whole 10-bit steps
    later on, so two batchings of the same frames differed by 2 levels where float32 kept them
    within 1 (TF32's rounding simulated on the CPU, ``random:64:16``)."""
    if tf32 is None:
        yield
        return
    before = _tf32_flags()
    _set_tf32_flags(("allow", bool(tf32), bool(tf32)))
    try:
        yield
    finally:
        _set_tf32_flags(before)
