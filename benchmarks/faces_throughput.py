"""Face stages throughput and alignment jitter on generated 1280x720 clips of a real face.

    python benchmarks/faces_throughput.py [--frames 150] [--crop 1024] [--repeats 2]

Frames/s of detect + landmarks + track + align (smoothed quads and aligned crops) with the
detector run every 1, 5 and 10 frames, on frames decoded beforehand (the stages alone) and end to
end from the file; the every-frame detection is the baseline of the ratios. Jitter: the std of the
second differences of the quad corners (px), raw (from each frame's landmarks) and smoothed
(streaming and offline), plus the mean corner error against the true path the clip was drawn
with. Prints a table and writes benchmarks/results/faces_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from videoinv import samples
from videoinv.faces.quad import quad_from_landmarks
from videoinv.metrics.temporal import jitter
from videoinv.pipeline.runner import Pipeline, prefetch
from videoinv.video.reader import Reader

RESULTS = Path(__file__).resolve().parent / "results"


def stage_fps(frames, chain: str, repeats: int) -> tuple[float, list]:
    best, out = float("inf"), []
    for _ in range(repeats):
        records = [_copy(r) for r in frames]
        t = time.perf_counter()
        out = list(Pipeline(chain, batch_size=8).run(records))
        best = min(best, time.perf_counter() - t)
    return len(frames) / best, out


def _copy(record):
    from videoinv.video.frame import FrameRecord

    return FrameRecord(record.index, record.pts, record.time_base, image=record.image)


def end_to_end_fps(path, chain: str) -> float:
    t = time.perf_counter()
    with Reader(path) as reader:
        n = sum(1 for _ in Pipeline(chain, batch_size=8).run(prefetch(reader.frames(), depth=16)))
    return n / (time.perf_counter() - t)


def corners(records) -> tuple[np.ndarray, np.ndarray]:
    """Raw (from the landmarks) and smoothed quad corners of the first face, per frame."""
    raw = np.stack([quad_from_landmarks(r.faces[0].landmarks).corners() for r in records])
    smooth = np.stack([r.faces[0].quad.corners() for r in records])
    return raw, smooth


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--crop", type=int, default=1024, help="aligned crop size")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS / "faces_throughput.json")
    args = ap.parse_args()
    scene = samples.moving_face()
    rows, jitters = [], {}
    with tempfile.TemporaryDirectory(prefix="videoinv-faces-") as tmp:
        clip = Path(tmp) / "moving.mp4"
        samples.write_clip(clip, scene, args.frames)
        with Reader(clip) as reader:
            frames = list(reader.frames(rgb=True))
        truth = np.stack([quad_from_landmarks(scene.true_landmarks(0, i)).corners() for i in range(args.frames)])
        base = None
        for every in (1, 5, 10):
            chain = f"detect=every={every},align=size={args.crop}"
            fps, out = stage_fps(frames, chain, args.repeats)
            e2e = end_to_end_fps(clip, chain)
            no_crop, _ = stage_fps(frames, f"detect=every={every},align=crops=no", 1)
            base = base or fps
            rows.append({"every": every, "stages_fps": round(fps, 1), "end_to_end_fps": round(e2e, 1),
                         "stages_fps_without_crops": round(no_crop, 1), "ratio_vs_every_frame": round(fps / base, 2)})
            print(f"detect every {every:2d}: stages {fps:6.1f} fps, end to end {e2e:6.1f} fps, "
                  f"without crops {no_crop:6.1f} fps (x{fps / base:.2f} vs every frame)", flush=True)
        for mode in ("stream", "offline", "none"):
            chain = f"detect=every=5,align=crops=no:smooth={mode}"
            pipeline = Pipeline(chain, batch_size=8)
            if pipeline.needs_prepass:
                pipeline.prepass(_copy(r) for r in frames)
            out = list(pipeline.run(_copy(r) for r in frames))
            raw, smooth = corners(out)
            jitters[mode] = {"jitter_px": round(jitter(smooth), 3),
                             "error_vs_true_px": round(float(np.abs(smooth - truth).mean()), 3)}
            jitters["raw"] = {"jitter_px": round(jitter(raw), 3),
                              "error_vs_true_px": round(float(np.abs(raw - truth).mean()), 3)}
        jitters["true_path"] = {"jitter_px": round(jitter(truth), 3), "error_vs_true_px": 0.0}
    print("quad corner jitter (std of 2nd differences, px) and error against the true path:")
    for name, v in jitters.items():
        print(f"  {name:>9}: jitter {v['jitter_px']:6.3f}  error {v['error_vs_true_px']:6.3f}")
    report = {"benchmark": "faces_throughput", "size": "1280x720", "frames": args.frames, "crop": args.crop,
              "cpus": os.cpu_count(), "rows": rows, "jitter": jitters, "target": ">= 30 fps at detect every 5"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
