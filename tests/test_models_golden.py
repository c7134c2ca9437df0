"""The generator, encoder, edit primitive and preprocessing reproduce the reference
implementations' outputs (the golden vectors in ../shared/golden, made with synthetic weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from videoinv.edit.feature import corrected_feature, feature_edit
from videoinv.models import FeatureStyleEncoder, StyleGAN2Generator, encoder_input
from videoinv.models.encoder import fold_batchnorm, inference_encoder
from videoinv.models.ops import ModulatedConv2d

GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "golden"
pytestmark = pytest.mark.skipif(not GOLDEN.is_dir(), reason=f"golden vectors not found: {GOLDEN} is absent")
ATOL = 1e-4


def rebuild(keys_file: str) -> dict:
    """The synthetic weights, by the recipe in golden/README.md."""
    keys = json.loads((GOLDEN / keys_file).read_text())
    g = torch.Generator().manual_seed(20261121)
    sd = {}
    for name, shape, dtype, scale, offset in keys:
        if scale is None:
            sd[name] = torch.tensor(offset, dtype=getattr(torch, dtype)).broadcast_to(shape).clone()
        else:
            sd[name] = torch.randn(shape, generator=g, dtype=torch.float32) * scale + offset
    return sd


def vectors(name: str) -> dict:
    with np.load(GOLDEN / f"{name}.npz") as data:
        return {k: torch.from_numpy(np.asarray(v)) for k, v in data.items()}


def close(actual: torch.Tensor, expected: torch.Tensor, atol: float | None = None) -> None:
    assert actual.shape == expected.shape
    atol = atol or (ATOL if actual.device.type == "cpu" else 1e-3)
    err = float((actual.double().cpu() - expected.double().cpu()).abs().max())
    assert err <= atol, f"max abs error {err:.2e} > {atol:.0e}"


@pytest.fixture(scope="module", params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request):
    """CPU float32 (atol 1e-4), and on a CUDA machine float32 with TF32 off (atol 1e-3)."""
    if request.param == "cuda":
        if not torch.cuda.is_available():
            pytest.skip("no CUDA device")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return request.param


@pytest.fixture(scope="module")
def g256(device):
    G = StyleGAN2Generator(size=256, style_dim=512, n_mlp=8, channel_multiplier=2)
    G.load_state_dict(rebuild("keys_generator_256.json"), strict=True)
    return G.eval().to(device)


@pytest.fixture(scope="module")
def loaded_encoder(device):
    E = FeatureStyleEncoder(n_styles=18)
    E.load_state_dict(rebuild("keys_fse_encoder.json"), strict=True)
    return E.eval().to(device)


@pytest.fixture(params=["as loaded", "batchnorm folded"])
def encoder(request, loaded_encoder):
    """The encoder as loaded, and the copy the invert stage runs (its BatchNorms folded into
    the convs): both must reproduce the reference."""
    return loaded_encoder if request.param == "as loaded" else inference_encoder(loaded_encoder)


@pytest.fixture(scope="module")
def v256(device):
    return {k: v.to(device) for k, v in vectors("gen256").items()}


@pytest.fixture(params=["grouped", "shared"])
def conv_mode(request, monkeypatch):
    monkeypatch.setattr(ModulatedConv2d, "mode", request.param)
    return request.param


@torch.no_grad()
def test_mapping_and_synthesis(g256, v256, conv_mode):
    close(g256.mapping(v256["in_z"]), v256["out_w_from_z"])
    close(g256.synthesize(v256["in_wplus"]), v256["out_image"])


@torch.no_grad()
def test_truncation(g256, v256):
    w = g256.truncate(g256.mapping(v256["in_z"][0:1]), float(v256["in_psi"]), v256["in_latent_avg"])
    close(g256.synthesize(w), v256["out_image_trunc_z0"])


@torch.no_grad()
def test_layer5_features_and_injection(g256, v256, conv_mode):
    k = int(v256["in_K"])
    assert k == 5
    close(g256.features_at(v256["in_wplus"], k=k), v256["out_featK"])
    close(g256.synthesize(v256["in_wplus"], feature=v256["in_F"], k=k), v256["out_image_from_F"])


@torch.no_grad()
def test_edit_primitive(g256, v256):
    w = v256["in_wplus"]
    w_edit = w + float(v256["in_alpha"]) * v256["in_direction"].reshape(1, 14, 512)
    close(w_edit, v256["out_w_edit"])
    close(corrected_feature(g256, w, v256["in_F"], w_edit), v256["out_F_edit"])
    close(feature_edit(g256, w, v256["in_F"], w_edit), v256["out_image_edit"])


@torch.no_grad()
def test_float64_path_matches_too(g256, v256):
    G = StyleGAN2Generator(256).double().to(g256.input.input.device)
    G.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in g256.state_dict().items()})
    close(G.synthesize(v256["in_wplus"].double(), feature=v256["in_F"].double(), k=5), v256["out_image_from_F"])


@torch.no_grad()
def test_encoder(encoder, device):
    e = vectors("fse_encoder")
    w_raw, feat = encoder(e["in_image"].to(device))
    close(w_raw, e["out_w_raw"])
    close(feat, e["out_F"])


@torch.no_grad()
def test_preprocessing_1024_to_256():
    p = vectors("preprocess")
    x = p["in_image"]  # 64 -> 16 stands in for 1024 -> 256 (the same two halvings)
    halved = F.interpolate(F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False),
                           scale_factor=0.5, mode="bilinear", align_corners=False)
    close(halved, p["out_image"])
    big = torch.nn.functional.interpolate(x, size=(1024, 1024), mode="nearest")
    close(encoder_input(big), F.avg_pool2d(big, 4), atol=1e-6)  # equal to a 4x4 box average


@pytest.mark.slow
@torch.no_grad()
def test_encoder_to_1024_generator_pipeline(encoder, device):
    e, p = vectors("fse_encoder"), {k: v.to(device) for k, v in vectors("fse_pipeline_1024").items()}
    G = StyleGAN2Generator(size=1024)
    G.load_state_dict(rebuild("keys_generator_1024.json"), strict=True)
    G.eval().to(device)
    w_raw, feat = encoder(e["in_image"][0:1].to(device))
    w = w_raw + p["in_latent_avg"]
    close(w, p["out_w"])
    close(G.features_at(w, k=5), p["out_featK"])
    r0, r1, c0, c1 = [int(v) for v in p["in_crop_box"]]
    for image, tag in ((G.synthesize(w), "image"), (G.synthesize(w, feature=feat, k=5), "image_fse")):
        close(F.avg_pool2d(image, 4), p[f"out_{tag}_pool4"])
        close(image[:, :, r0:r1, c0:c1], p[f"out_{tag}_crop"])


@torch.no_grad()
def test_folding_batchnorm_leaves_the_loaded_encoder_alone(loaded_encoder, device):
    x = vectors("fse_encoder")["in_image"].to(device)
    state = {k: v.clone() for k, v in loaded_encoder.state_dict().items()}
    before = loaded_encoder(x)
    folded = fold_batchnorm(loaded_encoder)
    assert folded.styles is loaded_encoder.styles  # the heads (most of the weights) are not copied
    assert inference_encoder(loaded_encoder) is inference_encoder(loaded_encoder)  # made once
    after = loaded_encoder(x)
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert loaded_encoder.state_dict().keys() == state.keys()
    assert all(torch.equal(loaded_encoder.state_dict()[k], v) for k, v in state.items())
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(FeatureStyleEncoder(n_styles=4, width=4, feature_channels=8))
