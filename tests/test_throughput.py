"""The pipelined run: same output as the naive loop, detection ahead in worker processes, model
batches that shrink on out-of-memory, device-side crops and paste-back, transfers, and the
``bench speed`` report."""

from __future__ import annotations

import json
import threading
import time
import warnings

import cv2
import numpy as np
import pytest
import torch

from videoinv import samples
from videoinv.cli import main
from videoinv.edit.recipe import EditOptions
from videoinv.errors import VideoinvError
from videoinv.faces.detect import HogDetector
from videoinv.faces.paste import paste
from videoinv.faces.pool import DetectionAhead
from videoinv.faces.quad import Quad, crop
from videoinv.faces.warp import crop_tensor, paste_tensor
from videoinv.models import FeatureStyleEncoder, StyleGAN2Generator, ops, traced
from videoinv.models.specs import load_models
from videoinv.pipeline import speed
from videoinv.pipeline.batching import AdaptiveBatch
from videoinv.pipeline.jobs import edit_video
from videoinv.pipeline.runner import Pipeline
from videoinv.pipeline.stage import Stage
from videoinv.pipeline.transfer import GpuClock, Transfer
from videoinv.video import helpers
from videoinv.video.frame import FrameRecord
from videoinv.video.reader import Reader
from videoinv.video.writer import Writer

MODEL = "random:64:16"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("throughput") / "moving.mp4"
    samples.write_clip(path, samples.moving_face(640, 360), 24, audio=True)
    return path


def edited_frames(clip, out, threaded: bool, **options) -> tuple[np.ndarray, dict]:
    frames = []
    kwargs = {"edits": ["sefa0=3"], "model": MODEL, "device": "cpu", **options}
    summary = edit_video(clip, out, options=EditOptions(**kwargs), overwrite=True, threaded=threaded,
                         batch_size=8 if threaded else 1, threads=1,
                         on_frame=lambda r: frames.append(np.array(r.image)))
    return np.stack(frames), summary


def test_pipelined_output_is_identical_to_the_naive_loop(clip, tmp_path):
    naive, summary = edited_frames(clip, tmp_path / "a.mp4", threaded=False, batch=1, workers=0, parallel=1)
    piped, piped_summary = edited_frames(clip, tmp_path / "b.mp4", threaded=True, batch=1, workers=1, parallel=2)
    assert len(naive) == len(piped) == 24 == piped_summary["frames"]
    assert np.array_equal(naive, piped)
    source = np.stack([r.image for r in _decoded(clip)])
    assert (np.abs(naive.astype(int) - source).max(axis=(1, 2, 3)) > 20).all()  # every frame was edited
    for key in ("decode", "encode"):  # the busy time of every part is reported
        assert piped_summary["busy_seconds"][key] > 0
    assert any(k.startswith("synthesize") for k in piped_summary["busy_seconds"])


def test_a_pipelined_cpu_run_decodes_and_converts_without_ffmpeg_helper_threads(clip, tmp_path, monkeypatch):
    """Every core runs a stage of a pipelined run on the CPU: FFmpeg's decoding threads and
    swscale's slices would only wait for each other there (video.helpers). A sequential run
    leaves them to FFmpeg."""
    seen = []

    def watch(method):
        def watched(self, *args, **kwargs):
            seen.append((type(self).__name__, helpers.on(), helpers.swscale_threads()))
            return method(self, *args, **kwargs)
        return watched

    monkeypatch.setattr(Reader, "__init__", watch(Reader.__init__))
    monkeypatch.setattr(Reader, "to_rgb", watch(Reader.to_rgb))
    monkeypatch.setattr(Writer, "_from_rgb", watch(Writer._from_rgb))
    monkeypatch.setattr(Writer, "_patched", watch(Writer._patched))  # the faces' rectangles alone
    edited_frames(clip, tmp_path / "a.mp4", threaded=True)
    # the reader opened (its decoder's threads chosen then), 24 frames decoded and 24 encoded
    assert len(seen) == 49 and set(seen) == {("Reader", False, 1), ("Writer", False, 1)}
    seen.clear()
    edited_frames(clip, tmp_path / "b.mp4", threaded=False, batch=1, workers=0)
    assert len(seen) == 49 and {on for _, on, _ in seen} == {True} and {n for *_, n in seen} == {0}
    assert helpers.on()  # restored after the run


