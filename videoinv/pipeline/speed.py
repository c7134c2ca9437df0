"""``videoinv bench speed``: the pipelined edit against a naive per-frame loop, and the ceilings.

For each model, in one process and on the same generated clip (one moving real face, with
sound): (a) the naive loop, the same stage objects run one after the other on one thread with
one frame per batch (model batch 1, decoding and detection in that thread, no overlap), and
(b) the pipelined run with its defaults (every stage on its own thread, decoding ahead and
encoding overlapped, the encoder batched, generator blocks in parallel on the CPU or batched
on a GPU, detection in a worker process where there are cores to spare). Both edit every face with the same SeFa
direction, detect every 5 frames and keep every frame; the pipelined frames are compared with
the naive ones as they come. Each mode runs ``repeat`` times after warming up (models, dlib
and codecs loaded, model calls traced, the convolutions of its batch shapes compiled by oneDNN,
the memory it needs at its peak faulted in: a cold pipelined run took up to a third more CPU
time; the naive loop warms up with one full run, the pipelined one with full runs until one
faults in little new memory, as the bulk of a long video runs) and its fastest run counts; the
two modes take turns, so a slow spell of the machine hits both alike, and each turn's ratio is
reported too (the fastest of each favours the mode whose speed varies more). Reported per run:
frames/s end to end, busy seconds per stage (decode and encode included), page faults, and on
CUDA the GPU's busy share from CUDA events. Both modes run the models in float32 in full (no
TensorFloat-32); on CUDA a pipelined tf32 run follows, as the bf16 one does, with its PSNR
against float32. On the CPU the naive loop gives torch every core and the pipelined run one thread per
model block; float results can differ in the last bit between thread counts and batch sizes
(the output by a level at most). At equal thread counts and batches the two are identical
(tests/test_throughput.py).

On the CPU the report also measures the work itself: the CPU seconds of the naive loop with
torch on one thread (nothing runs in parallel but the encoder's own threads; the least of
``repeat`` runs). That work spread
perfectly over every core is the most any overlap of that work can give: ``overlap_bound`` is
the naive loop's wall time over (work / cores), the ceiling for the pipelined/naive ratio on this
machine unless the pipelined run does less work (its batched encoder does a little less).
Each run also records its own CPU seconds, so the pipelined run's overhead shows.

The ceilings: the arithmetic floor is the FLOPs per frame of the encoder and the synthesis from
layer 5 (with the Eq. 1 correction), counted by torch, over the measured bf16 matmul rate of the
device; decoding and encoding ceilings are the clip decoded to RGB alone and RGB frames encoded
alone, with the encoder settings every run uses (``edit``'s defaults unless ``encode`` says
otherwise; the report names them). The lowest of the three binds.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

EDIT = "sefa0=3"
SETTLED = 2000  # page faults (8 MB) under which a pipelined warm-up run counts as settled
# at most this many pipelined warm-up runs: under jemalloc the heap of a 60-frame pipelined run
# grew for five or six runs (20k-25k pages faulted in by each, ~120 MB) while every finished
# run's reader waited in a reference cycle for Python's collector, and without it still faults
# in a few thousand pages a run for the first four to six; one long run settles the same way
# (a 480-frame edit: 124k, 21k, 8k, 4k, then ~100 pages per 60 frames), so a settled run is
# what the bulk of a long video runs at
WARMUPS = 8


def _device(name: str):
    from ..models.specs import pick_device

    return pick_device(name)


def matmul_rate(device, dtype_name: str = "bfloat16", n: int = 2048, seconds: float = 1.0) -> float:
    """FLOP/s of an n x n matmul in ``dtype_name`` on ``device`` (best of repeated runs)."""
    import torch

    dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}[dtype_name]
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b
    sync()
    best, spent = math.inf, 0.0
    while spent < seconds:
        t = time.perf_counter()
        for _ in range(4):
            a @ b
        sync()
        dt = (time.perf_counter() - t) / 4
        best, spent = min(best, dt), spent + 4 * dt
    return 2 * n ** 3 / best


def flops_per_face(model: str, device) -> dict:
    """FLOPs of one face as an edit runs it: the encoder, the generator's layers before 5 for w
    and w~ together (the Eq. 1 correction and w~'s RGB so far), and its layers from 5 on."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ..models.specs import load_models

    m = load_models(model, str(device))
    G, E = m.G, m.E
    x = torch.zeros(1, 3, 256, 256, device=device)
    out = {}
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            w, feat = E(x)
        out["encoder"] = counter.get_total_flops()
        w = w + m.latent_avg
        noise = G.make_noise(0, device)
        with FlopCounterMode(display=False) as counter:  # the layers before 5, for w and w~ together
            feat, skip = G.edit_head(w, w + 0.1, feat, k=5, noise=noise)
        out["correction"] = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            G.synthesize_from(w + 0.1, feat, skip, k=5, noise=noise)
        out["synthesis"] = counter.get_total_flops()
    out["total"] = sum(out.values())
    return out


def decode_ceiling(clip: Path) -> float:
    """Frames/s of decoding the clip to RGB and nothing else."""
    from ..video.reader import Reader

    t = time.perf_counter()
    with Reader(clip) as reader:
        n = sum(1 for record in reader.frames(rgb=True) if record.image is not None)
    return n / (time.perf_counter() - t)


def encode_ceiling(clip: Path, out: Path, encode=None) -> tuple[float, dict]:
    """Frames/s of encoding the clip's frames (already RGB in memory) with ``encode`` (an
    ``EncodeOptions``; None: the default encoder), and the encoder's settings as it ran."""
    from ..video.reader import Reader
    from ..video.writer import Writer

    with Reader(clip) as reader:
        info = reader.info
        records = [r for r in reader.frames(rgb=True)]
    for r in records:
        r.image = r.image.copy()  # marked changed: every frame goes through RGB -> YUV -> encoder
    t = time.perf_counter()
    with Writer(out, info.width, info.height, info.time_base, info.fps, encode, info, None, inputs=[clip],
                overwrite=True) as writer:
        for r in records:
            writer.write(r)
    return len(records) / (time.perf_counter() - t), writer.encoder_options


class _Frames:
    """Compares a run's frames with a reference as they come, holding none of them (holding
    every frame would make each new one a fresh allocation and slow the run being measured);
    with ``keep`` it keeps what it needs of them instead, to be the reference. Only the
    rectangles stages changed are read (``record.changed``; elsewhere a frame is its decoded
    source, the same in every run): reading whole pictures would convert every frame from YUV,
    which the edit itself no longer does, and load both modes alike with work outside the edit.
    A frame whose picture was replaced whole is kept and compared whole."""

    def __init__(self, reference: list | None = None, keep: bool = False):
        self.reference, self.kept, self.n = reference, [] if keep else None, 0
        self.max_diff, self.squared = 0, 0.0

    def __call__(self, record) -> None:
        import cv2  # SIMD, releases the GIL: the comparison barely loads the run it watches

        patches = None if record.source is None else [(box, record.region(box).copy()) for box in record.changed]
        if self.kept is not None:
            self.kept.append(patches if patches is not None else record.image.copy())
        if self.reference is not None and self.n < len(self.reference):
            ours, theirs, size = self._pair(record, patches, self.reference[self.n])
            if theirs is None and ours is not None:
                self.max_diff, self.squared = 255, self.squared + 255.0 ** 2
            elif ours is not None:
                self.max_diff = max(self.max_diff, int(cv2.absdiff(ours, theirs).max()))
                self.squared += cv2.norm(ours, theirs, cv2.NORM_L2SQR) / size
        self.n += 1

    @staticmethod
    def _pair(record, patches, kept):
        """Our pixels and the reference's where either may differ from the decoded frame, and
        the frame's size in values (None where neither changed anything)."""
        w, h = record.size
        if patches is None or not isinstance(kept, list):  # a picture replaced whole, in either run
            ours = record.image
            if not isinstance(kept, list):
                return ours, kept, ours.size
            reference = record.unchanged()
            if reference is None:  # replaced here, patched in the reference: not comparable
                return ours, None, ours.size
            for box, pixels in kept:
                reference.patch_region(box, pixels)
            return ours, reference.image, ours.size
        boxes = [box for box, _ in patches] + [box for box, _ in kept]
        if not boxes:
            return None, None, w * h * 3
        box = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
        reference = record.unchanged()
        for patch_box, pixels in kept:
            reference.patch_region(patch_box, pixels)
        return record.region(box), reference.region(box), w * h * 3

    def psnr(self) -> float:
        mse = self.squared / max(self.n, 1)
        return float("inf") if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def _fastest(runs: list) -> tuple[dict, "_Frames"]:
    """The fastest of a mode's runs (these machines are noisy), with every run's frames/s and
    the largest difference from the reference any of them had."""
    best = max(runs, key=lambda run: run[0]["fps"])
    best[0]["fps_all"] = [run[0]["fps"] for run in runs]
    best[0]["faults_all"] = [run[0]["page_faults"] for run in runs]
    best[1].max_diff = max(run[1].max_diff for run in runs)
    return best


def _usage() -> tuple[float, int]:
    """CPU time of this process so far, every thread (user + system), and its minor page faults
    (memory touched for the first time, or again after it went back to the system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_minflt


def _run(clip: Path, out: Path, model: str, device: str, naive: bool, dtype: str = "float32",
         frames: int | None = None, reference: list | None = None, keep: bool = False,
         threads: int | None = None, encode=None):
    from ..edit.recipe import EditOptions
    from .jobs import edit_video
    from .transfer import GPU_CLOCK

    if naive:
        options = EditOptions(edits=[EDIT], model=model, device=device, batch=1, workers=0, dtype=dtype)
    else:
        options = EditOptions(edits=[EDIT], model=model, device=device, dtype=dtype)
    seen = _Frames(reference, keep)
    GPU_CLOCK.reset()
    (cpu, faults), t = _usage(), time.perf_counter()
    summary = edit_video(clip, out, options=options, encode=encode, overwrite=True, threaded=not naive,
                         threads=threads, end=f"{frames}f" if frames else None, batch_size=1 if naive else 8,
                         on_frame=seen)
    wall = time.perf_counter() - t
    cpu, faults = (b - a for a, b in zip((cpu, faults), _usage()))
    gpu = GPU_CLOCK.busy_seconds()
    row = {"mode": "naive" if naive else "pipelined", "dtype": dtype, "frames": summary["frames"],
           "wall_s": round(wall, 3), "fps": round(summary["frames"] / wall, 3), "cpu_s": round(cpu, 3),
           "page_faults": faults,
           "encoder_batch": options.encoder_batch(), "synthesis_group": options.synthesis_group(),
           "model_batch": options.model_batch(),
           "detect_workers": options.detect_workers(), "encoder": summary["encoder"],
           "busy_s": summary["busy_seconds"],
           "gpu_busy_share": None if gpu is None else round(gpu / wall, 3)}
    return row, seen


def measure(models: list[str], frames: int = 60, device: str = "auto", bf16: bool = True, repeat: int = 2,
            workdir: str | os.PathLike | None = None, progress=print, encode=None) -> dict:
    """Run the comparison; returns the report (see the module docstring). ``encode``: the
    ``EncodeOptions`` of every run and of the encoding ceiling (None: the defaults of
    ``videoinv edit``)."""
    import torch

    from .. import samples
    from ..models.specs import check_models
    from ..models.tuning import cpu_count, time_conv_modes
    from .allocator import arena_count, in_use
    from ..video.writer import EncodeOptions, check_encode

    encode = encode or EncodeOptions()  # the runs and the encoding ceiling share it
    dev = _device(device)
    for model in models:
        check_models(model)  # a bad spec stops here, not after the clip and the ceilings
    check_encode(encode)
    with tempfile.TemporaryDirectory(prefix="videoinv-speed-", dir=workdir) as tmp:
        clip, out = Path(tmp) / "clip.mp4", Path(tmp) / "out.mp4"
        scene = samples.moving_face()
        samples.write_clip(clip, scene, frames, audio=True)
        encode_fps, encoder = encode_ceiling(clip, out, encode)
        ceilings = {"decode_fps": round(decode_ceiling(clip), 2), "encode_fps": round(encode_fps, 2)}
        rate = matmul_rate(dev, "bfloat16")
        ceilings["bf16_matmul_tflops"] = round(rate / 1e12, 3)
        progress(f"clip: {frames} frames 1280x720; decode {ceilings['decode_fps']} fps, encode "
                 f"{ceilings['encode_fps']} fps, bf16 matmul {ceilings['bf16_matmul_tflops']} TFLOP/s on {dev}")
        rows = []
        for model in models:
            entry: dict = {"model": model}

            def run(model=model, **kwargs):
                return _run(clip, out, model, device, encode=encode, **kwargs)

            # warm-ups: full runs (every shape of batch a full run has, and the memory it holds
            # at once): one of the naive loop (after a warm-up of 8 frames or 30, its first full
            # run still faulted in 27k or 12k pages, 2-3% of its time); of the pipelined run until
            # one faults in fewer than SETTLED pages, at most WARMUPS (with at most three, three
            # of the four measured pipelined runs still faulted in 24k-32k pages each)
            run(naive=True)
            warmups = 0
            while warmups < WARMUPS:
                warmups += 1
                if run(naive=False)[0]["page_faults"] < SETTLED:
                    break
            entry["pipelined_warmups"] = warmups
            # the naive loop's first run keeps its frames as the reference; after it the modes
            # alternate, so a slow spell of the machine hits both alike, and every later run
            # compares its frames with the reference (the same cost in both modes)
            first, kept = run(naive=True, keep=True)
            reference = kept.kept
            naives, pipes = [], []
            for i in range(repeat):
                if i:
                    naives.append(run(naive=True, reference=reference))
                pipes.append(run(naive=False, reference=reference))
            # each turn's ratio: a naive run and the pipelined run right after it (the fastest of
            # each mode favours the one whose speed varies more, here the pipelined run)
            turns = [round(p[0]["fps"] / n[0]["fps"], 3) for n, p in zip([(first, None)] + naives, pipes)]
            naive, checked = _fastest(naives + [(first, _Frames())]) if naives else (first, _Frames())
            piped, seen = _fastest(pipes)
            progress(f"{model}: naive {naive['fps']} fps, pipelined {piped['fps']} fps")
            entry.update(naive=naive, pipelined=piped, speedup=round(piped["fps"] / naive["fps"], 3),
                         speedup_per_turn=turns, speedup_median=round(float(np.median(turns)), 3),
                         max_diff_levels=seen.max_diff, identical=seen.max_diff == 0 and seen.n == len(reference),
                         naive_repeatable=checked.max_diff == 0)
            if dev.type == "cpu":  # the work itself: the naive loop with torch on one thread
                work = min(run(naive=True, threads=1)[0]["cpu_s"] for _ in range(repeat))
                entry["work_cpu_s"] = work
                entry["overlap_bound"] = round(naive["wall_s"] / (work / cpu_count()), 3)
                progress(f"{model}: the work is {work} CPU seconds; perfectly overlapped on "
                         f"{cpu_count()} cores it would run x{entry['overlap_bound']} the naive loop")
            if bf16:
                low, seen = run(naive=False, dtype="bfloat16", reference=reference)
                entry["bfloat16"] = low
                entry["bf16_psnr_db"] = round(seen.psnr(), 2)
                progress(f"{model}: pipelined bfloat16 {low['fps']} fps, {entry['bf16_psnr_db']} dB against float32")
            if dev.type == "cuda":  # TensorFloat-32: float32 tensors, 10-bit mantissas in the convs and products
                low, seen = run(naive=False, dtype="tf32", reference=reference)
                entry["tf32"] = low
                entry["tf32_psnr_db"] = round(seen.psnr(), 2)
                progress(f"{model}: pipelined tf32 {low['fps']} fps, {entry['tf32_psnr_db']} dB against float32")
            del reference
            flops = flops_per_face(model, dev)
            floor = rate / flops["total"]
            entry["flops_per_frame"] = flops
            entry["compute_ceiling_fps"] = round(floor, 2)
            limits = {"compute": floor, "decode": ceilings["decode_fps"], "encode": ceilings["encode_fps"]}
            binding = min(limits, key=limits.get)
            entry["binding"] = binding
            entry["of_binding_ceiling"] = round(piped["fps"] / limits[binding], 3)
            from ..models.specs import load_models

            G = load_models(model, str(dev)).G
            entry["conv_ms_per_face"] = {
                f"batch {b}": {k: round(v / b * 1e3, 2) for k, v in time_conv_modes(G, b, dev).items()}
                for b in sorted({1, piped["model_batch"]})}
            rows.append(entry)
    return {"benchmark": "speed", "device": str(dev), "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda"
            else None, "cpus": cpu_count(), "machine": platform.machine(), "torch": torch.__version__,
            "frames": frames, "size": "1280x720", "edit": EDIT, "every": 5, "repeat": repeat,
            "encoder": encoder, "ceilings": ceilings, "allocator": in_use(), "malloc_arenas": arena_count(), "models": rows}


def table(report: dict) -> str:
    """The report as a text table."""
    lines = [f"device {report['device']}{' (' + report['gpu'] + ')' if report['gpu'] else ''}, "
             f"{report['cpus']} CPUs, {report['frames']} frames {report['size']}, detect every {report['every']}, "
             f"encoder {' '.join(f'{k} {v}' for k, v in report['encoder'].items())}, "
             f"malloc {report.get('allocator', 'libc')}",
             f"ceilings: decode {report['ceilings']['decode_fps']} fps, encode {report['ceilings']['encode_fps']} "
             f"fps, bf16 matmul {report['ceilings']['bf16_matmul_tflops']} TFLOP/s", ""]
    head = f"{'model':<16}{'run (batches*)':<20}{'fps':>8}{'GPU busy':>10}  busy seconds per stage"
    lines += [head, "-" * len(head)]
    for entry in report["models"]:
        runs = [entry["naive"], entry["pipelined"]] + [entry[d] for d in ("bfloat16", "tf32") if d in entry]
        for run in runs:
            name = f"{run['mode']} b{run['encoder_batch']}/{run['synthesis_group']}/{run['model_batch']}"
            name += {"bfloat16": " bf16", "tf32": " tf32"}.get(run["dtype"], "")
            gpu = "-" if run["gpu_busy_share"] is None else f"{run['gpu_busy_share']:.0%}"
            busy = ", ".join(f"{k.split('#')[0]} {v:.1f}" for k, v in run["busy_s"].items())
            lines.append(f"{entry['model']:<16}{name:<20}{run['fps']:>8.2f}{gpu:>10}  {busy}")
        same = "identical" if entry["identical"] else f"max difference {entry['max_diff_levels']} levels"
        same += "" if entry["naive_repeatable"] else "; the naive loop did not repeat its own output!"
        bf16 = "".join(f"; {name} {entry[key]} dB against float32" for name, key in
                       (("bf16", "bf16_psnr_db"), ("tf32", "tf32_psnr_db")) if key in entry)
        turns = entry["speedup_per_turn"]
        lines.append(f"{'':<16}pipelined / naive = x{entry['speedup']:.2f}, the fastest of each; turn by turn "
                     f"x{min(turns):.2f} to x{max(turns):.2f}, median x{entry['speedup_median']:.2f} "
                     f"(outputs {same}){bf16}")
        if "overlap_bound" in entry:
            lines.append(f"{'':<16}the work: {entry['work_cpu_s']:.1f} CPU s (pipelined used "
                         f"{entry['pipelined']['cpu_s']:.1f}); the naive loop's work perfectly overlapped on "
                         f"{report['cpus']} cores: x{entry['overlap_bound']:.2f} the naive loop")
            lines.append(f"{'':<16}page faults: naive {entry['naive']['page_faults']}, pipelined "
                         f"{entry['pipelined']['page_faults']} (after {entry['pipelined_warmups']} "
                         f"warm-up runs)")
        lines.append(f"{'':<16}compute ceiling {entry['compute_ceiling_fps']} fps "
                     f"({entry['flops_per_frame']['total'] / 1e9:.1f} GFLOP/frame); binding: {entry['binding']}; "
                     f"pipelined reaches {entry['of_binding_ceiling']:.0%} of it")
        conv = "; ".join(f"{b}: grouped {v['grouped']} ms, shared {v['shared']} ms"
                         for b, v in entry["conv_ms_per_face"].items())
        lines.append(f"{'':<16}modulated conv per face, {conv}")
    lines.append("* batches: encoder / generator layers before k with the Eq. 1 correction / generator from k on")
    if report.get("allocator", "libc") == "libc" and (report.get("malloc_arenas") or 1) > 1:
        lines.append(f"! {report['malloc_arenas']} malloc arenas: threads allocated before videoinv was imported, so "
                     "freed memory goes back to the system and faults in again (import videoinv first)")
    return "\n".join(lines)
