"""Reading the official checkpoint files unchanged, safely.

Layouts recognised (by their keys, whatever the file is called):

* rosinality converted weights (``stylegan2-ffhq-config-f.pt``): ``{"g_ema": ..., "latent_avg": [512]}``,
  and rosinality training checkpoints (``g_ema`` with ``args``, no ``latent_avg``);
* pSp (``psp_ffhq_encode.pt``): ``{"state_dict": {"encoder.*", "decoder.*"}, "latent_avg": [18,512]}``
  - the generator is the ``decoder.*`` part;
* FeatureStyleEncoder (``143_enc.pth``): a bare encoder state_dict (517 entries), or a training
  checkpoint with ``enc_state_dict``;
* bare generator state_dicts, and safetensors files (``videoinv weights convert``), which keep
  ``latent_avg`` as a tensor of that name.

Pickled files are read with ``torch.load(weights_only=True)``: tensors and plain containers only
(plus ``argparse.Namespace``, which rosinality's training checkpoints hold). A file that needs
anything else is refused: unpickling it could run arbitrary code.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import re
import weakref
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import VideoinvError
from ..files import atomic_output
from .encoder import FeatureStyleEncoder
from .stylegan2 import StyleGAN2Generator


class CheckpointError(VideoinvError):
    """A weight file is missing, unsafe, damaged or not of the expected layout."""


@dataclass
class Checkpoint:
    kind: str  # "generator" | "encoder"
    state_dict: dict
    latent_avg: torch.Tensor | None
    layout: str  # human-readable origin, e.g. "rosinality g_ema"
    path: str


def read_file(path: str | os.PathLike, map_location="cpu") -> dict:
    """The raw contents of a checkpoint: safetensors, or a weights-only torch pickle."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}" if not p.exists() else f"{p} is not a file")
    if p.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(p), device=str(map_location)))
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"cannot read {p}: {err}") from None
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(str(p), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        what = _first_line(str(err))
        if "GLOBAL" not in str(err):  # not a forbidden object: the bytes are not a pickle at all
            raise CheckpointError(f"cannot read {p}: not a PyTorch checkpoint ({what})") from None
        raise CheckpointError(
            f"refusing {p}: it holds Python objects that loading would execute ({what}); only plain "
            "tensor checkpoints are read. If it comes from a source you trust, convert it where you "
            "trust it to a state_dict or safetensors file") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"cannot read {p}: {_first_line(str(err))}; is it a complete PyTorch checkpoint?") from None
    except Exception as err:  # noqa: BLE001 - other bytes trip the weights-only unpickler anywhere
        # (a text file: KeyError 101), and no error of a file's contents is an internal one
        raise CheckpointError(f"cannot read {p}: not a PyTorch checkpoint ({type(err).__name__}: "
                              f"{_first_line(str(err))})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{p} holds a {type(obj).__name__}, not a dict of tensors")
    return obj


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:  # torch's message names the offending global on one of its lines
        if "GLOBAL" in line or "Unsupported" in line:
            return line[:200]
    # its first sentence: torch goes on about miniz and corrupted files, cut off mid-word
    return re.split(r"(?<=[a-z])\. (?=[A-Z])", lines[0])[0][:200] if lines else "unknown reason"


def _is_generator(sd: dict) -> bool:
    return "conv1.conv.weight" in sd and "style.1.weight" in sd


def _is_encoder(sd: dict) -> bool:
    return "styles.0.weight" in sd and "content_layer.1.weight" in sd


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> Checkpoint:
    """Read ``path`` and tell which model it holds (see the module docstring)."""
    obj = read_file(path, map_location)
    path = str(path)
    latent_avg = obj.get("latent_avg") if isinstance(obj.get("latent_avg"), torch.Tensor) else None
    if isinstance(obj.get("g_ema"), dict):
        return Checkpoint("generator", obj["g_ema"], latent_avg, "rosinality g_ema", path)
    sd = obj.get("state_dict")
    if isinstance(sd, dict) and any(k.startswith("decoder.") for k in sd):
        decoder = {k[len("decoder."):]: v for k, v in sd.items() if k.startswith("decoder.")}
        return Checkpoint("generator", decoder, latent_avg, "pSp decoder", path)
    if isinstance(obj.get("enc_state_dict"), dict):
        return Checkpoint("encoder", obj["enc_state_dict"], None, "FeatureStyleEncoder training checkpoint", path)
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor) and k != "latent_avg"}
    if _is_encoder(tensors):
        return Checkpoint("encoder", tensors, None, "FeatureStyleEncoder state_dict", path)
    if _is_generator(tensors):
        return Checkpoint("generator", tensors, latent_avg, "StyleGAN2 generator state_dict", path)
    sample = ", ".join(list(obj)[:5])
    raise CheckpointError(f"{path} is neither a StyleGAN2 generator nor a FeatureStyleEncoder checkpoint "
                          f"(its first keys: {sample})")


