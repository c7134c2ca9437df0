"""Our own LPIPS (AlexNet/VGG16) on torchvision-layout checkpoints filled with seeded random
values (the real ones cannot be downloaded here) and the linear layers of the installed lpips
wheel; the forward pass is re-derived in float64 numpy as a second, independent formulation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from metric_faces import astronaut
from videoinv.metrics import lpips as L
from videoinv.metrics.image import to_unit

# torchvision's features.N conv layers: index -> (in, out, kernel, stride, padding)
ALEX_CONVS = {0: (3, 64, 11, 4, 2), 3: (64, 192, 5, 1, 2), 6: (192, 384, 3, 1, 1), 8: (384, 256, 3, 1, 1),
              10: (256, 256, 3, 1, 1)}
VGG_CONVS = dict(zip([0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28],
                     [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256), (256, 512),
                      (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]))
VGG_CONVS = {i: (a, b, 3, 1, 1) for i, (a, b) in VGG_CONVS.items()}
CONVS = {"alex": ALEX_CONVS, "vgg": VGG_CONVS}

needs_wheel = pytest.mark.skipif(L.importlib.util.find_spec("lpips") is None,
                                 reason="the lpips wheel (linear weights) is not installed: pip install --no-deps lpips")


CLASSIFIERS = {"alex": {1: (4096, 256 * 6 * 6), 4: (4096, 4096), 6: (1000, 4096)},
               "vgg": {0: (4096, 512 * 7 * 7), 3: (4096, 4096), 6: (1000, 4096)}}


def fake_checkpoint(net: str, torch_home, seed: int = 0, classifier: bool = False) -> dict:
    """A checkpoint with torchvision's keys and shapes: the features, and the last classifier
    bias or (``classifier``, for torchvision's strict loading) the whole classifier as zeros."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for i, (cin, cout, k, _, _) in CONVS[net].items():
        state[f"features.{i}.weight"] = torch.randn(cout, cin, k, k, generator=g) * (2 / (cin * k * k)) ** 0.5
        state[f"features.{i}.bias"] = torch.randn(cout, generator=g) * 0.01
    state["classifier.6.bias"] = torch.zeros(1000)
    for i, shape in (CLASSIFIERS[net].items() if classifier else ()):
        state[f"classifier.{i}.weight"] = torch.zeros(shape)
        state[f"classifier.{i}.bias"] = torch.zeros(shape[0])
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / L.BACKBONE_FILES[net])
    return state


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return tmp_path


@needs_wheel
@pytest.mark.parametrize("net,values", [("alex", 1152), ("vgg", 1472)])
def test_lin_weights_from_the_wheel(net, values):
    state = torch.load(L.lin_weights_path(net), map_location="cpu", weights_only=True)
    assert sorted(state) == [f"lin{k}.model.1.weight" for k in range(5)]
    assert sum(v.numel() for v in state.values()) == values
    assert all(v.shape[0] == 1 and v.shape[2:] == (1, 1) and (v >= 0).all() for v in state.values())


def test_missing_backbone_names_file_and_place(torch_home):
    with pytest.raises(L.LPIPSUnavailable) as err:
        L.LPIPS("alex")
    message = str(err.value)
    assert "alexnet-owt-7be5be79.pth" in message and str(torch_home / "hub" / "checkpoints") in message
    assert message.startswith("LPIPS unavailable") and "\n" not in message
    assert L.lpips_unavailable_reason("vgg").startswith("LPIPS unavailable")


@needs_wheel
def test_wrong_checkpoint_is_refused(torch_home):
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save({"features.0.weight": torch.zeros(3, 3)}, folder / L.BACKBONE_FILES["alex"])
    with pytest.raises(L.LPIPSUnavailable, match="not torchvision's alex"):
        L.LPIPS("alex")