def test_runs_are_pipelined_by_default_wherever_there_is_more_than_one_core(monkeypatch):
    """Heavy models too: on 2 cores they measured x1.02-1.18 pipelined (benchmarks), and a real
    model is heavy. One core: sequential."""
    from videoinv.models import tuning

    for model in ("random:1024", MODEL):
        options = EditOptions(edits=["sefa0=3"], model=model, device="cpu")
        monkeypatch.setattr(tuning, "cpu_count", lambda: 2)
        assert options.prefers_threads()
        monkeypatch.setattr(tuning, "cpu_count", lambda: 1)
        assert not options.prefers_threads()


def test_on_the_cpu_one_row_convolves_grouped_and_more_rows_shared(clip, tmp_path, monkeypatch):
    """The layers before k take [w; w~] of a block of frames at once: the shared form there
    (no per-row weights); the layers after k one face at a time: grouped (ops.ModulatedConv2d)."""
    forms = []
    for form in ("grouped", "shared"):
        def counted(self, x, *args, form=form, method=getattr(ops.ModulatedConv2d, f"_{form}")):
            forms.append((form, x.shape[0]))
            return method(self, x, *args)
        monkeypatch.setattr(ops.ModulatedConv2d, f"_{form}", counted)
    monkeypatch.setattr(traced, "_usable", lambda tensors: False)  # eager, so every conv is seen
    edited_frames(clip, tmp_path / "a.mp4", threaded=True)  # default batches: 8 frames before k, 1 after
    assert forms and {(form, rows > 1) for form, rows in forms} == {("shared", True), ("grouped", False)}
    assert ("shared", 16) in forms  # a block of 8 faces and their edits


def test_default_batches_stay_within_a_level_of_the_naive_loop(clip, tmp_path):
    """By default the encoder and the generator's layers before k take 8 frames at once, the
    generator's later layers 1 on the CPU: batching changes float rounding only."""
    options = EditOptions(edits=["sefa0=3"], model=MODEL, device="cpu")
    assert (options.encoder_batch(), options.synthesis_group(), options.model_batch()) == (8, 8, 1)
    naive, _ = edited_frames(clip, tmp_path / "a.mp4", threaded=False, batch=1, workers=0, parallel=1)
    piped, _ = edited_frames(clip, tmp_path / "b.mp4", threaded=True, workers=0)
    assert len(piped) == 24 and np.abs(naive.astype(int) - piped).max() <= 1


def test_synthesis_group_must_hold_whole_batches():
    from videoinv.errors import ChainError

    with pytest.raises(ChainError, match="group=6 must be a multiple of batch=4"):
        Pipeline(f"synthesize=model='{MODEL}':batch=4:group=6")


def _decoded(path):
    with Reader(path) as reader:
        return [r.load() for r in reader.frames(rgb=True)]


