"""compare_videos on real clips of a real face written with PyAV."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import av
import cv2
import numpy as np
import pytest

from test_metrics_lpips import fake_checkpoint, needs_wheel
from videoinv import samples
from videoinv.errors import InputError, VideoinvError
from videoinv.metrics.compare import compare_videos
from videoinv.video.reader import Reader

FRAMES = 6


def _write(path, frames, fps=30):
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.height, vs.width = frames[0].shape[:2]
        vs.pix_fmt = "yuv444p"
        vs.options = {"qp": "0", "preset": "ultrafast"}
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode(None):
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    source = root / "source.mp4"
    samples.write_clip(source, samples.moving_face(640, 360), FRAMES)
    with Reader(source) as r:
        decoded = [f.image for f in r]
    blurred = _write(root / "blurred.mp4", [cv2.GaussianBlur(f, (0, 0), 2.5) for f in decoded])
    short = _write(root / "short.mp4", decoded[:-2])
    small = _write(root / "small.mp4", [cv2.resize(f, (320, 180)) for f in decoded])
    # every other frame moved 20 px right: the face wobbles in B where A's is smooth
    shift = np.float32([[1, 0, 20], [0, 1, 0]])
    wobbling = _write(root / "wobbling.mp4", [cv2.warpAffine(f, shift, f.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
                                              if i % 2 else f for i, f in enumerate(decoded)])
    middle = _write(root / "middle.mp4", decoded[2:5])  # as an edit of frames 2-4 (--start 2f --end 5f)
    return {"source": source, "blurred": blurred, "short": short, "small": small, "wobbling": wobbling,
            "middle": middle}


@pytest.fixture(scope="module")
def results(clips, tmp_path_factory):
    import os

    home = os.environ.get("TORCH_HOME")
    try:
        os.environ["TORCH_HOME"] = str(tmp_path_factory.mktemp("no-lpips"))  # no backbone: LPIPS unavailable
        same = compare_videos(clips["source"], clips["source"])
        with_backbone = tmp_path_factory.mktemp("lpips")
        fake_checkpoint("alex", with_backbone)  # random values in torchvision's layout
        os.environ["TORCH_HOME"] = str(with_backbone)
        blurred = compare_videos(clips["source"], clips["blurred"])
    finally:
        if home is None:
            del os.environ["TORCH_HOME"]
        else:
            os.environ["TORCH_HOME"] = home
    return same, blurred


def test_a_clip_against_itself_is_perfect(results):
    same, _ = results
    json.dumps(same, allow_nan=False)
    assert same["frames"] == FRAMES and same["frames_with_face"] == FRAMES and same["crop_size"] == 256
    s = same["summary"]
    assert s["mse"] == 0.0 and s["psnr"] is None and s["ssim"] == pytest.approx(1.0)
    assert s["id"] == pytest.approx(1.0) and s["tl_id"] == pytest.approx(1.0) and s["tg_id"] == pytest.approx(1.0)
    assert s["warp_error"] == s["warp_error_source"] > 0  # the face moves: the source has its own floor
    assert s["landmark_jitter"] == s["landmark_jitter_source"]
    assert s["seam"] == 0.0 and 0.8 < s["mask_iou"] <= 1.0
    assert s["mask_iou"] == s["mask_iou_source"] and s["mask_boundary_change"] == s["mask_boundary_change_source"]
    assert same["lpips_unavailable"].startswith("LPIPS unavailable") and s["lpips"] is None
    pf = same["per_frame"]
    assert pf["index"] == list(range(FRAMES)) and len(pf["ssim"]) == FRAMES
    assert pf["warp_index"] == list(range(1, FRAMES)) and len(pf["warp_error"]) == FRAMES - 1


@needs_wheel
def test_a_blurred_copy_scores_worse(results):
    same, blurred = results
    json.dumps(blurred, allow_nan=False)
    s = blurred["summary"]
    assert s["mse"] > 0 and 15 < s["psnr"] < 40 and s["ssim"] < 0.95
    assert all(v < 1 for v in blurred["per_frame"]["ssim"])
    assert s["id"] < 1.0 and s["seam"] > 0
    assert blurred["lpips_unavailable"] is None and s["lpips"] > 0
    # the blur changes every frame the same way: the blurred video is about as stable as the source
    assert s["tl_id"] == pytest.approx(1.0, abs=0.05)
    assert s["warp_error"] < s["warp_error_source"] * 1.5


def test_a_wobbling_face_in_b_has_a_less_stable_mask(clips):
    wobbling = compare_videos(clips["source"], clips["wobbling"], identity_backend=None, lpips_net=None)
    s = wobbling["summary"]
    # the mask flicker is measured on B's own face, not only on A's (which B cannot change)
    assert s["mask_iou"] < s["mask_iou_source"] - 0.03
    assert s["mask_boundary_change"] > s["mask_boundary_change_source"] + 0.05
    assert s["landmark_jitter"] > s["landmark_jitter_source"]


def test_mismatched_videos_are_refused(clips):
    with pytest.raises(InputError, match="different sizes") as err:
        compare_videos(clips["source"], clips["small"], identity_backend=None, lpips_net=None)
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="frame"):
        compare_videos(clips["source"], clips["short"], identity_backend=None, lpips_net=None)


def test_b_made_from_part_of_a_is_compared_with_that_part(clips, tmp_path):
    # an edit of a range is shorter than its source: compare was refused, with no way to say which part
    with pytest.raises(InputError, match="give that part with --start/--end") as err:
        compare_videos(clips["source"], clips["middle"], identity_backend=None, lpips_net=None)
    assert "\n" not in str(err.value)
    part = compare_videos(clips["source"], clips["middle"], identity_backend=None, lpips_net=None, start="2f", end="5f")
    assert part["frames"] == 3 and part["per_frame"]["index"] == [2, 3, 4]  # A's own frame numbers
    assert part["summary"]["psnr"] > 45  # frame for frame the same pictures (x264 at qp 0)
    shifted = compare_videos(clips["source"], clips["middle"], identity_backend=None, lpips_net=None, start="1f",
                             end="4f")
    assert shifted["summary"]["psnr"] < part["summary"]["psnr"] - 10
    # from the command line, as edit takes the range
    result = subprocess.run([sys.executable, "-m", "videoinv", "bench", "compare", str(clips["source"]),
                             str(clips["middle"]), "--start", "2f", "--end", "5f", "--json", "--identity", "dlib"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == 3
    # a range that holds nothing of A is named as edit names it, not as B "going on"
    for start, end, words in [("6f", None, "--start 6f is past the end of"), ("4f", "2f", "--end 2f is not after")]:
        with pytest.raises(VideoinvError, match=re.escape(words)):
            compare_videos(clips["source"], clips["middle"], identity_backend=None, lpips_net=None, start=start, end=end)
