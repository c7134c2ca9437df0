"""StyleGAN2 generator with the rosinality checkpoint layout, plus FeatureStyleEncoder's
feature-tensor injection.

Layer order and latent use (``L = log2(size)``, ``n_latent = 2L - 2``): the styled convs
``conv1, convs.0, convs.1, ...`` ("styled conv number j" is ``conv1`` for j = 0 and ``convs.{j-1}``
otherwise) consume ``w[0], w[1], ...``; the ToRGBs ``to_rgb1, to_rgbs.0, ...`` consume the odd
indices ``w[1], w[3], ...``; styled conv j uses ``noises.noise_j``. The image is the sum of the
upsampled ToRGB outputs, nominally in [-1, 1] (no clamp).

Feature injection at ``k`` (FeatureStyleEncoder uses k = 5): the activation *entering* styled conv
number k (= the output of styled conv k - 1, e.g. ``convs.3``'s [B,512,16,16] for k = 5) is
replaced by the given tensor; everything before, including the RGB skip accumulated so far, is
computed from ``w`` on the generator's own activations.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .ops import SLOPE, SQRT2, EqualLinear, FusedLeakyReLU, ModulatedConv2d, PixelNorm, Upsample

BLUR = (1, 3, 3, 1)


def channel_table(size: int, channel_multiplier: int = 2, channels: int | dict | None = None) -> dict[int, int]:
    """Channels per resolution (config-f for multiplier 2); ``channels`` caps every width (int)
    or gives the whole table (dict resolution -> channels, as read off a checkpoint)."""
    if isinstance(channels, dict):
        missing = [2 ** i for i in range(2, int(math.log2(size)) + 1) if 2 ** i not in channels]
        if missing:
            raise ValueError(f"channel table lacks resolutions {missing}")
        return {r: int(c) for r, c in channels.items() if r <= size}
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * channel_multiplier,
             128: 128 * channel_multiplier, 256: 64 * channel_multiplier, 512: 32 * channel_multiplier,
             1024: 16 * channel_multiplier}
    if channels is not None:
        table = {r: min(c, channels) for r, c in table.items()}
    return {r: c for r, c in table.items() if r <= size}


class NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return x + self.weight.to(x.dtype) * noise.to(x.dtype)


class ConstantInput(nn.Module):
    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.expand(batch, -1, -1, -1)


class StyledConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, style_dim: int, upsample: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, style_dim, upsample=upsample, blur_taps=BLUR)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channels)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor,
                mode: str | None = None) -> torch.Tensor:
        # sqrt2 * lrelu(conv + noise + bias) = lrelu(sqrt2 * (conv + bias) + sqrt2 * noise): the
        # conv applies the gain and adds the bias without passes of their own (ModulatedConv2d),
        # so only the noise and the activation go over the output (at 1024x1024 each pass is
        # 128 MB of memory traffic per face)
        out = self.conv(x, style, bias=self.activate.bias, gain=SQRT2, mode=mode)
        noise = (self.noise.weight * SQRT2).to(out.dtype) * noise.to(out.dtype)
        if torch.is_grad_enabled():
            return F.leaky_relu(out + noise, SLOPE)
        # inference: in place on the conv's fresh output (one buffer instead of three)
        return F.leaky_relu_(out.add_(noise), SLOPE)


class ToRGB(nn.Module):
    def __init__(self, in_channels: int, style_dim: int, upsample: bool = True):
        super().__init__()
        if upsample:
            self.upsample = Upsample(BLUR)
        self.conv = ModulatedConv2d(in_channels, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None,
                mode: str | None = None) -> torch.Tensor:
        out = self.conv(x, style, bias=self.bias.view(-1), mode=mode)  # the bias added by the conv (no pass of its own)
        if skip is not None:
            out = out + self.upsample(skip)
        return out


class _Noises(nn.Module):
    """Holds the stored noise buffers ``noise_0 ... noise_{num_layers-1}`` ([1,1,R,R])."""


class StyleGAN2Generator(nn.Module):
    """StyleGAN2 generator; ``state_dict`` keys are rosinality's (``g_ema`` of the official
    converted checkpoints).

    ``size``: output resolution (8..1024); ``channels``: cap every layer's width (tiny test
    models) or give the full table. See the module docstring for the layer/latent layout.

    Activations run in ``layouts[device type]`` (default: contiguous). On the CPU that is
    channels-last: oneDNN's convolutions take it without converting, and with it the 256x256
    layers of ``random:256:32`` synthesise 20-25% faster.
    """

    layouts = {"cpu": torch.channels_last}

    def __init__(self, size: int = 1024, style_dim: int = 512, n_mlp: int = 8, channel_multiplier: int = 2,
                 channels: int | dict | None = None, lr_mlp: float = 0.01):
        super().__init__()
        if size < 8 or size & (size - 1) or size > 1024:
            raise ValueError(f"size must be a power of two between 8 and 1024, not {size}")
        self.size, self.style_dim = size, style_dim
        self.log_size = int(math.log2(size))
        self.n_latent = self.log_size * 2 - 2
        self.num_layers = self.log_size * 2 - 3
        self.channels = channel_table(size, channel_multiplier, channels)
        self.style = nn.Sequential(PixelNorm(), *[EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation=True)
                                                  for _ in range(n_mlp)])
        c = self.channels
        self.input = ConstantInput(c[4])
        self.conv1 = StyledConv(c[4], c[4], style_dim)
        self.to_rgb1 = ToRGB(c[4], style_dim, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = _Noises()
        for j in range(self.num_layers):
            res = 2 ** ((j + 5) // 2)
            self.noises.register_buffer(f"noise_{j}", torch.randn(1, 1, res, res))
        in_ch = c[4]
        for i in range(3, self.log_size + 1):
            out_ch = c[2 ** i]
            self.convs.append(StyledConv(in_ch, out_ch, style_dim, upsample=True))
            self.convs.append(StyledConv(out_ch, out_ch, style_dim))
            self.to_rgbs.append(ToRGB(out_ch, style_dim))
            in_ch = out_ch

    # -- latents ----------------------------------------------------------------------------
    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` [B,512] -> ``w`` [B,512] (pixel norm + MLP)."""
        return self.style(z)

    @staticmethod
    def truncate(w: torch.Tensor, psi: float, latent_avg: torch.Tensor) -> torch.Tensor:
        """``latent_avg + psi * (w - latent_avg)`` (``latent_avg`` [512] or [n_latent,512])."""
        return latent_avg + psi * (w - latent_avg)

    def _wplus(self, w: torch.Tensor) -> torch.Tensor:
        if w.ndim == 2:
            w = w[:, None].expand(-1, self.n_latent, -1)
        if w.ndim != 3 or w.shape[1] != self.n_latent:
            raise ValueError(f"W+ must be [B,{self.n_latent},{self.style_dim}], got {tuple(w.shape)}")
        return w

    # -- noise ------------------------------------------------------------------------------
    def stored_noise(self) -> list[torch.Tensor]:
        return [getattr(self.noises, f"noise_{j}") for j in range(self.num_layers)]

    def make_noise(self, seed: int, device=None) -> list[torch.Tensor]:
        """One noise set ([1,1,R,R] per layer) drawn from ``seed`` on the CPU, so a seed gives the
        same noise on every device; broadcast over the batch (one set per video)."""
        g = torch.Generator().manual_seed(int(seed))
        device = device if device is not None else self.input.input.device
        return [torch.randn(tuple(n.shape), generator=g).to(device) for n in self.stored_noise()]

    def _noise(self, noise, noise_seed) -> list[torch.Tensor]:
        if noise is not None:
            if len(noise) != self.num_layers:
                raise ValueError(f"noise needs {self.num_layers} tensors, got {len(noise)}")
            return list(noise)
        if noise_seed is not None:
            return self.make_noise(noise_seed)
        return self.stored_noise()

    # -- synthesis --------------------------------------------------------------------------
    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in this device's activation layout, with that layout's own strides: a size-1
        dimension may carry any stride and still pass ``is_contiguous``, and then a conv takes
        the tensor for the other layout (another algorithm, other roundings)."""
        layout = self.layouts.get(x.device.type)
        if layout is None:
            return x
        out = torch.empty_like(x, memory_format=layout)
        return x if out.stride() == x.stride() else out.copy_(x)

    def _layers(self, w: torch.Tensor, noise: Sequence[torch.Tensor], start: int, stop: int,
                out: torch.Tensor | None = None, skip: torch.Tensor | None = None,
                rgb: bool = True, mode: str | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Styled convs number ``start`` to ``stop - 1`` with their ToRGBs, from ``out`` (the
        activation entering conv ``start``) and ``skip`` (the RGB image so far); returns both
        after conv ``stop - 1``. ``rgb=False`` leaves the ToRGBs out (the skip is then stale).
        ``out`` and ``skip`` are put in the activation layout here, so that a traced call does
        that too, without an operator called from Python. ``mode``: the modulated convs' form
        (None: as ``ModulatedConv2d.forward`` decides)."""
        if out is not None:
            out = self._layout(out)
        if skip is not None:
            skip = self._layout(skip)
        for j in range(start, stop):
            if j == 0:
                out = self.conv1(self._layout(self.input(w.shape[0]).to(w.dtype)), w[:, 0], noise[0], mode)
                skip = self.to_rgb1(out, w[:, 1], mode=mode) if rgb else None
                continue
            out = self.convs[j - 1](out, w[:, j], noise[j], mode)
            if j % 2 == 0 and rgb:  # the second conv of a resolution: its ToRGB adds to the skip
                skip = self.to_rgbs[j // 2 - 1](out, w[:, j + 1], skip, mode)
        return out, skip

    def _check_k(self, k: int) -> None:
        if not 1 <= k < self.num_layers:
            raise ValueError(f"k must be in 1..{self.num_layers - 1}, got {k}")

    def side_entering(self, k: int) -> int:
        """The side of the activation entering styled conv ``k`` (4 for conv1; 16 for k = 4, 5)."""
        self._check_k(k)
        return 4 * 2 ** (k // 2)

    def synthesize(self, wplus: torch.Tensor, feature: torch.Tensor | None = None, k: int = 5,
                   noise: Sequence[torch.Tensor] | None = None, noise_seed: int | None = None) -> torch.Tensor:
        """W+ [B,n_latent,512] (or W [B,512], broadcast) -> image [B,3,size,size], about [-1,1].

        ``feature``: replace the activation entering styled conv ``k`` (e.g. [B,512,16,16] at
        k=5). ``noise``: a list of per-layer tensors; ``noise_seed``: draw one set from a seed;
        neither: the stored noise buffers."""
        w, noise = self._wplus(wplus), self._noise(noise, noise_seed)
        if feature is None:
            return self._layers(w, noise, 0, self.num_layers)[1]
        self._check_k(k)
        _, skip = self._layers(w, noise, 0, k)
        return self.synthesize_from(w, feature, skip, k, noise)

    def synthesize_from(self, wplus: torch.Tensor, feature: torch.Tensor, skip: torch.Tensor, k: int = 5,
                        noise: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """The layers from styled conv ``k`` on: ``feature`` enters conv k and ``skip`` is the
        RGB image the layers before it made from ``wplus`` (see :meth:`edit_head`)."""
        w = self._wplus(wplus)
        return self._layers(w, self._noise(noise, None), k, self.num_layers, feature, skip)[1]

    def edit_head(self, w: torch.Tensor, w_edited: torch.Tensor, feature: torch.Tensor, k: int = 5,
                  noise: Sequence[torch.Tensor] | None = None, moved: bool | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """The layers before styled conv ``k`` for a feature edit, in one pass over [w; w~]:
        the corrected feature ``F + G_k(w~) - G_k(w)`` (the FeatureStyleEncoder's Eq. 1; rows
        where w~ equals w keep F exactly) and the RGB skip of ``w~`` that
        :meth:`synthesize_from` continues. ``noise``: one set ([1,...]) or one per row ([B,...]).
        ``moved``: whether any row of w~ differs from w, where the caller knows (False must be
        true); None compares them, which on a GPU waits for the work queued before."""
        self._check_k(k)
        w, w_edited, noise = self._wplus(w), self._wplus(w_edited), self._noise(noise, None)
        rows = (w != w_edited).flatten(1).any(1).view(-1, 1, 1, 1)  # the rows to correct
        if not (bool(rows.any()) if moved is None else moved):  # nothing to correct: only w~'s skip is needed
            return feature, self._layers(w_edited, noise, 0, k)[1]
        noise = [n if n.shape[0] == 1 else torch.cat([n, n]) for n in noise]
        both, skip = self._layers(torch.cat([w, w_edited]), noise, 0, k)
        f_w, f_edited = both.chunk(2)
        return torch.where(rows, feature + f_edited - f_w, feature), skip.chunk(2)[1]

    def features_at(self, wplus: torch.Tensor, k: int = 5, noise: Sequence[torch.Tensor] | None = None,
                    noise_seed: int | None = None) -> torch.Tensor:
        """The activation entering styled conv ``k`` (the output of the k-th styled conv counted
        from 1 = ``conv1``): [B,512,16,16] for k = 5. Runs only the layers needed."""
        self._check_k(k)
        return self._layers(self._wplus(wplus), self._noise(noise, noise_seed), 0, k, rgb=False)[0]

    def forward(self, wplus: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.synthesize(wplus, **kwargs)


class LayersRunner:
    """A generator whose ``_layers`` (every styled conv and ToRGB the synthesis runs) a subclass
    replaces (compiled, traced): the synthesis methods run the generator's own code around it,
    and every other attribute is the generator's own."""

    RUN_HERE = ("synthesize", "synthesize_from", "edit_head", "features_at")

    def __init__(self, G: StyleGAN2Generator):
        self.G = G

    def __getattr__(self, name):
        if name in self.RUN_HERE:  # the generator's method as its class has it now, run on this
            # runner; bound at each access (bound methods kept on the instance made a cycle,
            # which only Python's cycle collector freed)
            return getattr(StyleGAN2Generator, name).__get__(self)
        return getattr(self.G, name)