def test_a_detection_worker_starts_without_torch():
    """A worker starts at every run: it must not import what it does not use (torch alone is
    seconds of CPU on the cores the run needs)."""
    import subprocess
    import sys

    code = ("import json, sys; from videoinv.faces import pool; "
            "pool._serve({'detector': 'hog', 'detect_size': 640, 'upsample': 0, 'threshold': 0.3}); "
            "print(json.dumps('torch' in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], input=b"", capture_output=True, timeout=60, check=True)
    assert json.loads(done.stdout.decode().strip().splitlines()[-1]) is False


def test_every_thread_shares_the_one_arena_that_keeps_freed_memory(tmp_path):
    """Threads allocating before the allocator is set get an arena of their own, which returns
    memory to the system and faults it in again (10-15% of a pipelined run's CPU time). Importing
    videoinv sets it, so x264's threads writing a clip and then a pipelined edit all share one;
    imported after a thread has allocated, it is too late (which the count must show)."""
    import subprocess
    import sys

    edit = (f"from videoinv import samples, edit_video, EditOptions; "
            f"samples.write_clip(r'{tmp_path / 'in.mp4'}', samples.moving_face(320, 240), 10, audio=False); "
            f"edit_video(r'{tmp_path / 'in.mp4'}', r'{tmp_path / 'out.mp4'}', options=EditOptions("
            f"edits=['sefa0=1'], model='{MODEL}', device='cpu'), threaded=True); ")
    count = "from videoinv.pipeline.allocator import arena_count; print(arena_count())"
    early = "import videoinv; " + edit + count
    late = ("import threading; t = threading.Thread(target=lambda: [bytearray(4096) for _ in range(64)]); "
            "t.start(); t.join(); " + count)

    def arenas(code):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        return int(done.stdout.decode().split()[-1])

    assert arenas(early) == 1
    assert arenas(late) == 2


def test_detection_ahead_gives_the_detectors_own_answers():
    image = samples.face_image()
    frame = cv2.copyMakeBorder(image, 100, 100, 300, 300, cv2.BORDER_REFLECT)
    detector = HogDetector(detect_size=640, threshold=0.3)
    expected = detector.detect(frame)
    assert expected, "the sample face must be found"
    ahead = DetectionAhead(detector, workers=1)
    try:
        ahead.schedule(5, frame)
        for worker in ahead.workers:  # wait until the worker has answered once
            deadline = threading.Event()
            while not worker.ready and not deadline.wait(0.05):
                pass
        ahead.at(5)
        got = ahead.detect(frame)
        assert ahead.hits == 1
        ahead.at(6)  # not sent ahead: detected in place, same answer
        assert len(ahead.detect(frame)) == len(expected) and ahead.misses == 1
    finally:
        ahead.close()
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert np.allclose(a.box, b.box) and a.score == pytest.approx(b.score)


class OutOfMemoryAbove:
    """Stands in for a device with a tiny memory budget: a batch above ``limit`` first asks the
    device's own allocator for more memory than any machine has (4 EiB), so the error that
    comes back is the real one (torch.OutOfMemoryError from CUDA's caching allocator, the CPU
    allocator's RuntimeError), raised where a model's own allocation would raise it."""

    def __init__(self, forward, limit: int):
        self.forward, self.limit, self.sizes = forward, limit, []

    def __call__(self, x, *args, **kwargs):
        self._allocate(x)
        return self.forward(x, *args, **kwargs)

    def method(self):
        """The stand-in as a method for a class (the batch comes after ``self``)."""
        def method(obj, x, *args, **kwargs):
            self._allocate(x)
            return self.forward(obj, x, *args, **kwargs)

        return method

    def _allocate(self, x) -> None:
        self.sizes.append(x.shape[0])
        if x.shape[0] > self.limit:
            torch.empty(1 << 62, dtype=torch.uint8, device=x.device)
            raise AssertionError(f"the {x.device} allocator gave 4 EiB")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[
    pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")])])
def test_out_of_memory_halves_the_batch_and_writes_every_frame(clip, tmp_path, monkeypatch, device):
    expected, _ = edited_frames(clip, tmp_path / "a.mp4", threaded=False, batch=2, workers=0, parallel=1,
                                device=device)
    # the models run eagerly, as on CUDA where memory does run out (on the CPU a stage replays
    # traces, which would answer the sizes already traced without calling these stand-ins;
    # tests/test_traced.py runs out of memory in a trace)
    monkeypatch.setattr(traced, "_usable", lambda tensors: False)
    encoder = OutOfMemoryAbove(FeatureStyleEncoder.forward, 2)
    head = OutOfMemoryAbove(StyleGAN2Generator.edit_head, 2)  # the layers before k, with the Eq. 1 correction
    generator = OutOfMemoryAbove(StyleGAN2Generator.synthesize_from, 2)  # the layers from k on
    # on the classes: a stage's encoder is a copy of models.E (BatchNorms folded) and its
    # generator (models.traced) takes these methods from the class
    monkeypatch.setattr(FeatureStyleEncoder, "forward", encoder.method())
    monkeypatch.setattr(StyleGAN2Generator, "edit_head", head.method())
    monkeypatch.setattr(StyleGAN2Generator, "synthesize_from", generator.method())
    got, summary = edited_frames(clip, tmp_path / "b.mp4", threaded=True, batch=8, workers=0, parallel=1,
                                 device=device)
    assert summary["frames"] == 24 and len(got) == 24
    assert 8 in encoder.sizes and 4 in encoder.sizes  # it did run out, twice
    assert 8 in head.sizes and 4 in head.sizes and 8 in generator.sizes and 4 in generator.sizes
    assert max(encoder.sizes[encoder.sizes.index(2):]) == 2  # and kept the size that fits
    if device == "cpu":
        assert np.array_equal(got, expected)  # batches of 2: the same as asking for 2
    else:  # cuDNN may pick other kernels for the other batchings
        assert np.abs(got.astype(int) - expected).max() <= 1


@pytest.mark.parametrize("model", ["encoder", "generator"])
def test_an_interrupted_run_stops_its_models_within_one_call(clip, tmp_path, monkeypatch, model):
    # after Ctrl-C each model stage finished its whole batch (8 faces: 5 s with a full-size
    # model on the CPU) before the command could stop; now it gives up after the call in flight
    stops: list[threading.Event] = []
    real_stop_when = Stage.stop_when
    monkeypatch.setattr(Stage, "stop_when", lambda self, event: (stops.append(event), real_stop_when(self, event)))
    monkeypatch.setattr(traced, "_usable", lambda tensors: False)  # eager calls, counted below
    cls, name = (FeatureStyleEncoder, "forward") if model == "encoder" else (StyleGAN2Generator, "synthesize_from")
    real, calls = getattr(cls, name), []

    def counted(self, *args, **kwargs):
        calls.append(threading.current_thread().name)
        if len(calls) == 2:  # Ctrl-C during the second call
            import _thread

            _thread.interrupt_main()
            assert stops[0].wait(30)  # the run is stopping before this call returns
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, counted)
    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):  # one face per call: 8 calls for a batch of 8 frames
        edited_frames(clip, out, threaded=True, batch=1, workers=0, parallel=1)
    assert len(calls) == 2, calls
    assert not out.exists() and not list(tmp_path.iterdir())
    assert not [t for t in threading.enumerate() if t.name.startswith("videoinv-") and t.name != "videoinv-prefetch"]
    assert stops[-1] is None  # and the stages no longer hold the finished run's signal


