"""Cold start: what a user's first ``videoinv edit`` costs beyond a warm one, written to JSON.

    python benchmarks/cold_start.py [--models random:256:32,random:256] [--frames 60] [--runs 2]
                                    [--device auto]

Every run is a fresh Python process: nothing imported, no model loaded, no call traced, no
convolution compiled by oneDNN, none of the run's memory faulted in yet. It times, one after
the other: importing the CLI and the libraries an edit needs (torch, OpenCV, dlib, PyAV),
loading the models, a first edit of the clip (cold), then more edits of the same clip in the
same process until one faults in little new memory (at most five edits in all; the last is the
warm baseline: the heap kept growing for two or three edits, and the second edit of
``random:256:32`` was still 15-30% slower than the later ones). Every edit is ``videoinv
edit``'s defaults with one SeFa direction (``sefa0=3``), the same chain as ``videoinv bench
speed``. Reported per model: wall seconds, CPU seconds and page faults of each step (the median
of ``runs`` processes), the first edit's overhead over the warm one (seconds and ratio), the
second edit's ratio, and the whole cold command as a user meets it (import + load + first
edit) against the warm edit alone. The clip is
``samples.moving_face`` at 1280x720 with sound; the results go to
benchmarks/results/cold_start.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
EDIT = "sefa0=3"
MOST_EDITS = 5  # per process: the first, then until one faults in fewer than SETTLED pages


def _child(clip: str, out: str, model: str, device: str) -> dict:
    """One cold process's figures (runs in the fresh process)."""
    import resource
    import time

    def usage():
        u = resource.getrusage(resource.RUSAGE_SELF)
        return time.perf_counter(), u.ru_utime + u.ru_stime, u.ru_minflt

    def step(before):
        after = usage()
        wall, cpu, faults = (b - a for a, b in zip(before, after))
        return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "page_faults": faults}, after

    start = usage()
    for name in ("av", "cv2", "dlib", "torch", "videoinv.cli"):  # what an edit loads: the CLI's start-up
        importlib.import_module(name)
    from videoinv.edit.recipe import EditOptions
    from videoinv.models.specs import load_models
    from videoinv.pipeline.jobs import edit_video
    from videoinv.pipeline.speed import SETTLED

    figures = {}
    figures["import"], now = step(start)
    load_models(model, device)
    figures["load"], now = step(now)
    edits = []
    while len(edits) < 2 or (edits[-1]["page_faults"] >= SETTLED and len(edits) < MOST_EDITS):
        summary = edit_video(clip, out, options=EditOptions(edits=[EDIT], model=model, device=device),
                             overwrite=True)
        figures_of_edit, now = step(now)
        edits.append({**figures_of_edit, "frames": summary["frames"]})
    figures["cold"], figures["second"], figures["warm"] = edits[0], edits[1], edits[-1]
    figures["edits"] = len(edits)
    return figures


def _median(rows: list[dict], step: str, field: str) -> float | int:
    value = statistics.median(row[step][field] for row in rows)
    return int(value) if field == "page_faults" else round(value, 3)


def measure(models: list[str], frames: int, runs: int, device: str, progress=print) -> dict:
    from videoinv import samples

    report: dict = {"benchmark": "cold_start", "frames": frames, "size": "1280x720", "edit": EDIT,
                    "device": device, "runs": runs, "models": []}
    with tempfile.TemporaryDirectory(prefix="videoinv-cold-") as tmp:
        clip, out = Path(tmp) / "clip.mp4", Path(tmp) / "out.mp4"
        samples.write_clip(clip, samples.moving_face(), frames, audio=True)
        for model in models:
            rows = []
            for i in range(runs):
                done = subprocess.run([sys.executable, __file__, "--child", str(clip), str(out), model, device],
                                      capture_output=True, text=True)
                if done.returncode:
                    raise SystemExit(f"{model}: the cold run failed:\n{done.stderr[-2000:]}")
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
                cold, warm = rows[-1]["cold"]["wall_s"], rows[-1]["warm"]["wall_s"]
                progress(f"{model} run {i + 1}/{runs}: import {rows[-1]['import']['wall_s']} s, load "
                         f"{rows[-1]['load']['wall_s']} s, first edit {cold} s, warm edit {warm} s "
                         f"(edit {rows[-1]['edits']})")
            entry = {"model": model, "runs": rows}
            for step in ("import", "load", "cold", "second", "warm"):
                entry[step] = {field: _median(rows, step, field) for field in ("wall_s", "cpu_s", "page_faults")}
            entry["cold_overhead_s"] = round(entry["cold"]["wall_s"] - entry["warm"]["wall_s"], 3)
            entry["cold_over_warm"] = round(entry["cold"]["wall_s"] / entry["warm"]["wall_s"], 3)
            entry["second_over_warm"] = round(entry["second"]["wall_s"] / entry["warm"]["wall_s"], 3)
            command = entry["import"]["wall_s"] + entry["load"]["wall_s"] + entry["cold"]["wall_s"]
            entry["command_s"] = round(command, 3)
            entry["command_over_warm"] = round(command / entry["warm"]["wall_s"], 3)
            report["models"].append(entry)
    return report


def table(report: dict) -> str:
    head = (f"cold start: {report['frames']} frames {report['size']}, edit {report['edit']}, median of "
            f"{report['runs']} fresh processes")
    lines = [head, f"{'model':<14}{'import':>8}{'load':>7}{'first':>8}{'second':>8}{'warm':>8}{'first-warm':>12}"
                   f"{'first/warm':>12}{'second/warm':>13}{'command/warm':>14}{'first faults':>14}{'warm faults':>13}"]
    for e in report["models"]:
        lines.append(f"{e['model']:<14}{e['import']['wall_s']:>8.2f}{e['load']['wall_s']:>7.2f}"
                     f"{e['cold']['wall_s']:>8.2f}{e['second']['wall_s']:>8.2f}{e['warm']['wall_s']:>8.2f}"
                     f"{e['cold_overhead_s']:>12.2f}{'x%.2f' % e['cold_over_warm']:>12}"
                     f"{'x%.2f' % e['second_over_warm']:>13}{'x%.2f' % e['command_over_warm']:>14}"
                     f"{e['cold']['page_faults']:>14}{e['warm']['page_faults']:>13}")
    lines.append("seconds of wall time; warm = the last edit of a process (until one faults in little new "
                 "memory); command = import + load + first edit, what `videoinv edit` costs")
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(_child(*sys.argv[2:6])))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="random:256:32,random:256")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=RESULTS / "cold_start.json")
    args = ap.parse_args()
    from videoinv.pipeline.allocator import in_use, relaunch_with_jemalloc

    relaunch_with_jemalloc([sys.executable, *sys.argv])  # as `videoinv` runs; the children inherit it
    report = measure(args.models.split(","), args.frames, args.runs, args.device,
                     progress=lambda text: print(text, flush=True))
    report["allocator"] = in_use()
    print(table(report))
    print(f"malloc: {report['allocator']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
