"""Model throughput: FeatureStyleEncoder at 256, synthesis from an injected layer-5 feature at 256
and 1024, and the full edit primitive, at several batch sizes, float32 and bf16 autocast; with a
per-sample loop (batch 1, float32) of the same work as the baseline, in the same run.

    python benchmarks/model_throughput.py [--device cuda] [--batches 1,8,32] [--min-time 2]

Weights are random (`random:<size>` specs: speed does not depend on the values). FLOPs are
counted by PyTorch's FlopCounterMode on one forward of each config; TFLOP/s = FLOPs / time. The
reference rate is a large matmul on the same device (float32 on CPU, bf16 on GPU). Prints a
table and writes benchmarks/results/model_throughput_<device>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from videoinv.edit.feature import feature_edit
from videoinv.models.ops import ModulatedConv2d
from videoinv.models.specs import load_encoder, load_generator

RESULTS = Path(__file__).resolve().parent / "results"


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str, min_time: float, max_iters: int = 50) -> float:
    """Seconds per call: one warm-up, then repeat until ``min_time`` has passed."""
    fn()
    sync(device)
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        sync(device)
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time or n >= max_iters:
            return elapsed / n


def matmul_rate(device: str, dtype: torch.dtype) -> float:
    n = 4096 if device == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    per_call = timed(lambda: a @ b, device, 1.0)
    return 2 * n ** 3 / per_call


def flops_of(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def bf16_error(fn, device: str) -> dict:
    """How far bf16 autocast lands from float32 on the same inputs (images compared in the
    display range [-1, 1], the encoder on its W+ offset; PSNR with peak-to-peak 2)."""
    ref = fn()
    with torch.autocast(device, dtype=torch.bfloat16):
        low = fn()
    ref, low = (ref[0] if isinstance(ref, tuple) else ref).float(), (low[0] if isinstance(low, tuple) else low).float()
    if ref.ndim == 4 and ref.shape[1] == 3:
        ref, low = ref.clamp(-1, 1), low.clamp(-1, 1)
    mse = float((ref - low).square().mean())
    return {"max_abs": round(float((ref - low).abs().max()), 4), "mean_abs": round(float((ref - low).abs().mean()), 5),
            "psnr_db": round(10 * math.log10(4 / mse), 2) if mse > 0 else None}


def configs(device: str):
    """name -> (build(batch) -> zero-arg callable)."""
    g256, avg256 = load_generator("random:256", device)
    g1024, avg1024 = load_generator("random:1024", device)
    enc = load_encoder("random:256", device)

    def inputs(G, batch):
        gen = torch.Generator().manual_seed(batch)
        w = (torch.randn(batch, G.n_latent, 512, generator=gen) * 0.5).to(device)
        feat = torch.randn(batch, G.channels[16], 16, 16, generator=gen).to(device)
        return w, feat, G.make_noise(0, device)

    def encoder(batch):
        x = torch.rand(batch, 3, 256, 256, device=device) * 2 - 1
        return lambda: enc(x)

    def synth(G):
        def build(batch):
            w, feat, noise = inputs(G, batch)
            return lambda: G.synthesize(w, feature=feat, k=5, noise=noise)
        return build

    def edit(G):
        def build(batch):
            w, feat, noise = inputs(G, batch)
            w2 = w + 0.5
            return lambda: feature_edit(G, w, feat, w2, k=5, noise=noise)
        return build

    return {"encoder@256": encoder, "synthesis-from-5@256": synth(g256), "synthesis-from-5@1024": synth(g1024),
            "edit@256": edit(g256), "edit@1024": edit(g1024)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batches", default=None, help="comma list (default 1,8,32; 1,8 for 1024 on CPU)")
    ap.add_argument("--min-time", type=float, default=2.0, help="seconds of timing per measurement")
    ap.add_argument("--only", default=None, help="comma list of config names")
    ap.add_argument("--no-bf16", action="store_true")
    ap.add_argument("--conv-mode", choices=["grouped", "shared"], default="grouped",
                    help="modulated conv form: one grouped conv, or modulate activations + shared conv")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    device = args.device
    torch.set_grad_enabled(False)
    ModulatedConv2d.mode = args.conv_mode
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
    peak_dtype = torch.bfloat16 if device == "cuda" else torch.float32
    peak = matmul_rate(device, peak_dtype)
    rows, accuracy = [], {}
    for name, build in configs(device).items():
        if args.only and name not in args.only.split(","):
            continue
        if args.batches:
            batches = [int(b) for b in args.batches.split(",")]
        else:
            batches = [1, 8] if (device == "cpu" and "1024" in name) else [1, 8, 32]
        one = build(1)
        flops_per_image = flops_of(one)
        if not args.no_bf16:
            accuracy[name] = bf16_error(one, device)
            print(f"{name:>22} bf16 vs float32: {accuracy[name]}", flush=True)
        baseline = timed(one, device, args.min_time)  # the per-sample loop: batch 1, float32
        for batch in batches:
            fn = build(batch)
            for precision in ("float32", "bf16") if not args.no_bf16 else ("float32",):
                ctx = torch.autocast(device, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()

                def run(fn=fn, ctx=ctx):
                    with ctx:
                        return fn()

                seconds = timed(run, device, args.min_time)
                ips = batch / seconds
                tflops = flops_per_image * ips / 1e12
                rows.append({"config": name, "batch": batch, "precision": precision, "images_per_s": round(ips, 3),
                             "tflops": round(tflops, 4), "gflop_per_image": round(flops_per_image / 1e9, 2),
                             "fraction_of_matmul_peak": round(tflops * 1e12 / peak, 4),
                             "speedup_vs_per_sample_loop": round(ips * baseline, 2)})
                print(f"{name:>22} b{batch:<3} {precision:>7}: {ips:8.2f} img/s {tflops:8.3f} TFLOP/s "
                      f"({flops_per_image / 1e9:.1f} GFLOP/img, {100 * tflops * 1e12 / peak:5.1f}% of matmul, "
                      f"x{ips * baseline:.2f} vs loop)", flush=True)
    report = {"benchmark": "model_throughput", "device": device, "conv_mode": args.conv_mode,
              "device_name": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
              "torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
              "matmul_peak_tflops": round(peak / 1e12, 3), "matmul_peak_dtype": str(peak_dtype), "rows": rows,
              "bf16_vs_float32": accuracy}
    out = args.out or RESULTS / f"model_throughput_{device}_{args.conv_mode}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"matmul peak ({peak_dtype}): {peak / 1e12:.3f} TFLOP/s; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