def test_adaptive_batch_keeps_order_and_reports_what_it_cannot_fit():
    calls = []

    def run(items):
        calls.append(len(items))
        if len(items) > 3:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 GB")
        return [i * 10 for i in items]

    batch = AdaptiveBatch("test")
    assert batch.map(run, list(range(10))) == [i * 10 for i in range(10)]
    assert calls[:3] == [10, 5, 2] and batch.size == 2
    with pytest.raises(ValueError):  # other errors are not retried
        AdaptiveBatch("test").map(lambda items: (_ for _ in ()).throw(ValueError("bad")), [1, 2])

    def never(items):
        raise torch.OutOfMemoryError("out of memory")

    with pytest.raises(VideoinvError, match="out of memory even for one face"):
        AdaptiveBatch("test").map(never, [1, 2, 3])


def _frame_and_quad():
    frame = cv2.resize(samples.face_image(), (1280, 720))
    return frame, Quad(np.array([640.3, 360.7]), np.array([150.2, 20.1]), np.array([-20.1, 150.2]))


@pytest.mark.parametrize("size", [64, 256, 1024])
def test_device_crop_matches_the_opencv_crop(size):
    frame, quad = _frame_and_quad()
    expected = crop(frame, quad, size)
    got = crop_tensor(torch.from_numpy(frame).permute(2, 0, 1), quad, size).round().byte().permute(1, 2, 0).numpy()
    diff = np.abs(expected.astype(int) - got)
    assert diff.max() <= 1 and diff.mean() < 0.3


