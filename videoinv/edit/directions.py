"""Edit directions in W / W+: read from files, named in a registry, or computed from a generator.

A :class:`Direction` moves latents as ``w+ <- w+ + strength * scale * vector`` on its layers:

* W+ directions (``n_latent * 512`` values, e.g. FeatureStyleEncoder's boundary files, float32
  [1, 9216], unit norm): one row per layer, ``scale`` 15 (``w + 15 * alpha * b``, FSE's step);
* W directions (512 values, InterFaceGAN-style, e.g. e4e's age/pose): the same vector on every
  layer of the range, ``scale`` 1;
* computed (``ganspaceN``, ``sefaN``): unit vectors in W whose ``scale`` is the standard deviation
  of mapped latents along them, so strengths are in standard deviations.

Files: ``.npy`` (no pickles), ``.pt``/``.pth`` (weights-only), ``.safetensors`` (tensor
``direction``, optional ``scale``/``layers``). Computed directions are cached per generator (a
hash of its weights) in ``<cache>/directions``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import VideoinvError
from ..pipeline.transfer import transfer_for

FSE_STEP = 15.0


@dataclass
class Direction:
    name: str
    vector: torch.Tensor  # [n_latent, 512] (W+) or [512] (W)
    scale: float = 1.0
    layers: tuple[int, int] | None = None  # inclusive range the edit may touch (None: all)

    _masked: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # see delta

    def delta(self, n_latent: int, strength: float, layers: tuple[int, int] | None = None,
              device: torch.device | str | None = None) -> torch.Tensor:
        """The latent shift [n_latent, 512] for ``strength`` (layers: a range overriding the
        direction's own), on ``device`` (None: the CPU). The vector on its layers is kept on
        the device after the first call, so that a run on a GPU does not copy it there (and
        wait for the copy) for every face of every frame."""
        device = torch.device(device or "cpu")
        key = (n_latent, layers or self.layers, str(device))
        masked = self._masked.get(key)
        if masked is None:
            v = self.vector.float()
            if v.ndim == 1:
                d = v.expand(n_latent, -1).clone()
            elif v.shape[0] == n_latent:
                d = v.clone()
            else:
                raise VideoinvError(f"direction {self.name} has {v.shape[0]} layers; the model has {n_latent}")
            lo, hi = layers or self.layers or (0, n_latent - 1)
            if not 0 <= lo <= hi < n_latent:
                raise VideoinvError(f"layer range {lo}-{hi} of {self.name} is outside 0-{n_latent - 1}")
            keep = torch.zeros(n_latent, 1)
            keep[lo:hi + 1] = 1
            masked = self._masked[key] = transfer_for(device).send((d * keep).numpy())
        return masked * (strength * self.scale)


def load_direction_file(path: str | os.PathLike, name: str | None = None) -> Direction:
    """A direction from a file (see the module docstring for formats)."""
    p = Path(path)
    name = name or p.stem
    if not p.is_file():
        raise VideoinvError(f"direction file not found: {p}")
    scale, layers = None, None
    try:
        if p.suffix == ".npy":
            array = np.load(p, allow_pickle=False)
            vector = torch.from_numpy(np.asarray(array, np.float32))
        elif p.suffix == ".safetensors":
            from safetensors.torch import load_file

            data = load_file(str(p))
            vector = data["direction"]
            scale = float(data["scale"]) if "scale" in data else None
            layers = tuple(int(v) for v in data["layers"].tolist()) if "layers" in data else None
        elif p.suffix in (".pt", ".pth"):
            obj = torch.load(str(p), map_location="cpu", weights_only=True)
            vector = obj if isinstance(obj, torch.Tensor) else next(
                (v for v in obj.values() if isinstance(v, torch.Tensor)), None) if isinstance(obj, dict) else None
            if vector is None:
                raise ValueError("no tensor inside")
        else:
            raise VideoinvError(f"unknown direction format {p.suffix!r}: use .npy, .pt or .safetensors")
    except VideoinvError:
        raise
    except Exception as err:  # noqa: BLE001 - any reading failure is the file's problem
        raise VideoinvError(f"cannot read direction {p}: {str(err).splitlines()[0]}") from None
    vector = vector.float().reshape(-1)
    if vector.numel() == 512:
        return Direction(name, vector, 1.0 if scale is None else scale, layers)
    if vector.numel() % 512 == 0:
        return Direction(name, vector.reshape(-1, 512), FSE_STEP if scale is None else scale, layers)
    raise VideoinvError(f"direction {p} has {vector.numel()} values; expected 512 (W) or n_layers x 512 (W+)")


# -- named directions ----------------------------------------------------------------------------
# name -> weight-registry file (videoinv weights fetch/import)
NAMED = {
    "smile": "fse-direction-smile",
    "eyeglasses": "fse-direction-eyeglasses",
    "makeup": "fse-direction-makeup",
    "age": "e4e-direction-age",
    "pose": "e4e-direction-pose",
    "smile-w": "e4e-direction-smile",
}
_COMPUTED = re.compile(r"^(ganspace|sefa)(\d+)$")


def check_name(name: str) -> None:
    """Refuse, before any model loads, a direction that is neither a registry name, ``ganspaceN``
    / ``sefaN`` nor an existing file."""
    if name in NAMED or _COMPUTED.match(name):
        return
    if not Path(name).suffix:
        raise VideoinvError(f"unknown direction {name!r}: use one of {', '.join(NAMED)}, ganspaceN, sefaN, or a "
                            "file (.npy, .pt, .safetensors)")
    if not Path(name).is_file():
        raise VideoinvError(f"direction file not found: {name}")


def resolve(name: str, G=None) -> Direction:
    """A direction by name: a registry name (its file must be in the weight cache), ``ganspaceN``
    or ``sefaN`` (computed from ``G``, cached), or a file path."""
    from ..models.weights import require

    if name in NAMED:
        return load_direction_file(require(NAMED[name]), name)
    m = _COMPUTED.match(name)
    if m:
        if G is None:
            raise VideoinvError(f"{name} is computed from the generator; give a model")
        method, index = m.group(1), int(m.group(2))
        table = computed(G, method)
        if index >= len(table["vectors"]):
            raise VideoinvError(f"{name}: only {len(table['vectors'])} {method} directions exist")
        layers = tuple(table["layers"]) if table.get("layers") is not None else None
        return Direction(name, table["vectors"][index], float(table["scales"][index]), layers)
    check_name(name)
    return load_direction_file(name)


# -- computed from the generator ---------------------------------------------------------------
def cached_tables(G) -> list[Path]:
    """The computed-direction files cached for this generator."""
    from ..models.checkpoints import weights_id
    from ..models.weights import cache_dir

    return sorted((cache_dir() / "directions").glob(f"*-{weights_id(G)}-*.safetensors"))


def _cache_path(G, method: str, options: dict) -> Path:
    from ..models.checkpoints import weights_id
    from ..models.weights import cache_dir

    tag = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:8]
    return cache_dir() / "directions" / f"{method}-{weights_id(G)}-{tag}.safetensors"


@torch.no_grad()
def _sample_w(G, samples: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    device = next(G.parameters()).device
    out = []
    for start in range(0, samples, 1024):
        z = torch.randn(min(1024, samples - start), G.style_dim, generator=g).to(device)
        out.append(G.mapping(z).double().cpu())
    return torch.cat(out)


def ganspace(G, samples: int = 10_000, seed: int = 0, components: int = 32) -> dict:
    """PCA of mapped latents: principal axes (unit, descending variance) and their std devs."""
    w = _sample_w(G, samples, seed)
    centred = w - w.mean(0)
    _, s, vt = torch.linalg.svd(centred, full_matrices=False)
    vt = _sign_fixed(vt[:components])
    std = s[:components] / np.sqrt(samples - 1)
    return {"vectors": vt.float(), "scales": std.float(), "layers": None}


def _modulation_weights(G, layers: tuple[int, int]) -> list[torch.Tensor]:
    """The style-to-modulation weights [in, 512] of the styled convs and ToRGBs that read the
    W+ rows ``layers`` (inclusive)."""
    lo, hi = layers
    out = []
    convs = [G.conv1] + list(G.convs)  # styled conv j reads w[j]
    for j, conv in enumerate(convs):
        if lo <= j <= hi:
            out.append(conv.conv.modulation.weight)
    rgbs = [G.to_rgb1] + list(G.to_rgbs)  # ToRGB i reads w[2i + 1]
    for i, rgb in enumerate(rgbs):
        if lo <= 2 * i + 1 <= hi:
            out.append(rgb.conv.modulation.weight)
    return out


def sefa(G, layers: tuple[int, int] | None = None, samples: int = 10_000, seed: int = 0, components: int = 32) -> dict:
    """Closed-form factorisation (SeFa): eigenvectors of the modulation weights' Gram matrix,
    largest first, over the W+ rows ``layers``. Scales are the std dev of mapped latents along
    each direction."""
    layers = layers or (0, G.n_latent - 1)
    weight = torch.cat([w.detach().double().cpu() for w in _modulation_weights(G, layers)], dim=0)  # [sum_in, 512]
    weight = weight / weight.norm(dim=1, keepdim=True).clamp(min=1e-12)  # every output unit alike
    values, vectors = torch.linalg.eigh(weight.t() @ weight)  # ascending
    vt = _sign_fixed(vectors.t().flip(0)[:components])
    w = _sample_w(G, samples, seed)
    scales = (w - w.mean(0)) @ vt.t()
    return {"vectors": vt.float(), "scales": scales.std(0).float(), "layers": list(layers)}


def _sign_fixed(vt: torch.Tensor) -> torch.Tensor:
    """Eigen/singular vectors have arbitrary signs: make each one's largest entry positive."""
    idx = vt.abs().argmax(dim=1)
    signs = torch.sign(vt[torch.arange(len(vt)), idx])
    return vt * signs[:, None]


def computed(G, method: str, layers: tuple[int, int] | None = None, samples: int = 10_000, seed: int = 0,
             refresh: bool = False) -> dict:
    """GANSpace or SeFa directions of ``G``, from the cache or computed (and cached)."""
    from safetensors.torch import load_file, save_file

    from ..files import atomic_output

    options = {"samples": samples, "seed": seed, "layers": list(layers) if layers else None}
    path = _cache_path(G, method, options)
    if path.exists() and not refresh:
        data = load_file(str(path))
        return {"vectors": data["vectors"], "scales": data["scales"],
                "layers": data["layers"].tolist() if "layers" in data else None}
    table = ganspace(G, samples, seed) if method == "ganspace" else sefa(G, layers, samples, seed)
    tensors = {"vectors": table["vectors"].contiguous(), "scales": table["scales"].contiguous()}
    if table["layers"] is not None:
        tensors["layers"] = torch.tensor(table["layers"])
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, overwrite=True) as tmp:
        save_file(tensors, str(tmp), metadata={"method": method, **{k: str(v) for k, v in options.items()}})
    return table
