"""The models' float32: in full during a run (torch's default would run cuDNN's convolutions in
TensorFloat-32), and the process's setting put back (tf32 off CUDA: tests/test_failures.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from videoinv import samples
from videoinv.edit.recipe import EditOptions
from videoinv.errors import ChainError
from videoinv.models.tuning import float32_math
from videoinv.pipeline.jobs import edit_video
from videoinv.pipeline.runner import Pipeline
from videoinv.pipeline.stage import Stage
from videoinv.registry import Registry

MODEL = "random:64:16"


def _flags() -> tuple[bool, bool]:
    return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


@pytest.fixture
def tf32_on():
    """Both TF32 flags on (as a user may have set them), and the test's starting state put back."""
    before = _flags()
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("precision") / "moving.mp4"
    samples.write_clip(path, samples.moving_face(640, 360), 6, audio=False)
    return path


def test_an_edit_computes_float32_in_full_and_puts_the_setting_back(clip, tmp_path, tf32_on):
    seen, edited = [], []

    def frame(record):
        seen.append(_flags())
        edited.append(any(face.edited is not None for face in record.faces))

    summary = edit_video(clip, tmp_path / "out.mp4", options=EditOptions(edits=["sefa0=3"], model=MODEL, device="cpu"),
                         on_frame=frame)
    assert summary["frames"] == len(seen) == 6 and all(edited)  # the models ran on every frame
    assert set(seen) == {(False, False)}  # while they ran
    assert _flags() == (True, True)  # the caller's own setting afterwards


def test_float32_math_puts_the_setting_back_after_an_error(tf32_on):
    with pytest.raises(KeyError), float32_math(False):
        assert _flags() == (False, False)
        raise KeyError("stop")
    assert _flags() == (True, True)
    with float32_math(None):  # no preference: torch's setting as it is
        assert _flags() == (True, True)


def _stage(name: str, tf32: bool | None):
    return type(name.title(), (Stage,), {"name": name, "tf32": tf32, "__doc__": f"{name} (test)"})


def test_model_stages_that_disagree_on_tf32_are_refused_before_any_frame(tf32_on):
    registry = Registry(builtin_modules=(), group=None)
    for name, tf32 in (("full", False), ("fast", True), ("plain", None)):
        registry.add_stage(_stage(name, tf32))
    with pytest.raises(ChainError, match="float32 and tf32"):
        Pipeline("full,plain,fast", registry=registry)
    with Pipeline("fast,plain", registry=registry) as pipeline:
        assert pipeline.tf32 is True and _flags() == (True, True)
    with Pipeline("full,plain", registry=registry):
        assert _flags() == (False, False)
    assert _flags() == (True, True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_tf32_edit_stays_close_to_float32(clip, tmp_path):
    frames = {}
    for dtype in ("float32", "tf32"):
        got = []
        edit_video(clip, tmp_path / f"{dtype}.mp4", overwrite=True,
                   options=EditOptions(edits=["sefa0=3"], model=MODEL, device="cuda", dtype=dtype),
                   on_frame=lambda r: got.append(np.array(r.image)))
        frames[dtype] = np.stack(got).astype(int)
    diff = np.abs(frames["float32"] - frames["tf32"])
    assert 0 < diff.max() <= 8  # TF32 really ran (10-bit mantissas) and moved the picture only slightly
