"""Official checkpoint layouts load unchanged; unsafe pickles are refused; safetensors conversion."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch

from videoinv.models.checkpoints import CheckpointError, build_encoder, build_generator, \
    convert_to_safetensors, load_checkpoint
from videoinv.models.specs import load_encoder, load_generator

torch.set_grad_enabled(False)


@pytest.fixture(scope="module")
def models():
    G, latent_avg = load_generator("random:64:16")
    E = load_encoder("random:64:16")
    return G, latent_avg, E


def same_outputs(G1, G2) -> bool:
    w = torch.randn(2, G1.n_latent, 512, generator=torch.Generator().manual_seed(0))
    return torch.equal(G1.synthesize(w), G2.synthesize(w))


def test_rosinality_converted_weights(models, tmp_path):
    G, latent_avg, _ = models
    path = tmp_path / "stylegan2-ffhq-config-f.pt"
    torch.save({"g_ema": G.state_dict(), "latent_avg": latent_avg}, path)
    ckpt = load_checkpoint(path)
    assert (ckpt.kind, ckpt.layout) == ("generator", "rosinality g_ema")
    G2 = build_generator(ckpt)
    assert (G2.size, G2.channels) == (64, G.channels) and same_outputs(G, G2)
    assert torch.equal(ckpt.latent_avg, latent_avg)


def test_rosinality_training_checkpoint_with_args_namespace(models, tmp_path):
    G, _, _ = models
    path = tmp_path / "550000.pt"
    torch.save({"g": G.state_dict(), "d": {}, "g_ema": G.state_dict(), "g_optim": {"state": {}},
                "args": argparse.Namespace(size=64, channel_multiplier=2)}, path)
    ckpt = load_checkpoint(path)
    assert ckpt.latent_avg is None and same_outputs(G, build_generator(ckpt))
    G3, latent_avg = load_generator(str(path))  # no latent_avg: a sampled mean is used
    assert latent_avg.shape == (512,)


def test_psp_checkpoint_uses_the_decoder(models, tmp_path):
    G, latent_avg, _ = models
    state = OrderedDict({f"encoder.body.{i}.weight": torch.randn(3) for i in range(3)})
    state.update({f"decoder.{k}": v for k, v in G.state_dict().items()})
    path = tmp_path / "psp_ffhq_encode.pt"
    torch.save({"state_dict": state, "opts": {"output_size": 64, "encoder_type": "GradualStyleEncoder"},
                "latent_avg": latent_avg.repeat(G.n_latent, 1)}, path)
    ckpt = load_checkpoint(path)
    assert ckpt.layout == "pSp decoder" and ckpt.latent_avg.shape == (G.n_latent, 512)
    assert same_outputs(G, build_generator(ckpt))


def test_fse_encoder_bare_state_dict_and_training_checkpoint(models, tmp_path):
    _, _, E = models
    bare = tmp_path / "143_enc.pth"
    torch.save(E.state_dict(), bare)
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    for path in (bare,):
        E2 = build_encoder(load_checkpoint(path))
        assert all(torch.equal(a, b) for a, b in zip(E(x), E2(x)))
    training = tmp_path / "checkpoint.pth"
    torch.save({"n_epoch": 3, "enc_state_dict": E.state_dict(), "enc_opt_state_dict": {"state": {}}}, training)
    assert load_checkpoint(training).kind == "encoder"
    with pytest.raises(CheckpointError, match="not a StyleGAN2 generator"):
        build_generator(load_checkpoint(bare))


def test_wrong_or_damaged_files(models, tmp_path):
    G, _, _ = models
    sd = G.state_dict()
    del sd["to_rgb1.bias"]
    partial = tmp_path / "partial.pt"
    torch.save({"g_ema": sd}, partial)
    with pytest.raises(CheckpointError, match="does not fit.*to_rgb1.bias"):
        build_generator(load_checkpoint(partial))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"model": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="neither"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    Exploit.marker = marker
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": {"style.1.weight": torch.zeros(1)}, "payload": Exploit()}, path)
    with pytest.raises(CheckpointError, match="refusing") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)
    assert not marker.exists()
    result = subprocess.run([sys.executable, "-m", "videoinv", "weights", "convert", str(path),
                             str(tmp_path / "x.safetensors")], capture_output=True, text=True)
    assert result.returncode == 1 and "refusing" in result.stderr and not marker.exists()


def test_a_file_that_is_not_a_checkpoint_is_one_line_naming_it(models, tmp_path):
    # a text file tripped the weights-only unpickler with a KeyError (an internal error), and a
    # damaged archive's message ran on about miniz, cut off mid-word
    G, latent_avg, _ = models
    whole = tmp_path / "g.pt"
    torch.save({"g_ema": G.state_dict(), "latent_avg": latent_avg}, whole)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(whole.read_bytes()[:50_000])
    (tmp_path / "notes.pth").write_text("hello\n")
    (tmp_path / "zip.pth").write_bytes(b"PK\x03\x04 not really")
    for name, words in [("notes.pth", "not a PyTorch checkpoint"), ("cut.pt", "is it a complete PyTorch checkpoint?"),
                        ("zip.pth", "not a ZIP archive; is it a complete PyTorch checkpoint?")]:
        with pytest.raises(CheckpointError, match=re.escape(f"cannot read {tmp_path / name}: ")) as info:
            load_checkpoint(tmp_path / name)
        assert words in str(info.value) and "\n" not in str(info.value) and "miniz" not in str(info.value)
    result = subprocess.run([sys.executable, "-m", "videoinv", "weights", "import", "fse-encoder",
                             str(tmp_path / "notes.pth")], capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        f"videoinv: error: cannot read {tmp_path / 'notes.pth'}: not a PyTorch checkpoint (KeyError: 101)"]


def test_convert_to_safetensors_round_trip(models, tmp_path):
    G, latent_avg, E = models
    src = tmp_path / "g.pt"
    torch.save({"g_ema": G.state_dict(), "latent_avg": latent_avg}, src)
    out = tmp_path / "g.safetensors"
    result = subprocess.run([sys.executable, "-m", "videoinv", "weights", "convert", str(src), str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    ckpt = load_checkpoint(out)
    assert ckpt.kind == "generator" and torch.equal(ckpt.latent_avg, latent_avg)
    assert same_outputs(G, build_generator(ckpt))
    enc_src, enc_out = tmp_path / "e.pth", tmp_path / "e.safetensors"
    torch.save(E.state_dict(), enc_src)
    convert_to_safetensors(enc_src, enc_out)
    assert load_checkpoint(enc_out).kind == "encoder"
    with pytest.raises(CheckpointError, match="must end in .safetensors"):
        convert_to_safetensors(src, tmp_path / "g.bin")


def test_weights_id_is_hashed_once_and_follows_changes_to_the_weights(monkeypatch):
    import copy
    import hashlib

    from videoinv.models import checkpoints

    G = copy.deepcopy(load_generator("random:64:16")[0])  # this test's own module
    hashed = []

    class Counting:
        def sha256(self, *args):
            hashed.append(1)
            return hashlib.sha256(*args)

    monkeypatch.setattr(checkpoints, "hashlib", Counting())
    first = checkpoints.weights_id(G)
    assert checkpoints.weights_id(G) == first and len(hashed) == 1  # asked again: not hashed again
    original = copy.deepcopy(G.state_dict())
    next(G.parameters()).add_(1.0)  # written in place: a new id, the one a fresh copy of the changed model gets
    changed = checkpoints.weights_id(G)
    assert changed != first and checkpoints.weights_id(copy.deepcopy(G)) == changed
    G.load_state_dict(original)  # the old weights back: the old id
    assert checkpoints.weights_id(G) == first
    G.noises.noise_0.add_(1.0)  # the stored noise is not a weight
    assert checkpoints.weights_id(G) == first


def test_weights_id_of_a_model_made_in_inference_mode():
    from videoinv.models.checkpoints import weights_id

    with torch.inference_mode():  # tensors without a version counter: hashed every time, same id
        made = torch.nn.Linear(4, 3)
        twin = torch.nn.Linear(4, 3)
        twin.load_state_dict(made.state_dict())
    assert weights_id(made) == weights_id(made) == weights_id(twin)
    with torch.inference_mode():
        made.weight.add_(1.0)
    assert weights_id(made) != weights_id(twin)


def test_one_checkpoint_file_named_two_ways_is_one_model(models, tmp_path, monkeypatch):
    # a chain (or a latent cache's model) naming the files by another path was "two models"
    from videoinv.chain import build_stages
    from videoinv.models.specs import canonical_spec, load_models
    from videoinv.registry import default_registry

    G, latent_avg, E = models
    torch.save({"g_ema": G.state_dict(), "latent_avg": latent_avg}, tmp_path / "g.pt")
    torch.save(E.state_dict(), tmp_path / "e.pth")
    monkeypatch.chdir(tmp_path)
    relative, absolute = "g.pt+./e.pth", f"{tmp_path / 'g.pt'}+{tmp_path / 'e.pth'}"
    assert canonical_spec(relative) == canonical_spec(absolute) == absolute
    stages = build_stages(f"invert=model='{relative}':device=cpu,synthesize=model='{absolute}'", default_registry())
    assert stages[0].models is stages[1].models is load_models(absolute, "cpu")
    assert canonical_spec("missing.pt+e.pth") == f"missing.pt+{tmp_path / 'e.pth'}"  # a missing file keeps its name
