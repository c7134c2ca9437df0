"""ArcFace identity embeddings (InsightFace's IResNet-50/100), used when their weights are present.

The network is InsightFace's ``arcface_torch`` IResNet (the trunk FeatureStyleEncoder is built
on, see models/encoder.py): conv 3x3 + BN + PReLU, four layers of pre-activation basic blocks,
then BN, flatten (512 x 7 x 7), a linear layer to 512 and a 1-d BN (``features``). Checkpoint: a
bare state_dict with those names (``backbone.pth`` of arcface_torch), read with
``weights_only=True``. Input: the face warped to 112x112 by the similarity transform that puts
five landmarks (eye centres, nose tip, mouth corners, from dlib's 68) on ArcFace's template,
RGB scaled to [-1, 1]. The embedding is unit-normalised; cosines of the same person are
typically above 0.5 and of different people near 0 (unlike dlib's, which are all high).

Where the weights are looked for: ``$VIDEOINV_ARCFACE`` if set, else ``arcface-r50.pth`` in the
weight cache (``videoinv weights`` prints where that is).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from ..errors import VideoinvError
from ..models.encoder import _layer

# ArcFace's 112x112 template: left eye, right eye, nose tip, left and right mouth corner
TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                     [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)
DEPTHS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}


class IResNet(nn.Module):
    """InsightFace's IResNet with arcface_torch's module names (``layers``: blocks per stage)."""

    def __init__(self, layers=DEPTHS[50], embedding: int = 512):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        cin = 64
        for i, (cout, blocks) in enumerate(zip((64, 128, 256, 512), layers), 1):
            setattr(self, f"layer{i}", _layer(cin, cout, blocks))
            cin = cout
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.fc = nn.Linear(512 * 7 * 7, embedding)
        self.features = nn.BatchNorm1d(embedding, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.features(self.fc(self.bn2(x).flatten(1)))


def default_path() -> Path:
    env = os.environ.get("VIDEOINV_ARCFACE")
    if env:
        return Path(env)
    from ..models.weights import weights_dir

    return weights_dir() / "arcface-r50.pth"


def available() -> bool:
    return default_path().is_file()


@functools.lru_cache(maxsize=4)
def load(path: str) -> IResNet:
    """The network from an arcface_torch state_dict (depth 50 or 100, read off the keys)."""
    if not Path(path).is_file():
        raise VideoinvError(f"ArcFace weights not found at {path}: put InsightFace's arcface_torch IResNet "
                            "backbone.pth there (or set VIDEOINV_ARCFACE), or use the dlib identity backend")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    blocks = len({k.split(".")[1] for k in state if k.startswith("layer2.")})
    depth = next((d for d, layers in DEPTHS.items() if layers[1] == blocks), None)
    if depth is None:
        raise VideoinvError(f"{path} is not an arcface_torch IResNet-50/100 state_dict "
                            f"({blocks} blocks in layer2)")
    net = IResNet(DEPTHS[depth])
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or [k for k in unexpected if not k.startswith("dropout")]:
        raise VideoinvError(f"{path} does not fit IResNet-{depth}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return net.eval().requires_grad_(False)


def five_points(landmarks68: np.ndarray) -> np.ndarray:
    """ArcFace's five points from dlib's 68 (iBUG order): eye centres, nose tip, mouth corners."""
    lm = np.asarray(landmarks68, np.float32)
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])


def aligned_112(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``image`` warped so ``points`` land on the template: [112,112,3]."""
    matrix, _ = cv2.estimateAffinePartial2D(np.asarray(points, np.float32), TEMPLATE, method=cv2.LMEDS)
    if matrix is None:
        raise VideoinvError("could not align the face for ArcFace (degenerate landmarks)")
    return cv2.warpAffine(image, matrix, (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


class ArcFaceEmbedder:
    """Unit 512-d ArcFace embeddings of faces given with their 68 landmarks."""

    dim = 512

    def __init__(self, path: str | os.PathLike | None = None, device: str = "cpu"):
        self.net = load(str(path or default_path())).to(device)
        self.device = device

    @torch.no_grad()
    def embed(self, image: np.ndarray, landmarks68: np.ndarray) -> np.ndarray:
        face = aligned_112(image, five_points(landmarks68))
        x = torch.from_numpy(face).to(self.device).permute(2, 0, 1)[None].float() / 127.5 - 1
        v = self.net(x)[0].double().cpu().numpy()
        return v / max(np.linalg.norm(v), 1e-12)
