"""What the x264 preset costs and buys: encode frames/s, bitrate and fidelity at one CRF.

    python benchmarks/encode_presets.py [--crf 18] [--seconds 3] [--repeats 2]
                                        [--presets ultrafast,veryfast,faster,fast,medium]

Two 1280x720 clips: the sample (a real face moving over a plain background, what `videoinv
sample` writes) and camera-like footage (a moving test pattern with temporal noise, as in
io_throughput.py). Each is decoded to RGB once; then for each preset the RGB frames are encoded
as `videoinv edit` encodes them (the same writer, thread settings and colour conversion), the
runs of the presets interleaved, the best of ``--repeats`` counting. The encoded file is decoded
again and compared with the RGB frames it was made from: PSNR over all frames (RGB, 0..255).
Prints a table and writes benchmarks/results/encode_presets.json. This is the measurement
behind the default preset of libx264 (see ``DEFAULT_PRESET`` in videoinv/video/writer.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from io_throughput import encode_rgb, make_clip, timed  # noqa: E402

from videoinv import samples  # noqa: E402
from videoinv.metrics import image  # noqa: E402
from videoinv.video.reader import Reader  # noqa: E402
from videoinv.video.writer import DEFAULT_PRESET, EncodeOptions  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def decoded(clip: Path):
    with Reader(clip) as reader:
        info = reader.info
        records = list(reader.frames(rgb=True))
    for record in records:
        record.image = record.image.copy()  # marked changed: every frame goes RGB -> YUV -> encoder
    return info, records


def fidelity(out: Path, frames: list[np.ndarray]) -> float:
    """PSNR (dB) of the decoded output against the RGB frames it was encoded from, from the mean
    squared error over all frames."""
    with Reader(out) as reader:
        errors = [image.mse(record.image, original) for record, original in zip(reader.frames(rgb=True), frames)]
    if len(errors) != len(frames):
        raise RuntimeError(f"{out} has {len(errors)} frames, {len(frames)} were encoded")
    mean = float(np.mean(errors))
    return float("inf") if mean == 0 else 10 * math.log10(1 / mean)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crf", type=int, default=18)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--presets", default="ultrafast,veryfast,faster,fast,medium")
    ap.add_argument("--out", type=Path, default=RESULTS / "encode_presets.json")
    args = ap.parse_args()
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="videoinv-presets-") as tmp:
        tmp = Path(tmp)
        clips = {"sample": tmp / "sample.mp4", "camera-like": tmp / "camera.mp4"}
        samples.write_clip(clips["sample"], samples.moving_face(), round(args.seconds * 30), audio=False)
        make_clip(clips["camera-like"], "1280x720", args.seconds)
        for name, clip in clips.items():
            info, records = decoded(clip)
            frames = [r.image.copy() for r in records]
            times: dict[str, list[float]] = {p: [] for p in presets}
            for _ in range(args.repeats):
                for preset in presets:
                    out = tmp / f"{name}-{preset}.mp4"
                    times[preset].append(timed(lambda: encode_rgb(records, out, info,
                                                                  EncodeOptions(preset=preset, crf=args.crf))))
            for preset in presets:
                out = tmp / f"{name}-{preset}.mp4"
                seconds = len(records) / float(info.fps)
                rows.append({"clip": name, "preset": preset, "frames": len(records),
                             "fps": round(len(records) / min(times[preset]), 1),
                             "mbit_s": round(out.stat().st_size * 8 / seconds / 1e6, 2),
                             "psnr_db": round(fidelity(out, frames), 2)})
    report = {"benchmark": "encode_presets", "codec": "libx264", "crf": args.crf, "size": "1280x720",
              "seconds": args.seconds, "repeats": args.repeats, "default_preset": DEFAULT_PRESET["libx264"],
              "cpus": os.cpu_count(), "machine": platform.machine(), "pyav": av.__version__, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"libx264 crf {args.crf}, 1280x720 from RGB, best of {args.repeats}; {os.cpu_count()} CPUs; "
          f"default preset {DEFAULT_PRESET['libx264']}")
    print(f"{'clip':<12}{'preset':<11}{'fps':>8}{'Mbit/s':>9}{'PSNR dB':>9}")
    for r in rows:
        print(f"{r['clip']:<12}{r['preset']:<11}{r['fps']:>8.1f}{r['mbit_s']:>9.2f}{r['psnr_db']:>9.2f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
