"""Traced model calls against eager ones, alone and beside a thread busy running Python.

    python benchmarks/traced_calls.py [--models random:256:32,random:256] [--tries 15]

One synthesis from layer 5 for one face, torch on one thread (as each model block of a pipelined
CPU run has): eagerly every operator gives Python's lock up and takes it back, and beside a busy
thread each take can wait up to the 5 ms switch interval; a replayed trace takes it once per
call. The busy thread sits on another core where there is one. How long it keeps the lock varies
a lot from call to call, so this prints medians and quartiles of ``--tries`` calls per case, the
eager/traced ratio of the medians, and writes benchmarks/results/traced_calls.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

from videoinv.models.specs import load_generator
from videoinv.models.traced import TracedGenerator
from videoinv.pipeline.runner import torch_threads

RESULTS = Path(__file__).resolve().parent / "results"


class BusyThread:
    """A thread spinning in Python (holding the lock as much as it is let), on its own core."""

    def __init__(self):
        self.stop, self.started = threading.Event(), threading.Event()
        cores = sorted(os.sched_getaffinity(0))
        self.core = {cores[-1]} if len(cores) > 1 else None
        self.thread = threading.Thread(target=self._spin, daemon=True)

    def _spin(self) -> None:
        if self.core:
            os.sched_setaffinity(0, self.core)  # this thread only (Linux)
        self.started.set()
        while not self.stop.is_set():
            pass

    def __enter__(self) -> BusyThread:
        self.thread.start()
        self.started.wait()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def calls(model: str, tries: int) -> dict:
    G, _ = load_generator(model)
    traced = TracedGenerator(G)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(1, G.n_latent, G.style_dim, generator=g)
    feat = torch.randn(1, G.channels[16], 16, 16, generator=g)
    noise = [torch.randn(n.shape, generator=g) for n in G.make_noise(0, torch.device("cpu"))]
    skip = torch.zeros(1, 3, 16, 16)

    def once(generator) -> float:
        t = time.perf_counter()
        generator.synthesize_from(w, feat, skip, k=5, noise=noise)
        return time.perf_counter() - t

    times: dict[str, list[float]] = {}
    with torch.no_grad(), torch_threads(1):
        for generator in (G, traced, traced):  # warm: eager shapes; the trace seen, then recorded
            once(generator)
        for _ in range(tries):  # taking turns, so that a slow spell of the machine hits every case
            for case, generator in (("eager", G), ("traced", traced)):
                times.setdefault(f"{case} alone", []).append(once(generator))
                with BusyThread():
                    times.setdefault(f"{case} beside a busy thread", []).append(once(generator))
    row = {case: {"median_ms": round(statistics.median(v) * 1e3, 1),
                  "quartiles_ms": [round(q * 1e3, 1) for q in statistics.quantiles(v, n=4)[::2]]}
           for case, v in times.items()}
    for where in ("alone", "beside a busy thread"):
        eager, traced_ = (statistics.median(times[f"{case} {where}"]) for case in ("eager", "traced"))
        row[f"eager / traced, {where}"] = round(eager / traced_, 2)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="random:256:32,random:256")
    ap.add_argument("--tries", type=int, default=15)
    ap.add_argument("--out", type=Path, default=RESULTS / "traced_calls.json")
    args = ap.parse_args()
    report = {"benchmark": "traced_calls", "machine": platform.machine(), "cpus": len(os.sched_getaffinity(0)),
              "torch": torch.__version__, "python": sys.version.split()[0], "tries": args.tries, "models": {}}
    for model in args.models.split(","):
        row = report["models"][model] = calls(model, args.tries)
        print(f"{model}: one face, torch on one thread, median (quartiles) of {args.tries} calls")
        for case, v in row.items():
            if isinstance(v, dict):
                print(f"  {case:<38} {v['median_ms']:>9.1f} ms  ({v['quartiles_ms'][0]}-{v['quartiles_ms'][1]})")
            else:
                print(f"  {case:<38} x{v}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
