"""`videoinv edit` end to end: frames/s, peak memory and where the time goes.

    python benchmarks/edit_throughput.py [--frames 30] [--models random:256,random:1024] [--device cpu]
                                         [--size 1280x720]

For each model: one run of `edit` (detect, align, invert, edit with a SeFa direction, synthesize,
blend, encode) on a generated single-face clip (``--size``, 720p by default: a 4K clip shows what
grows with the frame rather than with the face), in a fresh process so peak RSS is the run's own;
the busy seconds of every stage (time spent in its process/flush calls, decoding and encoding
included; in a pipelined run they overlap, so their sum exceeds the wall time), and the CPU
seconds of the YUV -> RGB conversions, on whichever thread makes them (swscale's helper threads,
where FFmpeg runs them, as in copy, left out): of whole frames (by the decoder where a stage
wants whole pictures; else by the stage that does, such as detection every few frames) and of
regions (what the stages read of the other frames: the faces' surroundings). The
baseline, run the same way first, is `edit --chain copy` with every frame decoded to RGB and
encoded again: each model's fps is also given as a fraction of it, and its peak memory as the
excess over it. Random weights (speed does not depend on the values). Prints a table and writes
benchmarks/results/edit_throughput.json. No target here: the throughput work sets them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

RUN = r"""
import json, resource, sys, time
from videoinv.edit.recipe import EditOptions
from videoinv.pipeline import jobs
from videoinv.pipeline.runner import Pipeline
from videoinv.video.reader import Reader
from videoinv.video.regions import RegionConverter
clip, out, model, device = sys.argv[1:5]
made, rgb = [], [0.0, 0.0, 0]
def timed(fn, slot):
    def call(*a, **k):
        t = time.thread_time()  # CPU seconds of this thread: swscale's own threads, if any, are left out
        try:
            return fn(*a, **k)
        finally:
            rgb[slot] += time.thread_time() - t
            rgb[2] += slot
    return call
Reader.to_rgb = timed(Reader.to_rgb, 0)
RegionConverter._convert = timed(RegionConverter._convert, 1)
real = Pipeline.__init__
def keep(self, *a, **k):
    real(self, *a, **k)
    made.append(self)
Pipeline.__init__ = keep
t = time.perf_counter()
if model == "copy":  # the baseline: decode and encode only, same harness
    summary = jobs.edit_video(clip, out, "copy", overwrite=True, passthrough=False)
else:
    options = EditOptions(edits=["sefa0=3"], model=model, device=device)
    summary = jobs.edit_video(clip, out, options=options, overwrite=True)
wall = time.perf_counter() - t
stages = {k: round(v, 3) for k, v in made[-1].seconds.items()}
print(json.dumps({"frames": summary["frames"], "wall_s": round(wall, 3), "stage_s": stages, "rgb_cpu_s": round(rgb[0], 3),
                  "region_rgb_cpu_s": round(rgb[1], 3), "regions": rgb[2],
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--models", default="random:256,random:1024")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--size", default="1280x720", help="the clip's WIDTHxHEIGHT")
    ap.add_argument("--out", type=Path, default=RESULTS / "edit_throughput.json")
    args = ap.parse_args()
    from videoinv import samples
    from videoinv.errors import VideoinvError
    from videoinv.video.timing import parse_size

    try:
        width, height = parse_size(args.size)
    except VideoinvError as err:
        ap.error(str(err))
    if width % 2 or height % 2:
        ap.error(f"--size {args.size}: the clip is 4:2:0 video, so its width and height must be even")

    rows = []
    with tempfile.TemporaryDirectory(prefix="videoinv-edit-") as tmp:
        clip = Path(tmp) / "clip.mp4"
        samples.write_clip(clip, samples.moving_face(width, height), args.frames, audio=True)
        for model in ["copy"] + args.models.split(","):
            result = subprocess.run([sys.executable, "-c", RUN, str(clip), str(Path(tmp) / "out.mp4"), model,
                                     args.device], capture_output=True, text=True)
            if result.returncode != 0:
                print(result.stderr, file=sys.stderr)
                return 1
            row = json.loads(result.stdout.strip().splitlines()[-1])
            row["model"] = model
            row["fps"] = round(row["frames"] / row["wall_s"], 3)
            # decode and encode are among the stages; on threads their busy times overlap
            row["busy_sum_s"] = round(sum(row["stage_s"].values()), 3)
            base = rows[0] if rows else row
            row["fps_vs_copy"] = round(row["fps"] / base["fps"], 4)
            row["rss_over_copy_mb"] = round(row["peak_rss_mb"] - base["peak_rss_mb"], 1)
            rows.append(row)
            busy = ", ".join(f"{k.split('#')[0]} {v:.1f}s" for k, v in row["stage_s"].items()) or "no stages"
            print(f"{model:>12}: {row['fps']:6.2f} fps (x{row['fps_vs_copy']:.4f} of copy), peak "
                  f"{row['peak_rss_mb']:7.1f} MB (+{row['rss_over_copy_mb']:.0f}), {busy}, "
                  f"{row['busy_sum_s']:.1f}s busy in {row['wall_s']:.1f}s; whole-frame RGB {row['rgb_cpu_s']:.1f} CPU s, "
                  f"{row['regions']} regions {row['region_rgb_cpu_s']:.1f} CPU s",
                  flush=True)
    report = {"benchmark": "edit_throughput", "size": f"{width}x{height}", "frames": args.frames, "device": args.device,
              "cpus": os.cpu_count(), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
