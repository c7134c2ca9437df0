"""The ops against their float64 reference implementations, the two modulated-conv forms,
noise handling, autocast, and random model specs."""

from __future__ import annotations

import logging

import pytest
import torch

from videoinv.models import StyleGAN2Generator
from videoinv.models.checkpoints import CheckpointError
from videoinv.models.ops import ModulatedConv2d, make_kernel, modulated_conv2d_reference, upfirdn2d, \
    upfirdn2d_reference
from videoinv.models.specs import load_encoder, load_generator, parse_random

torch.set_grad_enabled(False)


@pytest.mark.parametrize("up, down, pad", [(1, 1, (1, 1)), (2, 1, (2, 1)), (1, 2, (1, 1)), (2, 2, (0, 0)), (2, 1, (3, 2)),
                                           (2, 1, (0, 0)), (1, 1, (0, 0)), (1, 2, (2, 2)),
                                           (1, 1, (-1, 2)), (3, 1, (1, 2))])
@pytest.mark.parametrize("taps", [(1, 3, 3, 1), [[1, 2, 0], [0, 5, 1], [3, 0, 1]]])
def test_upfirdn2d_matches_the_tap_by_tap_reference(up, down, pad, taps):
    x = torch.randn(2, 3, 9, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    k = make_kernel(taps).double()
    ours, ref = upfirdn2d(x, k, up, down, pad), upfirdn2d_reference(x, k, up, down, pad)
    assert ours.shape == ref.shape
    assert float((ours - ref).abs().max()) < 1e-12
    bias = torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64)  # added after the filter, per channel
    biased = upfirdn2d(x, k, up, down, pad, bias=bias)
    assert float((biased - ref - bias.view(1, -1, 1, 1)).abs().max()) < 1e-12


@pytest.mark.parametrize("upsample, demodulate, kernel", [(False, True, 3), (True, True, 3), (False, False, 1)])
@pytest.mark.parametrize("mode", ["grouped", "shared"])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("batch", [1, 3])
def test_modulated_conv_forms_match_the_per_sample_reference(monkeypatch, upsample, demodulate, kernel, mode,
                                                             layout, batch):
    torch.manual_seed(0)
    conv = ModulatedConv2d(6, 5, kernel, 16, demodulate=demodulate, upsample=upsample).double()
    monkeypatch.setattr(ModulatedConv2d, "mode", mode)
    x, style = torch.randn(batch, 6, 8, 8, dtype=torch.float64), torch.randn(batch, 16, dtype=torch.float64)
    x = x.contiguous(memory_format=layout)
    ours, ref = conv(x, style), modulated_conv2d_reference(conv, x, style)
    assert ours.shape == ref.shape == (batch, 5, 16 if upsample else 8, 16 if upsample else 8)
    assert float((ours - ref).abs().max()) < 1e-10
    if kernel == 1:  # a ToRGB keeps its input's layout: the RGB skip is then upsampled in it too
        assert ours.is_contiguous(memory_format=layout)
    # a bias and a gain folded into the conv: gain * (conv + bias)
    bias = torch.randn(5, dtype=torch.float64)
    folded = conv(x, style, bias=bias, gain=1.7)
    assert float((folded - 1.7 * (ref + bias.view(1, -1, 1, 1))).abs().max()) < 1e-10


def tiny() -> StyleGAN2Generator:
    G, _ = load_generator("random:64:16")
    return G


def test_noise_stored_explicit_and_seeded():
    G = tiny()
    w = torch.randn(2, G.n_latent, 512, generator=torch.Generator().manual_seed(3))
    stored = G.synthesize(w)
    assert torch.equal(stored, G.synthesize(w, noise=G.stored_noise()))
    a, b = G.synthesize(w, noise_seed=7), G.synthesize(w, noise_seed=7)
    assert torch.equal(a, b) and not torch.allclose(a, stored)
    assert not torch.allclose(a, G.synthesize(w, noise_seed=8))
    assert torch.equal(a, G.synthesize(w, noise=G.make_noise(7)))  # one set, reused per call
    with pytest.raises(ValueError, match="noise needs"):
        G.synthesize(w, noise=G.stored_noise()[:-1])


def test_w_broadcast_and_argument_checks():
    G = tiny()
    w = torch.randn(1, 512)
    assert torch.allclose(G.synthesize(w), G.synthesize(w[:, None].expand(1, G.n_latent, 512)))
    with pytest.raises(ValueError, match="W\\+ must be"):
        G.synthesize(torch.randn(1, 3, 512))
    with pytest.raises(ValueError, match="k must be"):
        G.features_at(torch.randn(1, 512), k=G.num_layers)


def test_injecting_the_generators_own_feature_changes_nothing():
    G = tiny()
    w = torch.randn(2, G.n_latent, 512)
    for k in (2, 3, 4, 5):
        assert torch.allclose(G.synthesize(w, feature=G.features_at(w, k), k=k), G.synthesize(w), atol=1e-5)


def test_inference_gives_exactly_the_autograd_result_and_gradients_still_flow():
    G = tiny()
    w = torch.randn(2, G.n_latent, 512, generator=torch.Generator().manual_seed(2), requires_grad=True)
    with torch.no_grad():  # activations updated in place
        fast = G.synthesize(w)
    with torch.enable_grad():
        slow = G.synthesize(w)
    assert torch.equal(fast, slow.detach())
    with torch.enable_grad():
        slow.square().mean().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_bf16_autocast_runs_close_to_float32():
    G = tiny()
    w = torch.randn(2, G.n_latent, 512, generator=torch.Generator().manual_seed(1))
    ref = G.synthesize(w)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = G.synthesize(w)
    assert torch.isfinite(low).all()
    rel = float((low.float() - ref).abs().mean() / ref.abs().mean())
    assert rel < 0.05