# -- an independent float64 re-derivation ------------------------------------------------------
def _conv(x, w, b, stride, pad):
    """x [C,H,W], w [O,C,k,k] -> [O,H',W'] by explicit patches (im2col)."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    k = w.shape[2]
    h = (x.shape[1] - k) // stride + 1
    v = (x.shape[2] - k) // stride + 1
    patches = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride][:, :h, :v]
    return np.einsum("chwij,ocij->ohw", patches, w) + b[:, None, None]


def _pool(x, k):
    h, w = (x.shape[1] - k) // 2 + 1, (x.shape[2] - k) // 2 + 1
    return np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::2, ::2][:, :h, :w].max(axis=(3, 4))


def reference_lpips(net, state, lin, a, b) -> float:
    convs = CONVS[net]
    last = max(convs)
    taps, pool = ({1, 4, 7, 9, 11}, 3) if net == "alex" else ({3, 8, 15, 22, 29}, 2)
    pools = {2, 5} if net == "alex" else {4, 9, 16, 23}

    def features(img):
        x = (to_unit(img).transpose(2, 0, 1) * 2 - 1 - np.array(L.SHIFT)[:, None, None]) / np.array(L.SCALE)[:, None, None]
        out = []
        for i in range(last + 2):
            if i in convs:
                _, _, _, s, p = convs[i]
                x = _conv(x, state[f"features.{i}.weight"].double().numpy(), state[f"features.{i}.bias"].double().numpy(), s, p)
            elif i in pools:
                x = _pool(x, pool)
            else:
                x = np.maximum(x, 0)
            if i in taps:
                out.append(x)
        return out

    total = 0.0
    for k, (u, v) in enumerate(zip(features(a), features(b))):
        u = u / (np.sqrt((u ** 2).sum(0)) + 1e-10)
        v = v / (np.sqrt((v ** 2).sum(0)) + 1e-10)
        w = lin[f"lin{k}.model.1.weight"].double().numpy().reshape(-1, 1, 1)
        total += float(((u - v) ** 2 * w).sum(0).mean())
    return total


@needs_wheel
@pytest.mark.parametrize("net,size", [("alex", 64), pytest.param("vgg", 32, marks=pytest.mark.slow)])
def test_matches_float64_reference(net, size, torch_home):
    state = fake_checkpoint(net, torch_home, seed=1)
    metric = L.LPIPS(net)
    assert metric.backend == "own" and L.lpips_unavailable_reason(net) is None
    a = cv2.resize(astronaut(256), (size, size), interpolation=cv2.INTER_AREA)
    b = np.clip(a + np.random.default_rng(0).normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    lin = torch.load(L.lin_weights_path(net), map_location="cpu", weights_only=True)
    expected = reference_lpips(net, state, lin, a, b)
    assert expected > 0
    assert metric(a, b) == pytest.approx(expected, rel=1e-4)


@needs_wheel
def test_identical_zero_and_blur_ordering(torch_home):
    fake_checkpoint("alex", torch_home)
    metric = L.LPIPS("alex")
    face = astronaut(256)
    assert metric(face, face) == 0.0
    d = [metric(face, cv2.GaussianBlur(face, (0, 0), s)) for s in (0.5, 1.0, 2.0, 4.0, 8.0)]
    assert d == sorted(d) and d[0] > 0
    batch = metric.distances(np.stack([face, face]), np.stack([face, cv2.GaussianBlur(face, (0, 0), 2.0)]))
    assert batch[0] == 0 and batch[1] == pytest.approx(d[2], rel=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(L._package() is None, reason="the lpips package does not import here (needs torchvision)")
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_own_matches_the_lpips_package(net, torch_home):
    fake_checkpoint(net, torch_home, seed=2, classifier=True)  # torchvision loads it from TORCH_HOME
    face = astronaut(128)
    other = cv2.GaussianBlur(face, (0, 0), 1.5)
    own = L.LPIPS(net, backend="own")(face, other)
    package = L.LPIPS(net, backend="lpips")
    assert package.backend == "lpips"
    assert own == pytest.approx(package(face, other), rel=1e-4)
