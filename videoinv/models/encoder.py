"""FeatureStyleEncoder (Yao et al., ECCV 2022) with the layout of the official ``143_enc.pth``.

An ArcFace IResNet-50 trunk (``conv``, ``block_1..4``) feeds two branches:

* style: each block's output is average-pooled to 3x3 (PyTorch's adaptive pooling, whose bins
  overlap), the four maps are concatenated on channels (960 x 3 x 3) and flattened channel-major
  (8640 values), and 18 plain linear heads give the W+ offset [B,18,512];
* feature: ``content_layer`` turns ``block_3``'s [B,256,32,32] into F [B,512,16,16] (its last
  conv has stride 2).

Input: [B,3,256,256] in [-1,1]. The model returns the W+ offset; add the generator's
``latent_avg`` outside. BatchNorm runs on its stored statistics (call ``eval()``).
"""

from __future__ import annotations

import copy
import threading
import weakref

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

LAYERS = (3, 4, 14, 3)  # IResNet-50


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


class IBasicBlock(nn.Module):
    """BN -> conv3x3 -> BN -> PReLU -> conv3x3 (stride here) -> BN, plus the shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = _conv3x3(cin, cout)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5)
        self.prelu = nn.PReLU(cout)
        self.conv2 = _conv3x3(cout, cout, stride)
        self.bn3 = nn.BatchNorm2d(cout, eps=1e-5)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout, eps=1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


def _layer(cin: int, cout: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(IBasicBlock(cin, cout, 2), *[IBasicBlock(cout, cout, 1) for _ in range(blocks - 1)])


class FeatureStyleEncoder(nn.Module):
    """``E(x) -> (w_offset [B,n_styles,style_dim], F [B,feature_channels,16,16])``.

    ``width``: the trunk's first width (64 in the release: 64/128/256/512 per block);
    ``feature_channels``: channels of F (the generator's width at 16x16, 512 for FFHQ).
    Smaller values build tiny test models with the same structure.

    The input is taken in ``layouts[device type]`` (elsewhere: as it comes): channels-last on
    the CPU, where oneDNN convolves it without converting (a batch of 8 encodes 14-28% faster per
    face than from NCHW; the crops the invert stage cuts are channels-last already, and the
    weights' layout made no difference)."""

    layouts = {"cpu": torch.channels_last}
    feature_side = 16  # F's side for the 256x256 input the invert stage gives it

    def __init__(self, n_styles: int = 18, style_dim: int = 512, width: int = 64, feature_channels: int = 512):
        super().__init__()
        widths = [width, 2 * width, 4 * width, 8 * width]
        self.n_styles, self.style_dim = n_styles, style_dim
        self.conv = nn.Sequential(_conv3x3(3, width), nn.BatchNorm2d(width, eps=1e-5), nn.PReLU(width))
        cin = width
        for i, (cout, blocks) in enumerate(zip(widths, LAYERS), 1):
            setattr(self, f"block_{i}", _layer(cin, cout, blocks))
            cin = cout
        self.content_layer = nn.Sequential(
            nn.BatchNorm2d(widths[2], eps=1e-5), _conv3x3(widths[2], feature_channels),
            nn.BatchNorm2d(feature_channels, eps=1e-5), nn.PReLU(feature_channels),
            _conv3x3(feature_channels, feature_channels, stride=2), nn.BatchNorm2d(feature_channels, eps=1e-5))
        pooled = sum(widths) * 9
        self.styles = nn.ModuleList(nn.Linear(pooled, style_dim) for _ in range(n_styles))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        layout = self.layouts.get(x.device.type)
        x = self.conv(x if layout is None else x.contiguous(memory_format=layout))
        f1 = self.block_1(x)
        f2 = self.block_2(f1)
        f3 = self.block_3(f2)
        f4 = self.block_4(f3)
        pooled = torch.cat([F.adaptive_avg_pool2d(f, (3, 3)) for f in (f1, f2, f3, f4)], dim=1).flatten(1)
        w = torch.stack([head(pooled) for head in self.styles], dim=1)
        return w, self.content_layer(f3)


def _fold(parent: nn.Module, conv: str, bn: str) -> None:
    """Fold ``parent.<bn>`` (a BatchNorm right after ``parent.<conv>``) into the conv's weights
    and bias."""
    setattr(parent, conv, fuse_conv_bn_eval(getattr(parent, conv), getattr(parent, bn)))
    setattr(parent, bn, nn.Identity())


def _fold_sequential(seq: nn.Sequential) -> None:
    names = list(seq._modules)
    for a, b in zip(names, names[1:]):
        if isinstance(seq._modules[a], nn.Conv2d) and isinstance(seq._modules[b], nn.BatchNorm2d):
            _fold(seq, a, b)


def fold_batchnorm(E: FeatureStyleEncoder) -> FeatureStyleEncoder:
    """A copy of ``E`` for inference in which every BatchNorm that follows a convolution is
    folded into it (55 of the 80; those before a convolution stay, since the conv's zero padding
    would see their offset). The same function up to float rounding (about 1e-6 relative), with
    a third fewer passes over the activations: the light test encoders run 24-30% faster, the
    release one 1-3%. The style heads, most of the weights, are shared with ``E``, not copied."""
    if E.training:
        raise ValueError("fold_batchnorm needs the encoder in eval mode (BatchNorm on its stored statistics)")
    folded = copy.deepcopy(E, memo={id(E.styles): E.styles})
    _fold_sequential(folded.conv)
    for i in range(1, len(LAYERS) + 1):
        for block in getattr(folded, f"block_{i}"):
            _fold(block, "conv1", "bn2")
            _fold(block, "conv2", "bn3")
            if block.downsample is not None:
                _fold_sequential(block.downsample)
    _fold_sequential(folded.content_layer)
    return folded.eval()


_FOLDED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FOLDED_LOCK = threading.Lock()


def inference_encoder(E: FeatureStyleEncoder) -> FeatureStyleEncoder:
    """``fold_batchnorm(E)``, made once per encoder and kept with it (stages built for later
    runs reuse it, and the traces recorded of it)."""
    with _FOLDED_LOCK:
        if E not in _FOLDED:
            _FOLDED[E] = fold_batchnorm(E)
        return _FOLDED[E]


def encoder_input(aligned: torch.Tensor) -> torch.Tensor:
    """The encoder's 256x256 input from an aligned crop [B,3,S,S] in [-1,1] (S = 256 * 2^n):
    successive bilinear halvings, as FeatureStyleEncoder's preprocessing does (for even sizes
    each halving is exactly a 2x2 average)."""
    x = aligned
    while x.shape[-1] > 256:
        x = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
    if x.shape[-1] != 256:
        raise ValueError(f"the aligned crop must be 256 * 2^n pixels wide, got {aligned.shape[-1]}")
    return x
