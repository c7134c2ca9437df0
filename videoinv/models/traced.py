"""Model calls recorded once with ``torch.jit.trace`` and replayed by TorchScript's interpreter.

The point is Python's GIL. An eager model call takes and releases the GIL around each of its
hundreds of operators, and a thread that wants it back waits until the thread holding it lets
go, up to the 5 ms switch interval. In a pipelined run other stages hold it often (dlib fits
landmarks with it held, blending and colour conversion run Python between their array
calls), so the models stall: one thread of random:256:32 synthesis took 23 ms per face alone and
1.6 s beside a busy Python thread; random:256 0.47 s and 2.1 s. A replayed trace runs the whole
call in C++ with the GIL released, the generator's input layout included: 27 ms and 0.47 s
beside the same thread (benchmarks/traced_calls.py; 62 ms for the light model while the two
layout copies were still called from Python).

A trace holds one path through the code: it is made per input signature (shapes, strides,
dtypes, the modulated conv's form) and only where that path is fixed by the signature
(inference, no gradients). The replay runs the same ATen operators, so its results are the
eager call's to the bit (tests/test_traced.py); TorchScript fuses nothing on the CPU. Under
autocast (``--dtype bfloat16``) calls run eagerly: a trace recorded there replayed a shared-form
modulated conv with other roundings. It is used on the CPU only: on CUDA the interpreter's
fusers would change the arithmetic, and the operators there are asynchronous anyway (CUDA
graphs, ``--compile graphs``, remove the launch overhead instead). ``torch.jit.trace`` is
deprecated in favour of ``torch.compile``; where it fails or is gone, the call runs eagerly
(logged once).
"""

from __future__ import annotations

import logging
import threading
import warnings
import weakref
from collections import OrderedDict
from typing import Callable, Sequence

import torch
from torch import nn

from .ops import active_conv_mode
from .stylegan2 import LayersRunner

log = logging.getLogger(__name__)

SIGNATURES = 32  # traces kept per call (the least recently used go first)

# Tracing our models warns about the Python decisions it records (shapes read as constants):
# that is the point of a trace per signature. ``catch_warnings`` in ``_trace`` is not enough on
# its own: it swaps the process-wide filters, and two threads tracing at once restore each
# other's, so the warnings of our own modules are ignored for good.
warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"videoinv\.")


def _signature(tensors: Sequence[torch.Tensor]) -> tuple:
    return tuple((tuple(t.shape), t.stride(), t.dtype, t.device) for t in tensors)


def _state() -> tuple:
    """What else fixes the path a call takes: the modulated conv's form."""
    return (active_conv_mode(),)


def _remember(kept: OrderedDict, key: tuple, value, limit: int) -> None:
    """``kept[key] = value``, dropping the least recently used beyond ``limit``."""
    kept[key] = value
    while len(kept) > limit:
        kept.popitem(last=False)


