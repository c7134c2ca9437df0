"""LPIPS (Zhang et al. 2018, v0.1): the learned perceptual distance between two images.

Two ways to compute it, the same numbers:

* the ``lpips`` package, where it imports (it needs torchvision);
* otherwise our own AlexNet / VGG16 LPIPS in plain torch. It reads torchvision's ImageNet
  checkpoint of the backbone (``alexnet-owt-7be5be79.pth`` or ``vgg16-397923af.pth``, key layout
  ``features.N.weight/bias``) from ``$TORCH_HOME/hub/checkpoints/`` (default
  ``~/.cache/torch/hub/checkpoints/``), and the five linear layers (``lin0..lin4.model.1.weight``)
  from the files the ``lpips`` wheel ships (``lpips/weights/v0.1/{alex,vgg}.pth``), found
  without importing the package (``pip install --no-deps lpips`` is enough).

Nothing is downloaded: when a file is missing :class:`LPIPSUnavailable` says which and where to
put it, and callers report "LPIPS unavailable" rather than a number.

The distance: images in [-1,1] are shifted/scaled per channel (LPIPS's scaling layer), passed
through the backbone; at five ReLU outputs (alex relu1..relu5; vgg relu1_2, 2_2, 3_3, 4_3, 5_3)
the features are unit-normalised along channels, their squared difference is weighted by the
linear layer's non-negative channel weights, averaged over the positions and summed over layers.
Inputs here are [H,W,3] RGB (uint8 or float in [0,1]) at any size >= 32 (aligned crops: the
compare tool uses 256x256); 0 means identical.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import VideoinvError
from .image import to_unit

BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)

# the backbones' ``features`` as (kind, argument) in torchvision's index order
_ALEX = [("conv", (3, 64, 11, 4, 2)), ("relu", None), ("pool", 3), ("conv", (64, 192, 5, 1, 2)), ("relu", None),
         ("pool", 3), ("conv", (192, 384, 3, 1, 1)), ("relu", None), ("conv", (384, 256, 3, 1, 1)), ("relu", None),
         ("conv", (256, 256, 3, 1, 1)), ("relu", None)]
_ALEX_TAPS = (1, 4, 7, 9, 11)  # relu1..relu5


def _vgg16() -> list:
    layers, c = [], 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512):
        if v == "M":
            layers.append(("pool", 2))
        else:
            layers += [("conv", (c, v, 3, 1, 1)), ("relu", None)]
            c = v
    return layers


_NETS = {"alex": (_ALEX, _ALEX_TAPS), "vgg": (_vgg16(), (3, 8, 15, 22, 29))}


class LPIPSUnavailable(VideoinvError):
    """A weight file LPIPS needs is missing (the message says which and where it goes)."""


def checkpoint_dir() -> Path:
    """Where torchvision keeps (and we look for) backbone checkpoints."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def lin_weights_path(net: str) -> Path:
    """The linear-layer file shipped in the ``lpips`` wheel (the package is not imported)."""
    spec = importlib.util.find_spec("lpips")
    candidates = [Path(p) / "weights" / "v0.1" / f"{net}.pth" for p in (spec.submodule_search_locations or [])] \
        if spec is not None else []
    if not candidates:
        try:
            candidates = [Path(f.locate()) for f in importlib.metadata.files("lpips") or []
                          if f.as_posix().endswith(f"weights/v0.1/{net}.pth")]
        except importlib.metadata.PackageNotFoundError:
            pass
    for path in candidates:
        if path.is_file():
            return path
    raise LPIPSUnavailable(f"LPIPS unavailable: the linear weights lpips/weights/v0.1/{net}.pth are missing; "
                           "install them with: pip install --no-deps lpips")


def backbone_path(net: str) -> Path:
    path = checkpoint_dir() / BACKBONE_FILES[net]
    if not path.is_file():
        raise LPIPSUnavailable(
            f"LPIPS unavailable: torchvision's {net} checkpoint {path.name} is missing; put it in "
            f"{path.parent} (or set TORCH_HOME to the folder holding hub/checkpoints/{path.name})")
    return path


def lpips_unavailable_reason(net: str = "alex") -> str | None:
    """None when LPIPS-``net`` can be computed here, else the one-line reason."""
    try:
        backbone_path(net)
        if _package() is None:
            lin_weights_path(net)
    except LPIPSUnavailable as err:
        return str(err)
    return None


def _package():
    try:
        import lpips  # noqa: F401  (needs torchvision)
    except Exception:
        return None
    return lpips


