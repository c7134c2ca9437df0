"""The RAVDESS video-inversion evaluation (the FeatureStyleEncoder paper's Table 2 protocol).

    python benchmarks/ravdess.py RAVDESS_ROOT [--out DIR] [options of 'videoinv bench ravdess']
    python benchmarks/ravdess.py --demo [--out DIR] [--model random:256:32] ...

A thin driver over ``videoinv bench ravdess`` (same code, same options; see its --help). Results
go to benchmarks/results/ravdess unless --out is given; a rerun resumes there. ``--demo`` first
writes a miniature RAVDESS-shaped folder (six one-second clips of a real face, three of them
audio-video) into the results folder and evaluates that, with ``random:256:32`` unless --model is
given: a way to see the report without the dataset or the weights (its numbers mean nothing).
"""

from __future__ import annotations

import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
DEMO_NAMES = ("01-01-01-01-01-01-01", "02-01-01-01-01-01-01", "01-01-03-02-01-02-02", "02-01-05-01-02-01-02",
              "01-02-04-01-01-02-03", "02-02-06-02-02-01-03")


def main(argv: list[str]) -> int:
    from videoinv.cli import main as cli

    args = list(argv)
    out = RESULTS / "ravdess"
    for flag in ("--out", "-o"):
        if flag in args:
            i = args.index(flag)
            out = Path(args[i + 1])
            del args[i:i + 2]
    if "--demo" in args:
        from videoinv.metrics.ravdess import write_miniature

        args.remove("--demo")
        root = out.parent / f"{out.name}-demo-input"
        if not root.exists():
            write_miniature(root, DEMO_NAMES)
        if "--model" not in args:
            args += ["--model", "random:256:32"]
        args.insert(0, str(root))
    out.parent.mkdir(parents=True, exist_ok=True)
    return cli(["bench", "ravdess", *args, "-o", str(out)])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