def test_device_paste_matches_the_opencv_paste():
    frame, quad = _frame_and_quad()
    rng = np.random.default_rng(0)
    face = cv2.GaussianBlur(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8), (9, 9), 3)
    mask = np.zeros((256, 256), np.float32)
    cv2.circle(mask, (128, 128), 80, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 8)
    expected = paste(frame, face, mask, quad, strength=0.8)
    got = paste_tensor(torch.from_numpy(frame).permute(2, 0, 1), torch.from_numpy(face).permute(2, 0, 1).float(),
                       torch.from_numpy(mask), quad, 0.8).permute(1, 2, 0).numpy()
    changed = (expected != frame).any(-1)
    assert changed.sum() > 30_000  # the face did go in
    assert np.abs(expected.astype(int) - got).max() <= 1
    assert abs(int(changed.sum()) - int((got != frame).any(-1).sum())) < 20


def test_device_warps_in_the_pipeline_agree_with_opencv(clip, tmp_path):
    cv, _ = edited_frames(clip, tmp_path / "a.mp4", threaded=True, warp="cv2", workers=0)
    dev, _ = edited_frames(clip, tmp_path / "b.mp4", threaded=True, warp="torch", workers=0)
    diff = np.abs(cv.astype(int) - dev)
    assert diff.mean() < 0.05 and np.percentile(diff, 99.9) <= 3


def test_transfer_round_trip_and_no_gpu_clock_on_cpu():
    image = np.random.default_rng(1).integers(0, 256, (36, 64, 3), dtype=np.uint8)
    image.flags.writeable = False  # decoded frames are read-only
    transfer = Transfer(torch.device("cpu"))
    frame = transfer.upload(image)
    assert frame.shape == (3, 36, 64) and frame.dtype == torch.uint8
    assert np.array_equal(transfer.download(frame).result(), image)
    mask = np.random.default_rng(2).random((5, 7), np.float32)
    mask.flags.writeable = False
    sent = transfer.send(mask)  # any shape and dtype (masks, noise, directions)
    assert sent.dtype == torch.float32 and np.array_equal(sent.numpy(), mask)
    clock = GpuClock()
    with clock.span(torch.device("cpu")):
        pass
    assert clock.busy_seconds() is None


def test_conv_modes_agree_and_the_mode_is_per_thread():
    G = load_models(MODEL, "cpu").G
    w = torch.randn(3, G.n_latent, G.style_dim, generator=torch.Generator().manual_seed(0))
    noise = G.make_noise(0)
    seen = {}

    def other_thread():
        seen["mode"] = ops.CONV_MODE.get()

    with torch.no_grad():
        grouped = G.synthesize(w, noise=noise)
        with ops.conv_mode("shared"):
            thread = threading.Thread(target=other_thread)
            thread.start()
            thread.join()
            shared = G.synthesize(w, noise=noise)
    assert seen["mode"] is None and ops.CONV_MODE.get() is None
    assert not torch.equal(grouped, shared)  # really the other form
    assert torch.allclose(grouped, shared, atol=1e-4)


class Hold(Stage):
    """Holds every record back until the end (a stage with look-ahead)."""

    name = "hold"

    def __init__(self):
        self.held = []

    def process(self, batch):
        self.held += batch
        return []

    def flush(self):
        out, self.held = self.held, []
        return out


class Fail(Stage):
    name = "fail"

    def process(self, batch):
        if batch[0].index >= 16:
            raise RuntimeError("stage failed on purpose")
        return batch


def _records(n):
    return [FrameRecord(i, i, 1, image=np.zeros((4, 4, 3), np.uint8)) for i in range(n)]


def test_threaded_runner_keeps_order_and_raises_a_stage_error():
    pipeline = Pipeline("copy", batch_size=3, threaded=True)
    pipeline.stages = [Hold(), Stage(), Hold()]
    assert [r.index for r in pipeline.run(_records(20))] == list(range(20))
    pipeline = Pipeline("copy", batch_size=4, threaded=True)
    pipeline.stages = [Stage(), Fail(), Stage()]
    seen = []
    with pytest.raises(RuntimeError, match="on purpose"):
        for record in pipeline.run(_records(40)):
            seen.append(record.index)
    assert seen == list(range(len(seen))) and len(seen) <= 16
    assert not [t for t in threading.enumerate() if t.name.startswith("videoinv-") and t.name != "videoinv-prefetch"]


