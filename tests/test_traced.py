"""Model calls replayed as TorchScript traces: the eager results to the bit, traces kept with the
model across runs, their operators run without Python, and eager calls where tracing fails."""

from __future__ import annotations

import gc
import logging
import weakref

import pytest
import torch
from torch.overrides import TorchFunctionMode

from videoinv.models import traced
from videoinv.models.ops import conv_mode
from videoinv.models.specs import load_encoder, load_generator
from videoinv.models.traced import TracedEncoder, TracedGenerator
from videoinv.pipeline.batching import AdaptiveBatch, is_out_of_memory

SPEC = "random:64:16"


@pytest.fixture
def models():
    """A generator and an encoder of their own (traces are kept per model object)."""
    G, _ = load_generator(SPEC)
    return G, load_encoder(SPEC)


def _inputs(G, batch: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(batch, G.n_latent, G.style_dim, generator=g)
    feat = torch.randn(batch, G.channels[16], 16, 16, generator=g)
    return w, feat, [torch.randn(n.shape, generator=g) for n in G.make_noise(seed, torch.device("cpu"))]


@pytest.mark.parametrize("mode", ["grouped", "shared"])
@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_traced_calls_give_the_eager_results_to_the_bit(models, mode, dtype):
    G, E = models
    TG, TE = TracedGenerator(G), TracedEncoder(E)
    with torch.no_grad(), conv_mode(mode), torch.autocast("cpu", dtype=dtype or torch.bfloat16,
                                                          enabled=dtype is not None):
        for batch in (1, 3):
            w, feat, noise = _inputs(G, batch, seed=batch)
            edited = w.clone()
            edited[0] += 0.5  # the first face moved, the others not (Eq. 1 keeps their F)
            x = torch.rand(batch, 3, 256, 256, generator=torch.Generator().manual_seed(batch)) * 2 - 1
            for _ in range(3):  # a signature's first call runs eagerly, the second records it
                eager_head = G.edit_head(w, edited, feat, k=5, noise=noise)
                head = TG.edit_head(w, edited, feat, k=5, noise=noise)
                assert all(torch.equal(a, b) for a, b in zip(head, eager_head))
                eager_image = G.synthesize_from(edited, *eager_head, k=5, noise=noise)
                image = TG.synthesize_from(edited, *head, k=5, noise=noise)
                assert image.dtype == eager_image.dtype and torch.equal(image, eager_image)
                assert all(torch.equal(a, b) for a, b in zip(TE(x), E(x)))
    # in float32 each call was recorded for its own signatures, not answered eagerly; under
    # autocast every call runs eagerly
    recorded = 0 if dtype else 2
    assert len(TG.replays.traces) == 2 * recorded and len(TE.replays.traces) == recorded
    assert not TG.replays.broken and not TE.replays.broken


def test_a_new_run_reuses_the_traces_of_its_models(models, monkeypatch):
    G, _ = models
    made = []
    trace = torch.jit.trace
    monkeypatch.setattr(torch.jit, "trace", lambda *a, **k: made.append(1) or trace(*a, **k))
    w, feat, noise = _inputs(G, 1)
    skip = torch.zeros(1, 3, 16, 16)
    with torch.no_grad():
        first = TracedGenerator(G).synthesize_from(w, feat, skip, k=5, noise=noise)
        assert len(made) == 0  # a signature met once runs eagerly: recording it costs more
        TracedGenerator(G).synthesize_from(w, feat, skip, k=5, noise=noise)
        assert len(made) == 1
        # a later run builds its stages (and their traced models) afresh: same model, same trace
        again = TracedGenerator(G).synthesize_from(w, feat, skip, k=5, noise=noise)
        assert len(made) == 1 and torch.equal(first, again)
        pair = (w.repeat(2, 1, 1), feat.repeat(2, 1, 1, 1), skip.repeat(2, 1, 1, 1))
        TracedGenerator(G).synthesize_from(*pair, k=5, noise=noise)
        assert len(made) == 1  # a new batch size is a new signature, recorded when it comes again
        TracedGenerator(G).synthesize_from(*pair, k=5, noise=noise)
        assert len(made) == 2
        # with gradients (training, direction fitting) the call runs eagerly, untraced
        with torch.enable_grad():
            for _ in range(2):
                TracedGenerator(G).synthesize_from(w.requires_grad_(), feat, skip, k=5, noise=noise).sum().backward()
        assert len(made) == 2 and w.grad is not None


def test_a_last_batch_of_a_size_met_once_is_not_recorded(models, monkeypatch):
    """A run's batches are all of one size but its last; recording that one would cost more
    than the eager call it replaces. Its results are the same either way."""
    _, E = models
    made = []
    trace = torch.jit.trace
    monkeypatch.setattr(torch.jit, "trace", lambda *a, **k: made.append(a[1][0].shape[0]) or trace(*a, **k))
    TE = TracedEncoder(E)
    frames = torch.rand(11, 3, 256, 256, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        outputs = [TE(frames[i:i + 4]) for i in range(0, 11, 4)]  # batches of 4, 4 and 3
        assert made == [4]
        for got, i in zip(outputs, range(0, 11, 4)):
            assert all(torch.equal(a, b) for a, b in zip(got, E(frames[i:i + 4])))


class _OperatorCalls(TorchFunctionMode):
    """Counts the torch operators called from Python, each of which gives Python's lock up and
    takes it back (reading a tensor's shape or strides does not)."""

    READS = {"__get__", "size", "stride", "dim", "numel", "is_contiguous", "data_ptr", "element_size"}

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.count += getattr(func, "__name__", "") not in self.READS
        return func(*args, **(kwargs or {}))


def test_a_traced_call_runs_its_operators_without_python():
    """Eagerly, each operator is called from Python: it gives Python's lock up and waits to get
    it back, up to the 5 ms switch interval while another thread runs Python. A replayed trace
    runs them all within one call, putting its inputs in the generator's layout too (with those
    two copies left to Python, a replay beside a busy thread took 62-66 ms instead of 29-30 ms).
    The timings: benchmarks/traced_calls.py (1.6 s eagerly against 29 ms traced, this model)."""
    G, _ = load_generator("random:256:32")  # hundreds of operators per face, as real models have
    TG = TracedGenerator(G)
    w, feat, noise = _inputs(G, 1)
    skip = torch.zeros(1, 3, 16, 16)

    def operators(generator) -> int:
        with _OperatorCalls() as calls:
            generator.synthesize_from(w, feat, skip, k=5, noise=noise)
        return calls.count

    with torch.no_grad():
        for _ in range(2):  # seen, then recorded
            TG.synthesize_from(w, feat, skip, k=5, noise=noise)
        eager, replayed = operators(G), operators(TG)
    assert eager >= 200 and replayed == 0, (eager, replayed)  # inputs NCHW: the layout copies too


def test_a_call_that_cannot_be_traced_runs_eagerly(models, monkeypatch, caplog):
    G, E = models

    def fail(*args, **kwargs):
        raise RuntimeError("no tracing here")

    monkeypatch.setattr(torch.jit, "trace", fail)
    TG, TE = TracedGenerator(G), TracedEncoder(E)
    w, feat, noise = _inputs(G, 2)
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    with torch.no_grad(), caplog.at_level(logging.WARNING, logger=traced.__name__):
        for _ in range(2):
            assert all(torch.equal(a, b) for a, b in zip(TG.edit_head(w, w + 0.1, feat, k=5, noise=noise),
                                                         G.edit_head(w, w + 0.1, feat, k=5, noise=noise)))
            assert all(torch.equal(a, b) for a, b in zip(TE(x), E(x)))
    # one warning per model, naming what failed; no second attempt
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("no tracing here" in m and "eagerly" in m for m in warnings)
    assert TG.replays.broken and TE.replays.broken and not TG.replays.traces


class _Greedy(torch.nn.Module):
    """Needs more memory than any machine has for batches above 2."""

    def forward(self, x):
        if x.shape[0] > 2:
            return x.new_zeros(x.shape[0], 1 << 40).sum(1)
        return x.sum(1)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.trace, called here directly
def test_memory_running_out_in_a_trace_halves_the_batch():
    """A batch too large to trace, or to replay, is out of memory (not an untraceable call): the
    batch is halved and the smaller one traced, with every item answered."""
    replays = traced.Replays("greedy", lambda key: _Greedy())
    items = [torch.full((5,), float(i)) for i in range(8)]

    def run(chunk):
        x = torch.stack(chunk)
        return list(replays((traced._signature([x]),), [x], lambda: _Greedy()(x)))

    batches = AdaptiveBatch("greedy", size=8)
    assert torch.equal(torch.stack(batches.map(run, items)), torch.arange(8.0) * 5)
    assert batches.size == 2 and not replays.broken and len(replays.traces) == 1
    # a trace replayed at a size it cannot hold fails the same recognisable way
    trace = torch.jit.trace(lambda x: (x.view(-1, 1) @ x.view(1, -1)).sum(), (torch.ones(2),))
    with pytest.raises(RuntimeError) as failed:
        trace(torch.ones(1 << 21))  # a 2M x 2M result: 16 TB
    assert is_out_of_memory(failed.value)


_RUNS: list[int] = []


@torch.library.custom_op("videoinv_test::counted_double", mutates_args=())
def _counted_double(x: torch.Tensor) -> torch.Tensor:
    _RUNS.append(x.shape[0])
    return x * 2


class _Counted(torch.nn.Module):
    """A model whose every run, eager, recorded or replayed, its operator counts."""

    def forward(self, x):
        return _counted_double(x) + 1


def test_the_call_that_records_a_trace_runs_the_model_once():
    """Recording runs the model for real; the call answers with that run's results instead of
    replaying the fresh trace (a second run: 3 s more for a full-size encoder's block of 8)."""
    _RUNS.clear()
    replays = traced.Replays("counted", lambda key: _Counted())
    x = torch.arange(6.0).view(2, 3)
    for calls in (1, 2, 3):  # eager, recorded, replayed
        out = replays((traced._signature([x]),), [x], lambda: _Counted()(x))
        assert torch.equal(out, x * 2 + 1)
        assert len(_RUNS) == calls
    assert len(replays.traces) == 1 and not replays.broken


def test_a_traced_generator_runs_the_generators_code_and_is_freed_without_the_cycle_collector(models):
    """Its synthesis methods are the generator's own, bound to it; kept as bound methods on the
    instance they made a cycle, and each run's wrapper waited for Python's cycle collector."""
    G, _ = models
    w, feat, noise = _inputs(G, 2)
    gc.collect()
    gc.disable()
    try:
        TG = TracedGenerator(G)
        with torch.no_grad():
            for _ in range(3):  # eagerly, then recorded, then replayed
                assert torch.equal(TG.synthesize(w, feat, k=5, noise=noise), G.synthesize(w, feat, k=5, noise=noise))
        assert TG.replays.traces
        gone = weakref.ref(TG)
        del TG
        assert gone() is None
    finally:
        gc.enable()