class Replays:
    """Traces of one model call, one per signature, made on its second use (under a lock, so
    two threads asking for the same signature trace it once); a signature's first call runs
    eagerly. ``module_for(key)`` gives the module whose forward takes the call's tensors.

    The recording call answers with the results of the run that recorded it. Recording costs the
    tracer's bookkeeping per operator on top of that run: about one eager call for a full-size
    model (random:256's encoder at batch 8, two threads: 3.4 s against 2.9-3.5 s), 4-5 for a
    light one, whose operators are small (random:256:32's encoder at batch 8, one thread: 0.39-0.47 s
    against 0.09 s). Why not the first use: a run's last batch is often of a size it meets
    once (its trace cost 0.9 s in a cold 90-frame edit, for two faces).
    Replays run without TorchScript's graph optimisation (``torch.jit.optimized_execution``
    off): on the CPU it fuses nothing, and its profiling and optimising passes made a trace's
    first replays 2-3x slower than the later ones on their own, 9x in a cold pipelined edit;
    the same operators run either way, and later replays are as fast."""

    def __init__(self, name: str, module_for: Callable[[tuple], nn.Module], limit: int = SIGNATURES):
        self.name, self.module_for, self.limit = name, module_for, limit
        self.traces: OrderedDict[tuple, object] = OrderedDict()
        self.seen: OrderedDict[tuple, None] = OrderedDict()  # signatures called once, untraced
        self.lock = threading.Lock()
        self.broken = False  # tracing failed once: every call runs eagerly

    def __call__(self, key: tuple, tensors: Sequence[torch.Tensor], eager: Callable[[], object]):
        if self.broken:
            return eager()
        with self.lock:
            trace = self.traces.get(key)
            if trace is not None:
                self.traces.move_to_end(key)
            elif key not in self.seen:  # the first call: remembered, run eagerly below
                _remember(self.seen, key, None, self.limit)
            else:
                recorded = self._trace(key, tensors)
                if recorded is not None:  # this call was the recording: its own results
                    del self.seen[key]
                    trace, outputs = recorded
                    _remember(self.traces, key, trace, self.limit)
                    return outputs
        if trace is None:
            return eager()
        with torch.jit.optimized_execution(False):
            return trace(*tensors)

    def _trace(self, key: tuple, tensors: Sequence[torch.Tensor]) -> tuple | None:
        """``(trace, results)``: a trace for ``key`` recorded from this call, and the call's
        results (recording runs the model for real; replaying the trace straight after took a
        second run of the call, 3 s for a full-size encoder's block of 8). None: untraceable."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the deprecation notice, and tracing's own advice
                trace = torch.jit.trace(_Keeping(self.module_for(key)), tuple(tensors), check_trace=False)
            return trace, _KEPT.__dict__.pop("outputs")
        except Exception as err:  # noqa: BLE001 - any failure but memory: run eagerly, as before
            from ..pipeline.batching import is_out_of_memory

            if is_out_of_memory(err):  # the batch is too large, not the call untraceable: the
                raise  # caller halves it (pipeline.batching) and a smaller one is traced
            self.broken = True
            log.warning("%s: cannot record the model call with torch.jit.trace (%s); running it eagerly",
                         self.name, err)
            return None
        finally:
            _KEPT.__dict__.pop("outputs", None)


_KEPT = threading.local()  # the results of the recording run on this thread


class _Keeping(nn.Module):
    """``module`` whose forward also keeps what it returns (on the calling thread): what a
    recording run computed, which the trace itself does not give back."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *tensors):
        _KEPT.outputs = outputs = self.module(*tensors)
        return outputs


_REPLAYS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_REPLAYS_LOCK = threading.Lock()


def replays_of(model: nn.Module, name: str, module_for: Callable[[tuple], nn.Module]) -> Replays:
    """The traces of ``model``'s call, kept with the model (a run builds new stages; the models
    and their traces stay loaded for the next)."""
    with _REPLAYS_LOCK:
        if model not in _REPLAYS:
            _REPLAYS[model] = Replays(name, module_for)
        return _REPLAYS[model]


def _usable(tensors: Sequence[torch.Tensor]) -> bool:
    """Inference on the CPU in float32: a call whose path its signature fixes."""
    return (not torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu")
            and all(t.device.type == "cpu" for t in tensors))


class _Layers(nn.Module):
    """``G._layers(w, noise, start, stop, out, skip)`` with its tensors as positional inputs."""

    def __init__(self, G, start: int, stop: int, carried: bool):
        super().__init__()
        self.G, self.start, self.stop, self.carried = G, start, stop, carried

    def forward(self, w, *rest):
        out, skip, noise = (rest[0], rest[1], rest[2:]) if self.carried else (None, None, rest)
        return self.G._layers(w, [None] * self.start + list(noise), self.start, self.stop, out, skip)


class TracedGenerator(LayersRunner):
    """A generator whose layers run as replayed traces on the CPU (see the module docstring);
    every other attribute is the generator's own, and calls a trace cannot take (gradients,
    autocast, no ToRGBs, CUDA tensors) run eagerly."""

    def __init__(self, G):
        super().__init__(G)
        self.replays = replays_of(G, "synthesize", lambda key: _Layers(G, key[0], key[1], key[2]))

    def _layers(self, w: torch.Tensor, noise: Sequence[torch.Tensor], start: int, stop: int,
                out: torch.Tensor | None = None, skip: torch.Tensor | None = None, rgb: bool = True):
        carried = out is not None and skip is not None
        if carried != (start > 0) or not rgb:
            return self.G._layers(w, noise, start, stop, out, skip, rgb)
        tensors = [w] + ([out, skip] if carried else []) + list(noise[start:stop])
        if not _usable(tensors):
            return self.G._layers(w, noise, start, stop, out, skip, rgb)
        key = (start, stop, carried, _state(), _signature(tensors))
        return self.replays(key, tensors, lambda: self.G._layers(w, noise, start, stop, out, skip, rgb))


class TracedEncoder:
    """``E(x)`` as a replayed trace on the CPU (eagerly where a trace cannot take the call)."""

    def __init__(self, E):
        self.E = E
        self.replays = replays_of(E, "invert", lambda key: E)

    def __call__(self, x: torch.Tensor):
        if not _usable([x]):
            return self.E(x)
        return self.replays((_state(), _signature([x])), [x], lambda: self.E(x))
