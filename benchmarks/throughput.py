"""The pipelined edit against a naive per-frame loop (``videoinv bench speed``), written to JSON.

    python benchmarks/throughput.py [--models random:256:32,random:256,random:1024] [--frames 60]
                                    [--device auto] [--repeat 2] [--no-bf16] [--crf 18] [--preset medium]

Prints the table of ``videoinv bench speed`` (frames/s of both runs, busy seconds per stage, GPU
busy share, the ratio, whether the outputs match, bf16 PSNR against float32, the compute, decode
and encode ceilings and which one binds) and writes benchmarks/results/throughput.json. ``--crf`` and
``--preset`` set the encoder of every run and of the encoding ceiling, as for ``videoinv edit``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from videoinv.pipeline.allocator import relaunch_with_jemalloc

if __name__ == "__main__":
    relaunch_with_jemalloc([sys.executable, *sys.argv])  # the allocator `videoinv bench speed` runs on

from videoinv.models.specs import pick_device  # noqa: E402
from videoinv.pipeline.speed import measure, table  # noqa: E402
from videoinv.video.writer import X264_PRESETS, EncodeOptions  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=None)
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--no-bf16", action="store_true")
    ap.add_argument("--crf", type=int, default=None)
    ap.add_argument("--preset", choices=X264_PRESETS, default=None)
    ap.add_argument("--out", type=Path, default=RESULTS / "throughput.json")
    args = ap.parse_args()
    if args.out.is_dir():
        ap.error(f"--out {args.out} is a folder; give a file name")
    args.out.parent.mkdir(parents=True, exist_ok=True)  # before the run, not after minutes of it
    cuda = pick_device(args.device).type == "cuda"
    models = args.models or ("random:256,random:1024" if cuda else "random:256:32,random:256,random:1024")
    frames = args.frames or (120 if cuda else 60)
    report = measure(models.split(","), frames=frames, device=args.device, bf16=not args.no_bf16,
                     repeat=args.repeat, progress=lambda text: print(text, flush=True),
                     encode=EncodeOptions(crf=args.crf, preset=args.preset))
    print(table(report))
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
