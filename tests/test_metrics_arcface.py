"""The ArcFace identity backend: InsightFace's checkpoint layout, the five-point alignment, and
clear errors without weights (no real weights here: seeded random ones in the real layout)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from videoinv.errors import VideoinvError
from videoinv.faces.detect import landmarks68
from videoinv.metrics import arcface
from videoinv.metrics.identity import IdentityEncoder, cosine

from metric_faces import astronaut, lfw_face

# names and shapes of InsightFace arcface_torch's iresnet50 state_dict (its backbone.pth)
KNOWN_KEYS = {
    "conv1.weight": (64, 3, 3, 3), "bn1.running_var": (64,), "prelu.weight": (64,),
    "layer1.0.bn1.weight": (64,), "layer1.0.conv1.weight": (64, 64, 3, 3), "layer1.0.prelu.weight": (64,),
    "layer1.0.conv2.weight": (64, 64, 3, 3), "layer1.0.bn3.bias": (64,),
    "layer1.0.downsample.0.weight": (64, 64, 1, 1), "layer1.0.downsample.1.running_mean": (64,),
    "layer3.13.conv2.weight": (256, 256, 3, 3), "layer4.2.bn3.weight": (512,),
    "bn2.weight": (512,), "fc.weight": (512, 25088), "fc.bias": (512,), "features.running_var": (512,),
}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    net = arcface.IResNet()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("arcface") / "backbone.pth"
    torch.save(net.state_dict(), path)
    return path


def test_layout_is_insightfaces_iresnet50(weights):
    state = torch.load(weights, weights_only=True)
    for key, shape in KNOWN_KEYS.items():
        assert tuple(state[key].shape) == shape, key
    params = sum(v.numel() for k, v in state.items() if not k.endswith(("running_mean", "running_var", "tracked")))
    assert 43.5e6 < params < 43.7e6  # iresnet50: about 43.6 M parameters (a 166 MB backbone.pth)


def test_embeddings_are_unit_512_and_tell_faces_apart(weights, monkeypatch):
    monkeypatch.setenv("VIDEOINV_ARCFACE", str(weights))
    encoder = IdentityEncoder("arcface")
    a = encoder.embed(astronaut())
    assert encoder.dim == 512 and a.shape == (512,) and np.linalg.norm(a) == pytest.approx(1.0)
    assert cosine(a, encoder.embed(astronaut())) == pytest.approx(1.0, abs=1e-9)
    noisy = np.clip(astronaut() + np.random.default_rng(0).normal(0, 3, astronaut().shape), 0, 255).astype(np.uint8)
    other = cosine(a, encoder.embed(lfw_face(3)))
    assert cosine(a, encoder.embed(noisy)) > other


def test_five_points_land_on_the_template():
    face = astronaut()
    points = arcface.five_points(landmarks68(face, np.array([60.0, 90.0, 200.0, 230.0])))
    import cv2

    matrix, _ = cv2.estimateAffinePartial2D(points, arcface.TEMPLATE, method=cv2.LMEDS)
    moved = points @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(moved - arcface.TEMPLATE).max() < 8  # a similarity fits a real (smiling) face within a few px
    aligned = arcface.aligned_112(face, points)
    assert aligned.shape == (112, 112, 3)
    again = arcface.five_points(landmarks68(aligned, np.array([20.0, 30.0, 92.0, 106.0])))
    assert np.abs(again[:2] - arcface.TEMPLATE[:2]).max() < 6  # the eyes are where ArcFace expects them


def test_missing_or_wrong_weights_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDEOINV_ARCFACE", str(tmp_path / "none.pth"))
    with pytest.raises(VideoinvError, match="VIDEOINV_ARCFACE"):
        IdentityEncoder("arcface")
    wrong = tmp_path / "wrong.pth"
    torch.save({"layer2.0.conv1.weight": torch.zeros(1)}, wrong)
    monkeypatch.setenv("VIDEOINV_ARCFACE", str(wrong))
    with pytest.raises(VideoinvError, match="not an arcface_torch"):
        IdentityEncoder("arcface")