def _load(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise LPIPSUnavailable(f"LPIPS unavailable: cannot read {path.name} ({err.__class__.__name__}: {err})") from None


class _Backbone(torch.nn.Module):
    """torchvision's ``features`` of AlexNet/VGG16, returning the five tapped ReLU outputs."""

    def __init__(self, net: str, state: dict):
        super().__init__()
        layers, self.taps = _NETS[net]
        self.plan = list(layers[:self.taps[-1] + 1])
        self.convs = torch.nn.ModuleDict()
        for i, (kind, arg) in enumerate(self.plan):
            if kind != "conv":
                continue
            cin, cout, k, stride, pad = arg
            conv = torch.nn.Conv2d(cin, cout, k, stride, pad)
            try:
                conv.weight.data.copy_(state[f"features.{i}.weight"])
                conv.bias.data.copy_(state[f"features.{i}.bias"])
            except (KeyError, RuntimeError) as err:
                raise LPIPSUnavailable(f"LPIPS unavailable: {BACKBONE_FILES[net]} is not torchvision's {net} "
                                       f"checkpoint (features.{i}: {err.__class__.__name__})") from None
            self.convs[str(i)] = conv

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, (kind, arg) in enumerate(self.plan):
            if kind == "conv":
                x = self.convs[str(i)](x)
            elif kind == "relu":
                x = F.relu(x)
            else:
                x = F.max_pool2d(x, arg, 2)
            if i in self.taps:
                out.append(x)
        return out


class LPIPS:
    """LPIPS-``net`` ("alex" or "vgg"); ``lpips(a, b) -> float``, ``distances(A, B) -> [N]``.

    ``backend``: "auto" (the ``lpips`` package where it imports, else our own), "own" or "lpips".
    Raises :class:`LPIPSUnavailable` at construction when a weight file is missing."""

    def __init__(self, net: str = "alex", device: str | torch.device = "cpu", backend: str = "auto"):
        if net not in BACKBONE_FILES:
            raise VideoinvError(f"LPIPS network must be one of {', '.join(BACKBONE_FILES)}, not {net!r}")
        if backend not in ("auto", "own", "lpips"):
            raise VideoinvError(f"LPIPS backend must be auto, own or lpips, not {backend!r}")
        self.net, self.device = net, torch.device(device)
        backbone = backbone_path(net)  # never let torchvision fetch it
        package = _package() if backend != "own" else None
        if backend == "lpips" and package is None:
            raise LPIPSUnavailable("LPIPS unavailable: the lpips package does not import here (it needs torchvision)")
        if package is not None:
            self.backend = "lpips"
            self.model = package.LPIPS(net=net, verbose=False).to(self.device).eval()
            return
        self.backend = "own"
        lin = _load(lin_weights_path(net))
        self.weights = [lin[f"lin{k}.model.1.weight"].reshape(1, -1, 1, 1).to(self.device) for k in range(5)]
        self.model = _Backbone(net, _load(backbone)).to(self.device).eval()
        self.shift = torch.tensor(SHIFT).view(1, 3, 1, 1).to(self.device)
        self.scale = torch.tensor(SCALE).view(1, 3, 1, 1).to(self.device)

    def _tensor(self, images) -> torch.Tensor:
        """[N,H,W,3] (or one [H,W,3]) images -> [N,3,H,W] float32 in [-1,1]."""
        x = to_unit(images)
        if x.ndim == 3:
            x = x[None]
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).float().to(self.device) * 2 - 1

    @torch.no_grad()
    def distances(self, a, b) -> np.ndarray:
        """LPIPS between corresponding images of two batches, [N] float."""
        x, y = self._tensor(a), self._tensor(b)
        if x.shape != y.shape:
            raise ValueError(f"images differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
        if self.backend == "lpips":
            return self.model(x, y).flatten().cpu().numpy().astype(np.float64)
        n = x.shape[0]
        features = self.model((torch.cat([x, y]) - self.shift) / self.scale)  # one pass for both
        total = torch.zeros(n, device=self.device)
        for f, w in zip(features, self.weights):
            u, v = f[:n], f[n:]
            u = u / (u.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            v = v / (v.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total += ((u - v).pow(2) * w).sum(1).mean((1, 2))
        return total.cpu().numpy().astype(np.float64)

    def __call__(self, a, b) -> float:
        return float(self.distances(a, b)[0])


def lpips_distance(a, b, net: str = "alex") -> float:
    """LPIPS between two images (builds the network each call: use :class:`LPIPS` for many)."""
    return LPIPS(net)(a, b)