def _indices(sd: dict, prefix: str) -> list[int]:
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.")
    return sorted({int(m.group(1)) for k in sd if (m := pattern.match(k))})


def generator_config(sd: dict) -> dict:
    """Constructor arguments of the generator that ``sd`` belongs to."""
    n_rgbs = len(_indices(sd, "to_rgbs"))
    size = 2 ** (n_rgbs + 2)
    channels = {4: sd["conv1.conv.weight"].shape[1]}
    for b in range(n_rgbs):
        channels[2 ** (b + 3)] = sd[f"convs.{2 * b}.conv.weight"].shape[1]
    return {"size": size, "style_dim": sd["style.1.weight"].shape[0], "n_mlp": len(_indices(sd, "style")),
            "channels": channels}


def encoder_config(sd: dict) -> dict:
    return {"n_styles": len(_indices(sd, "styles")), "style_dim": sd["styles.0.weight"].shape[0],
            "width": sd["conv.0.weight"].shape[0], "feature_channels": sd["content_layer.1.weight"].shape[0]}


_MODELS = {  # kind -> (class, config reader, description for messages)
    "generator": (StyleGAN2Generator, generator_config, "StyleGAN2 generator (rosinality layout)"),
    "encoder": (FeatureStyleEncoder, encoder_config, "FeatureStyleEncoder (143_enc.pth layout)"),
}


def _build(ckpt: Checkpoint, kind: str) -> torch.nn.Module:
    """The ``kind`` model with the checkpoint's weights (architecture read off the shapes, then a
    strict load), in eval mode."""
    cls, config, what = _MODELS[kind]
    if ckpt.kind != kind:
        raise CheckpointError(f"{ckpt.path} holds a {ckpt.kind} ({ckpt.layout}), not a {what.split(' (')[0]}")
    try:
        model = cls(**config(ckpt.state_dict))
    except (KeyError, ValueError, IndexError) as err:
        raise CheckpointError(f"{ckpt.path}: cannot read the {kind}'s architecture ({err})") from None
    try:
        model.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as err:
        problems = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
        raise CheckpointError(f"{ckpt.path} does not fit the {what}: {'; '.join(problems)[:300]}") from None
    return model.eval()


def build_generator(ckpt: Checkpoint) -> StyleGAN2Generator:
    return _build(ckpt, "generator")


def build_encoder(ckpt: Checkpoint) -> FeatureStyleEncoder:
    return _build(ckpt, "encoder")


def convert_to_safetensors(src: str | os.PathLike, dst: str | os.PathLike, overwrite: bool = False) -> Checkpoint:
    """Write ``src``'s model (its state_dict, plus ``latent_avg`` when known) as safetensors."""
    if Path(dst).suffix != ".safetensors":
        raise CheckpointError(f"the converted file must end in .safetensors, not {Path(dst).name}")
    ckpt = load_checkpoint(src)
    if ckpt.kind == "generator":
        build_generator(ckpt)
    else:
        build_encoder(ckpt)  # check the layout before writing anything
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous() for k, v in ckpt.state_dict.items()}
    if ckpt.latent_avg is not None:
        tensors["latent_avg"] = ckpt.latent_avg.detach().contiguous()
    with atomic_output(dst, [src], overwrite, example=Path(src).stem + ".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"videoinv_kind": ckpt.kind, "source_layout": ckpt.layout})
    return ckpt


_IDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # module -> (stamp, id)


def weights_id(module: torch.nn.Module) -> str:
    """A short hash of a model's weights (values as float32, so a bf16 copy has the same id; the
    generator's stored noise buffers are not weights). Caches name the models they came from by it.

    Hashing takes a while for a full-size model (80 ms for the generator, 300 ms for the
    encoder), and every edit asks for the generator's (its directions' cache) and every latent
    cache for both; so the id is kept per module with a stamp of its tensors (storage, version
    counter, dtype, shape) and hashed again only when one of them changed: replaced, moved, or
    written in place (``load_state_dict``, optimiser steps). Tensors made in inference mode
    have no version counter: such a module is hashed every time."""
    state = [(key, value) for key, value in sorted(module.state_dict().items()) if not key.startswith("noises.")]
    stamp = None if any(value.is_inference() for _, value in state) else \
        tuple((key, value.data_ptr(), value._version, value.dtype, tuple(value.shape)) for key, value in state)
    kept = _IDS.get(module)
    if stamp is not None and kept is not None and kept[0] == stamp:
        return kept[1]
    h = hashlib.sha256()
    for key, value in state:
        h.update(key.encode())
        h.update(value.detach().cpu().float().numpy().tobytes())
    digest = h.hexdigest()[:16]
    if stamp is not None:
        _IDS[module] = (stamp, digest)
    return digest
