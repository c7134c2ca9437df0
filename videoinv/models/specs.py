"""Model specs: what ``--generator`` / ``--encoder`` options and the chain accept.

* a name from the weight registry (``stylegan2-ffhq-1024``, ``psp-ffhq-encode``, ``fse-encoder``);
* a path to a checkpoint file (any layout ``checkpoints.py`` reads);
* ``random:<size>[:<channels>]`` - the same architectures with seeded random weights, for tests
  and speed benchmarks only (speed does not depend on the values). Never a default; using one
  logs a warning.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import torch
from torch import nn

from .checkpoints import CheckpointError, build_encoder, build_generator, load_checkpoint
from .encoder import FeatureStyleEncoder
from .stylegan2 import StyleGAN2Generator, channel_table
from .weights import WEIGHTS, WeightsError, require, status, weights_dir

log = logging.getLogger(__name__)

_RANDOM = re.compile(r"^random:(\d+)(?::(\d+))?$")


def parse_random(spec: str) -> tuple[int, int | None] | None:
    """``"random:256:32"`` -> ``(256, 32)``; None if ``spec`` is not a random spec."""
    m = _RANDOM.match(spec.strip())
    if not m:
        if spec.startswith("random"):
            raise CheckpointError(f"bad model spec {spec!r}: use random:<size>[:<channels>], e.g. random:256:32")
        return None
    size, channels = int(m.group(1)), (int(m.group(2)) if m.group(2) else None)
    if size < 8 or size > 1024 or size & (size - 1):
        raise CheckpointError(f"bad model spec {spec!r}: the size must be a power of two from 8 to 1024")
    return size, channels


def randomize_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Fill a generator or encoder with seeded random weights at the scales of trained models
    (so activations stay in a realistic range); FIR kernels are kept."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict(keep_vars=True).items():
            rule = _scale(name, t)
            if rule is None:
                continue
            scale, offset = rule
            t.copy_(torch.randn(t.shape, generator=g) * scale + offset)
    return module


def _scale(name: str, t: torch.Tensor) -> tuple[float, float] | None:
    if name.endswith("kernel") or name.endswith("num_batches_tracked"):
        return None
    if name.startswith("style."):  # mapping: stored values carry 1/lr_mul
        return (100.0, 0.0) if name.endswith("weight") else (10.0, 0.0)
    if name.endswith("modulation.bias"):
        return 0.1, 1.0
    if name.endswith(("noise.weight", "activate.bias")) or re.search(r"to_rgb(s\.\d+|1)\.bias$", name):
        return 0.1, 0.0
    if "running_var" in name:
        return 0.1, 1.0
    if "running_mean" in name or (t.ndim == 1 and name.endswith("bias")):
        return 0.1, 0.0
    if t.ndim == 1 and name.endswith("weight"):  # BatchNorm and PReLU
        if name.endswith("prelu.weight") or name in ("conv.2.weight", "content_layer.3.weight"):
            return 0.05, 0.25
        return (0.015, 0.3) if name.endswith("bn3.weight") else (0.1, 1.0)
    if name.startswith(("styles.", "conv.0", "block_", "content_layer.")) and t.ndim >= 2:
        return 1 / math.sqrt(t[0].numel()), 0.0
    return 1.0, 0.0


_WARNED: set[str] = set()


def _random_warning(spec: str) -> None:
    if spec not in _WARNED:
        _WARNED.add(spec)
        log.warning("%s: random weights - for tests and speed measurements only, the faces will not look right", spec)


def load_generator(spec: str, device="cpu") -> tuple[StyleGAN2Generator, torch.Tensor]:
    """``(G, latent_avg)`` for a spec; ``G`` in eval mode, frozen, on ``device``."""
    rnd = parse_random(spec)
    if rnd is not None:
        size, channels = rnd
        _random_warning(spec)
        G = randomize_(StyleGAN2Generator(size, channels=channels), seed=size).eval()
        with torch.no_grad():
            z = torch.randn(4096, G.style_dim, generator=torch.Generator().manual_seed(1))
            latent_avg = G.mapping(z).mean(0)
        return G.requires_grad_(False).to(device), latent_avg.to(device)
    path = require(spec) if spec in WEIGHTS else spec
    ckpt = load_checkpoint(path, map_location="cpu")
    G = build_generator(ckpt)
    if ckpt.latent_avg is None:
        log.warning("%s has no latent_avg; using the mean of 4096 mapped random latents", path)
        with torch.no_grad():
            z = torch.randn(4096, G.style_dim, generator=torch.Generator().manual_seed(1))
            ckpt.latent_avg = G.mapping(z).mean(0)
    return G.requires_grad_(False).to(device), ckpt.latent_avg.float().to(device)


def load_encoder(spec: str, device="cpu") -> FeatureStyleEncoder:
    rnd = parse_random(spec)
    if rnd is not None:
        size, channels = rnd
        _random_warning(spec)
        width = 64 if channels is None else max(4, min(64, channels // 8))
        E = FeatureStyleEncoder(n_styles=2 * int(math.log2(size)) - 2, width=width,
                                feature_channels=channel_table(size, 2, channels)[16])
        return randomize_(E, seed=size + 1).eval().requires_grad_(False).to(device)
    path = require(spec) if spec in WEIGHTS else spec
    return build_encoder(load_checkpoint(path, map_location="cpu")).requires_grad_(False).to(device)


# -- generator + encoder pairs -----------------------------------------------------------------
BUNDLES = {"fse": ("psp-ffhq-encode", "fse-encoder")}  # FeatureStyleEncoder and the generator it was trained with


class Models:
    """A generator and the encoder that inverts into it (+ latent_avg), on one device."""

    def __init__(self, spec: str, G: StyleGAN2Generator, latent_avg: torch.Tensor, E: FeatureStyleEncoder,
                 device: torch.device):
        self.spec, self.G, self.latent_avg, self.E, self.device = spec, G, latent_avg, E, device
        self.random = spec.startswith("random")

    @property
    def size(self) -> int:
        return self.G.size


_DEVICE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA where there is a GPU), ``cpu``, ``cuda`` or ``cuda:N``; anything else, or a
    GPU that is not there, raises a one-line error. CUDA comes with its index (``cuda`` is the
    current GPU), so one device has one name (the models loaded once, stages that agree)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    m = _DEVICE.match(name.strip())
    if not m or (m.group(1) == "cpu" and m.group(2) not in (None, "0")):
        raise CheckpointError(f"bad device {name!r}: use auto, cpu, cuda or cuda:N (N a GPU's index)")
    if m.group(1) == "cuda":
        if not torch.cuda.is_available():
            raise CheckpointError("device cuda was asked for but no CUDA GPU is available; use device=cpu")
        count = torch.cuda.device_count()
        if m.group(2) is not None and int(m.group(2)) >= count:
            raise CheckpointError(f"device {name} was asked for but this machine has {count} CUDA GPU(s), "
                                  f"cuda:0 to cuda:{count - 1}")
    device = torch.device(name.strip())
    return torch.device("cuda", torch.cuda.current_device()) if device.type == "cuda" and device.index is None else device


_LOADED: dict[tuple[str, str], Models] = {}


def bundle_parts(spec: str) -> tuple[str, str]:
    """(generator spec, encoder spec) of a bundle spec: ``fse``, ``random:256[:32]`` or
    ``GENERATOR+ENCODER`` (each a registry name or a file)."""
    if spec in BUNDLES:
        return BUNDLES[spec]
    if "+" in spec:  # before the random check: random:64+random:64 names two random parts
        generator, encoder = spec.split("+", 1)
        return generator, encoder
    if parse_random(spec) is not None:
        return spec, spec
    raise CheckpointError(f"bad model {spec!r}: use fse, random:<size>[:<channels>] or GENERATOR+ENCODER")


def canonical_spec(spec: str) -> str:
    """One spelling per model, so that two spellings load it once and a latent cache or a chain
    sees one model: a bundle's parts are the bundle (``psp-ffhq-encode+fse-encoder`` is ``fse``),
    a random spec given for both parts is that spec, a checkpoint file is its absolute path
    (``G.pt`` here and ``./G.pt`` are one file)."""
    def part(name: str) -> str:
        if name in WEIGHTS or parse_random(name) is not None or not Path(name).is_file():
            return name
        return str(Path(name).resolve())

    generator, encoder = (part(p) for p in bundle_parts(spec))
    for name, parts in BUNDLES.items():
        if parts == (generator, encoder):
            return name
    if generator == encoder and parse_random(generator) is not None:
        return generator
    return f"{generator}+{encoder}"


def require_all(names, what: str) -> None:
    """Raise one message naming every registry file among ``names`` that is not cached yet."""
    missing = [n for n in dict.fromkeys(names) if n in WEIGHTS and status(n) != "present"]
    if missing:
        raise WeightsError(f"{what} needs {', '.join(missing)}, not in {weights_dir()}: "
                           f"'videoinv weights fetch {' '.join(missing)}', or download "
                           + " and ".join(WEIGHTS[m].page for m in missing)
                           + " yourself and 'videoinv weights import NAME FILE' each (licences: 'videoinv weights list')")


def check_models(spec: str) -> None:
    """Raise the one-line error that :func:`load_models` would give for a bad spec, missing
    weights or a missing checkpoint file, without loading anything."""
    generator, encoder = bundle_parts(spec)
    require_all([generator, encoder], f"model {spec}")
    for part in (generator, encoder):
        if parse_random(part) is None and part not in WEIGHTS and not Path(part).is_file():
            raise CheckpointError(f"checkpoint not found: {part} (model {spec})")


def model_size(spec: str, device: str = "auto") -> int:
    """The generator's resolution for ``spec`` (a random spec's without loading anything)."""
    parsed = parse_random(spec)
    return parsed[0] if parsed is not None else load_models(spec, device).size


def load_models(spec: str, device: str = "auto") -> Models:
    """The generator/encoder pair for ``spec``, loaded once per process and device. Missing
    weight files raise before anything else happens (with how to get them)."""
    dev = pick_device(device)
    spec = canonical_spec(spec)
    key = (spec, str(dev))
    if key not in _LOADED:
        check_models(spec)
        generator, encoder = bundle_parts(spec)
        G, latent_avg = load_generator(generator, dev)
        E = load_encoder(encoder, dev)
        if E.n_styles != G.n_latent or E.content_layer[-1].num_features != G.channels[16]:
            raise CheckpointError(f"encoder {encoder} ({E.n_styles} styles) does not fit generator {generator} "
                                  f"({G.n_latent} latents, {G.channels[16]} channels at 16x16)")
        _LOADED[key] = Models(spec, G, latent_avg, E, dev)
    return _LOADED[key]