@pytest.mark.slow
def test_bench_speed_reports_both_runs_and_the_ceilings(tmp_path, capsys):
    out = tmp_path / "speed.json"
    assert main(["bench", "speed", "--models", MODEL, "--frames", "12", "--device", "cpu", "--preset", "veryfast",
                 "--repeat", "3", "-o", str(out)]) == 0
    table = capsys.readouterr().out
    report = json.loads(out.read_text())
    entry = report["models"][0]
    # the chosen encoder settings reached the ceiling's writer and every run's
    assert report["encoder"] == {"codec": "libx264", "pix_fmt": "yuv420p", "crf": "18", "preset": "veryfast"}
    assert entry["naive"]["encoder"] == entry["pipelined"]["encoder"] == report["encoder"]
    assert "preset veryfast" in table
    assert entry["naive"]["frames"] == entry["pipelined"]["frames"] == 12
    assert entry["speedup"] == pytest.approx(entry["pipelined"]["fps"] / entry["naive"]["fps"], rel=1e-2)
    # turn by turn: each pipelined run against the naive run just before it (the naive list
    # holds the later runs first and the first run last)
    naive_runs, piped_runs = entry["naive"]["fps_all"], entry["pipelined"]["fps_all"]
    in_order = naive_runs[-1:] + naive_runs[:-1]
    assert entry["speedup_per_turn"] == pytest.approx([p / n for n, p in zip(in_order, piped_runs)], rel=1e-2)
    assert len(entry["speedup_per_turn"]) == len(piped_runs) == len(naive_runs) == 3
    assert len(entry["pipelined"]["faults_all"]) == 3 and 1 <= entry["pipelined_warmups"] <= speed.WARMUPS
    assert min(entry["speedup_per_turn"]) <= entry["speedup_median"] <= max(entry["speedup_per_turn"])
    assert entry["max_diff_levels"] <= 1 and entry["bf16_psnr_db"] > 30
    assert entry["naive_repeatable"]  # its later runs gave the first run's frames exactly
    # the naive loop cannot beat its own work spread perfectly over the cores
    assert entry["work_cpu_s"] > 0 and entry["overlap_bound"] > 0.9
    assert entry["binding"] in ("compute", "decode", "encode")
    assert entry["flops_per_frame"]["total"] > entry["flops_per_frame"]["synthesis"] > 0
    assert set(entry["conv_ms_per_face"]["batch 1"]) == {"grouped", "shared"}
    assert "pipelined / naive" in table and "binding" in table and "page faults" in table


def test_compiled_synthesis_is_one_graph_per_batch_shape_and_conv_form(monkeypatch):
    """No graph breaks (fullgraph raises at one) and no recompiles on a repeat call: a break at
    every modulated conv used to hit torch's recompile limit and run the rest eagerly."""
    from videoinv.models.tuning import CompiledGenerator
    graphs = []

    def count(gm, inputs):  # a backend that keeps the captured graph and runs it as it is
        graphs.append(gm)
        return gm.forward

    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, mode=None, dynamic=None: real(
        fn, backend=count, fullgraph=True, dynamic=dynamic))
    torch._dynamo.reset()
    try:
        G = load_models(MODEL, "cpu").G
        CG = CompiledGenerator(G, "on")
        g = torch.Generator().manual_seed(3)
        w = torch.randn(1, G.n_latent, G.style_dim, generator=g)
        edited = w + 0.5
        feat = torch.randn(1, G.channels[16], 16, 16, generator=g)
        with torch.no_grad():
            for mode, total in (("grouped", 2), ("shared", 4), ("grouped", 4)):
                with ops.conv_mode(mode):
                    head, eager_head = CG.edit_head(w, edited, feat), G.edit_head(w, edited, feat)
                    image, eager = CG.synthesize_from(edited, *head), G.synthesize_from(edited, *eager_head)
                assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(head, eager_head))
                assert torch.allclose(image, eager, atol=1e-5)
                # per form: the head at 2 rows ([w; w~]) and the tail at 1; nothing new the third time
                assert len(graphs) == total
        # the forms differ inside the graphs: a grouped conv against a batched matmul
        ops_of = [{str(n.target) for n in gm.graph.nodes if n.op == "call_function"} for gm in graphs]
        assert ops_of[0] != ops_of[2] and ops_of[1] != ops_of[3]
    finally:
        torch._dynamo.reset()


