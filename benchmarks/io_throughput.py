"""Video I/O throughput: decode to RGB, encode from RGB, `edit --chain copy`, and the ffmpeg
program doing the same transcode, all in one run on the same clips.

    python benchmarks/io_throughput.py [--preset veryfast --crf 18 --seconds 10 --repeats 3]

Prints a table and writes benchmarks/results/io_throughput.json. Each figure is the best of
``--repeats`` runs, and the runs of the things compared are interleaved, because shared machines
are noisy. The target: `edit --chain copy` >= 0.8x the ffmpeg program's frames/s at the same
preset and CRF.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import av

from videoinv.pipeline.jobs import edit_video
from videoinv.video.reader import Reader
from videoinv.video.writer import EncodeOptions, Writer

RESULTS = Path(__file__).resolve().parent / "results"


def make_clip(path: Path, size: str, seconds: float) -> None:
    """Camera-like content: moving test pattern with temporal noise, BT.709 tagged, AAC audio."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate=30:duration={seconds},noise=alls=4:allf=t",
                    "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
                    "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
                    "-color_range", "tv", "-c:a", "aac", "-shortest", str(path)], check=True)


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def decode_rgb(clip: Path) -> int:
    with Reader(clip) as reader:
        return sum(1 for _ in reader.frames(rgb=True))


def encode_rgb(frames, out: Path, info, options: EncodeOptions) -> None:
    with Writer(out, info.width, info.height, info.time_base, info.fps, options, overwrite=True) as w:
        for record in frames:
            w.write(record)


def ffmpeg_transcode(clip: Path, out: Path, preset: str, crf: int) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(clip), "-c:v", "libx264", "-preset", preset,
                    "-crf", str(crf), "-c:a", "copy", str(out)], check=True)


def best(runs: dict[str, list[float]], frames: int) -> dict[str, float]:
    return {name: frames / min(times) for name, times in runs.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--crf", type=int, default=18)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", default="1280x720,1920x1080")
    ap.add_argument("--encode-frames", type=int, default=120, help="frames held in memory for the encode test")
    ap.add_argument("--out", type=Path, default=RESULTS / "io_throughput.json")
    args = ap.parse_args()
    if shutil.which("ffmpeg") is None:
        print("the ffmpeg program is needed for the comparison (scripts/setup.sh installs it)", file=sys.stderr)
        return 1
    options = EncodeOptions(preset=args.preset, crf=args.crf)
    rows = []
    with tempfile.TemporaryDirectory(prefix="videoinv-bench-") as tmp:
        tmp = Path(tmp)
        for size in args.sizes.split(","):
            clip = tmp / f"clip_{size}.mp4"
            make_clip(clip, size, args.seconds)
            with Reader(clip) as reader:
                info = reader.info
                held = [r for _, r in zip(range(args.encode_frames), reader.frames(rgb=True))]
            n = decode_rgb(clip)
            encode_held = partial(encode_rgb, held, tmp / "enc.mp4", info, options)
            runs: dict[str, list[float]] = {k: [] for k in ("decode_rgb", "encode_rgb", "edit_copy",
                                                              "edit_copy_rgb", "ffmpeg")}
            for _ in range(args.repeats):  # interleaved, so drift in machine load hits all alike
                runs["decode_rgb"].append(timed(lambda: decode_rgb(clip)))
                runs["encode_rgb"].append(timed(encode_held))
                runs["ffmpeg"].append(timed(lambda: ffmpeg_transcode(clip, tmp / "cli.mp4", args.preset, args.crf)))
                runs["edit_copy"].append(timed(lambda: edit_video(clip, tmp / "ours.mp4", "copy", encode=options,
                                                                  overwrite=True)))
                runs["edit_copy_rgb"].append(timed(lambda: edit_video(clip, tmp / "ours_rgb.mp4", "copy",
                                                                      encode=options, overwrite=True,
                                                                      passthrough=False)))
            fps = best({k: v for k, v in runs.items() if k != "encode_rgb"}, n)
            fps["encode_rgb"] = len(held) / min(runs["encode_rgb"])
            rows.append({"size": size, "frames": n, "fps": {k: round(v, 1) for k, v in fps.items()},
                         "ratio_edit_copy_vs_ffmpeg": round(fps["edit_copy"] / fps["ffmpeg"], 3),
                         "ratio_edit_copy_rgb_vs_ffmpeg": round(fps["edit_copy_rgb"] / fps["ffmpeg"], 3),
                         "runs_seconds": {k: [round(t, 3) for t in v] for k, v in runs.items()}})
            del held
    report = {"benchmark": "io_throughput", "preset": args.preset, "crf": args.crf, "seconds": args.seconds,
              "repeats": args.repeats, "cpus": os.cpu_count(), "machine": platform.machine(),
              "python": platform.python_version(), "pyav": av.__version__,
              "ffmpeg": subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0],
              "target": "edit --chain copy >= 0.8x ffmpeg", "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    header = f"{'size':>10} {'decode->RGB':>12} {'RGB->encode':>12} {'edit copy':>10} {'via RGB':>9} " \
             f"{'ffmpeg':>8} {'copy/ffmpeg':>12} {'RGB/ffmpeg':>11}"
    print(f"frames/s, best of {args.repeats}; libx264 preset {args.preset} crf {args.crf}; {os.cpu_count()} CPUs")
    print(header)
    for r in rows:
        f = r["fps"]
        print(f"{r['size']:>10} {f['decode_rgb']:>12.1f} {f['encode_rgb']:>12.1f} {f['edit_copy']:>10.1f} "
              f"{f['edit_copy_rgb']:>9.1f} {f['ffmpeg']:>8.1f} {r['ratio_edit_copy_vs_ffmpeg']:>12.2f} "
              f"{r['ratio_edit_copy_rgb_vs_ffmpeg']:>11.2f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