def test_random_specs(caplog):
    assert parse_random("random:256:32") == (256, 32) and parse_random("random:1024") == (1024, None)
    assert parse_random("stylegan2-ffhq-1024") is None
    for bad in ("random:100", "random:256:x", "random:2048"):
        with pytest.raises(CheckpointError, match="random:<size>|power of two"):
            parse_random(bad)
    with caplog.at_level(logging.WARNING):
        G, latent_avg = load_generator("random:128:32")
        E = load_encoder("random:128:32")
    assert "random weights" in caplog.text
    assert (G.size, G.n_latent, latent_avg.shape) == (128, 12, (512,))
    w, feat = E(torch.rand(1, 3, 256, 256) * 2 - 1)
    assert w.shape == (1, 12, 512) and feat.shape == (1, 32, 16, 16)
    image = G.synthesize(w + latent_avg, feature=feat, k=5)
    assert image.shape == (1, 3, 128, 128) and torch.isfinite(image).all()
    G2, _ = load_generator("random:128:32")
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), G2.state_dict().values()))


@pytest.mark.gpu
def test_cuda_matches_cpu_in_float32():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    G = tiny()
    w = torch.randn(2, G.n_latent, 512)
    feat = G.features_at(w, 5) + 0.1
    cpu = G.synthesize(w, feature=feat, k=5)
    gpu = G.cuda().synthesize(w.cuda(), feature=feat.cuda(), k=5).cpu()
    assert float((cpu - gpu).abs().max()) < 1e-3


@pytest.mark.parametrize("size, multiplier", [(64, 1), (128, 2), (512, 1)])
def test_sizes_and_channel_multipliers(size, multiplier):
    G = StyleGAN2Generator(size, channel_multiplier=multiplier)
    assert G.n_latent == 2 * (size.bit_length() - 1) - 2
    assert G.channels[size] == {64: 256, 128: 128, 256: 64, 512: 32}[size] * multiplier
    assert G.to_rgbs[-1].conv.weight.shape == (1, 3, G.channels[size], 1, 1)
    w = torch.randn(1, G.n_latent, 512)
    assert G.features_at(w, k=5).shape == (1, 512, 16, 16)
    if size <= 128:
        assert G.synthesize(w).shape == (1, 3, size, size)


def test_channels_last_activations_match_the_default_layout(monkeypatch):
    G = tiny()
    w = torch.randn(2, G.n_latent, 512, generator=torch.Generator().manual_seed(4))
    feat = G.features_at(w, 5) * 1.5
    monkeypatch.setattr(StyleGAN2Generator, "layouts", {})
    plain = G.synthesize(w, feature=feat, k=5)
    monkeypatch.setattr(StyleGAN2Generator, "layouts", {"cpu": torch.channels_last})
    fast = G.synthesize(w, feature=feat, k=5)
    assert float((fast - plain).abs().max()) < 1e-4 * float(plain.abs().max())
    # the same values in any strides give the same result to the bit (a size-1 batch may carry
    # odd strides and still count as contiguous in either layout)
    one = feat[:1].permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    odd = feat[:1].contiguous(memory_format=torch.channels_last)[0][None]  # batch stride C, not C*H*W
    assert odd.stride()[0] != odd[0].numel()
    for other in (one, odd, feat[:1].contiguous()):
        assert torch.equal(G.synthesize(w[:1], feature=other, k=5), G.synthesize(w[:1], feature=feat[:1].clone(), k=5))


def test_edit_head_and_tail_give_the_three_pass_edit():
    from videoinv.edit.feature import corrected_feature

    G = tiny()
    g = torch.Generator().manual_seed(5)
    w = torch.randn(3, G.n_latent, 512, generator=g)
    w_edit = w.clone()
    w_edit[1] += torch.randn(G.n_latent, 512, generator=g) * 0.5  # rows 0 and 2 unedited
    feat, noise = torch.randn(3, G.channels[16], 16, 16, generator=g), G.make_noise(1)
    corrected, skip = G.edit_head(w, w_edit, feat, k=5, noise=noise)
    assert torch.equal(corrected[0], feat[0]) and torch.equal(corrected[2], feat[2])  # F kept exactly
    expected = corrected_feature(G, w[1:2], feat[1:2], w_edit[1:2], k=5, noise=noise)
    assert torch.allclose(corrected[1:2], expected, atol=1e-5)
    image = G.synthesize_from(w_edit, corrected, skip, k=5, noise=noise)
    reference = torch.cat([G.synthesize(w_edit[i:i + 1], feature=corrected[i:i + 1], k=5, noise=noise)
                           for i in range(3)])
    assert torch.allclose(image, reference, atol=1e-4)
    assert not torch.allclose(image[1], G.synthesize(w_edit[1:2], feature=feat[1:2], k=5, noise=noise)[0], atol=1e-2)
    # told whether w~ moved (as the pipeline knows from the edits' strengths): the same answers
    hinted = G.edit_head(w, w_edit, feat, k=5, noise=noise, moved=True)
    assert torch.equal(hinted[0], corrected) and torch.equal(hinted[1], skip)
    still = G.edit_head(w, w.clone(), feat, k=5, noise=noise, moved=False)
    assert torch.equal(still[0], feat) and torch.equal(still[1], G.edit_head(w, w.clone(), feat, k=5, noise=noise)[1])