def test_compiled_code_never_runs_while_another_thread_compiles(monkeypatch):
    """Stage threads call their compiled models at once. In torch 2.11 a compiled function
    called while another thread compiled raised (tracing is flagged process-wide) and stopped the
    run; a call that may compile (a signature not run before) now has the models to itself, and
    calls of code already compiled wait for it."""
    from videoinv.models.tuning import CompiledCall

    spans, lock = [], threading.Lock()

    def note(what, start):
        with lock:
            spans.append((what, start, time.perf_counter()))

    def slow_backend(gm, inputs):  # compiling takes 0.3 s; running the result 2 ms
        start = time.perf_counter()
        time.sleep(0.3)
        note("compile", start)

        def run(*args):
            begun = time.perf_counter()
            time.sleep(0.002)
            out = gm.forward(*args)
            note("run", begun)
            return out
        return run

    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, mode=None, dynamic=None: real(
        fn, backend=slow_backend, dynamic=dynamic))
    torch._dynamo.reset()
    try:
        # grad mode is per thread and in the compiled code's guards (another test module turns
        # it off on the main thread): both threads call under no_grad, as the model stages do
        double, half = CompiledCall(lambda x: x * 2, "on"), CompiledCall(lambda x: x / 2, "on")
        with torch.no_grad():
            assert torch.equal(double(torch.ones(3)), torch.full((3,), 2.0))  # compiled for [3]
        stop = threading.Event()
        results = []

        @torch.no_grad()
        def keep_calling():
            while not stop.is_set():
                results.append(double(torch.ones(3)))

        caller = threading.Thread(target=keep_calling)
        caller.start()
        time.sleep(0.05)
        for n in (4, 5):  # two new shapes, two compiles, while the other thread keeps calling
            with torch.no_grad():
                assert torch.equal(half(torch.ones(n)), torch.full((n,), 0.5))
        time.sleep(0.05)
        stop.set()
        caller.join()
    finally:
        torch._dynamo.reset()
    compiles = [(a, b) for what, a, b in spans if what == "compile"]
    runs = [(a, b) for what, a, b in spans if what == "run"]
    assert len(compiles) == 3 and len(results) >= 5 and all(torch.equal(r, torch.full((3,), 2.0)) for r in results)
    overlapping = [(c, r) for c in compiles for r in runs if r[0] < c[1] and c[0] < r[1]]
    assert not overlapping


def test_calls_that_may_compile_or_capture_a_cuda_graph_go_alone(monkeypatch):
    """A signature's first call may compile; with CUDA graphs torch also warms the code up and
    captures the graph on the calls after it, so those go alone too. A new shape, a new grad
    mode: a new signature."""
    import contextlib

    from videoinv.models import tuning

    alone = []
    monkeypatch.setattr(tuning._GATE, "enter", lambda may_compile: alone.append(may_compile) or contextlib.nullcontext())
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, mode=None, dynamic=None: real(fn, backend="eager", dynamic=dynamic))
    torch._dynamo.reset()
    try:
        for mode, first in (("on", 1), ("graphs", tuning.GRAPH_SETUP_CALLS)):
            alone.clear()
            call = tuning.CompiledCall(lambda x: x + 1, mode)
            with torch.no_grad():
                for _ in range(first + 2):
                    assert torch.equal(call(torch.zeros(2)), torch.ones(2))
                call(torch.zeros(3))
            with torch.enable_grad():
                call(torch.zeros(3))  # grad on: another signature
            assert alone == [True] * first + [False, False, True, True]
    finally:
        torch._dynamo.reset()


@pytest.mark.slow
def test_compiled_models_match_and_keep_a_fixed_batch_shape(clip, tmp_path, monkeypatch):
    plain, _ = edited_frames(clip, tmp_path / "a.mp4", threaded=True, batch=5, workers=0, parallel=1)
    shapes = []
    real = torch.compile

    def watch(fn, **kwargs):
        compiled = real(fn, fullgraph=True, **kwargs)  # a graph break raises

        def call(x, *args, **kw):
            shapes.append(tuple(x.shape))
            return compiled(x, *args, **kw)
        return call

    monkeypatch.setattr(torch, "compile", watch)
    compiled, summary = edited_frames(clip, tmp_path / "b.mp4", threaded=True, batch=5, workers=0, parallel=1,
                                      compile="on")
    assert summary["frames"] == 24  # blocks of 5: the last one (4 frames) is padded to 5
    assert {s[0] for s in shapes} == {5, 10}  # 10: the Eq. 1 correction runs both latents at once
    assert np.abs(plain.astype(int) - compiled).max() <= 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("compile", ["off", "graphs"])
def test_gpu_pipelined_output_within_one_level_of_the_naive_loop(clip, tmp_path, compile):
    """Also with --compile graphs: a replay overwrites the previous replay's results while the
    next stage still holds them, unless they are copied out (tuning.CompiledCall)."""
    frames = {}
    for name, threaded, batch in (("naive", False, 1), ("piped", True, 8)):
        got = []
        summary = edit_video(clip, tmp_path / f"{name}.mp4", overwrite=True, threaded=threaded,
                             batch_size=8 if threaded else 1,
                             options=EditOptions(edits=["sefa0=3"], model=MODEL, device="cuda", batch=batch, workers=0,
                                                 compile=compile if threaded else "off"),
                             on_frame=lambda r: got.append(np.array(r.image)))
        assert summary["frames"] == 24
        frames[name] = np.stack(got)
    assert np.abs(frames["naive"].astype(int) - frames["piped"]).max() <= 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_edit_waits_for_the_device_only_to_take_finished_frames(clip, tmp_path):
    """Stages order their GPU work with CUDA events: none waits for the work queued before it
    (as a copy from pageable host memory, .item() or bool() of a device tensor do: torch's
    sync debug mode names each), except to take a finished frame back for the writer (an event's
    wait, which it does not count). A first run warms up: loading and timing the conv forms may wait."""
    options = EditOptions(edits=["sefa0=0:0s,3:0.5s"], model=MODEL, device="cuda", batch=8, workers=0)
    edit_video(clip, tmp_path / "warm.mp4", options=options, overwrite=True, threaded=True, batch_size=8)
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:  # from every stage's thread
            warnings.simplefilter("always")
            summary = edit_video(clip, tmp_path / "run.mp4", options=options, overwrite=True, threaded=True,
                                 batch_size=8)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    waits = sorted({f"{w.filename}:{w.lineno}" for w in caught if "synchronizing CUDA operation" in str(w.message)})
    assert summary["frames"] == 24
    assert not waits, waits


def test_frame_blocks_go_as_soon_as_they_are_whole():
    from videoinv.edit.stages import FrameBlocks

    blocks = FrameBlocks(4)
    records = _records(12)
    indices = lambda done: [[r.index for r in block] for block in done]  # noqa: E731
    assert indices(blocks.add(records[0:3])) == []  # frames 0-2: block 0 still open
    assert indices(blocks.add(records[3:6])) == [[0, 1, 2, 3]]  # its last frame came: no waiting for more
    assert indices(blocks.add(records[6:7])) == []
    # frame 7 never comes (a damaged frame skipped): block 1 goes once block 2 has begun
    assert indices(blocks.add(records[8:9])) == [[4, 5, 6]]
    assert indices(blocks.add(records[9:10])) == []
    assert indices(blocks.rest()) == [[8, 9]]
