"""StyleGAN2's building blocks in plain PyTorch (no compiled extension): FIR resampling
(upfirdn2d), bias + leaky ReLU with gain, equalised-learning-rate layers and the modulated
convolution. Each op runs on CPU and CUDA, in float32/float64 and under bf16/fp16 autocast; the
``*_reference`` functions are slow, loop-based float64 versions kept to check the fast ones.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)
SLOPE = 0.2  # StyleGAN2's leaky ReLU


# -- FIR resampling --------------------------------------------------------------------------
def make_kernel(taps) -> torch.Tensor:
    """2-D FIR from 1-D taps (outer product), normalised to sum 1."""
    k = torch.as_tensor(taps, dtype=torch.float32)
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    return k / k.sum()


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1,
              pad: tuple[int, int] = (0, 0), bias: torch.Tensor | None = None) -> torch.Tensor:
    """Upsample by zero insertion (each sample followed by ``up - 1`` zeros), pad ``pad[0]``
    before and ``pad[1]`` after on both axes (negative pads crop), convolve with the 2-D FIR
    ``kernel`` (a true convolution, i.e. flipped), keep every ``down``-th sample; then add
    ``bias`` [C] per channel (inside the filtering conv where it is one: no pass of its own).
    ``x``: [B,C,H,W] -> [B,C,H',W'].

    Where the pads allow it the same sums are formed in one op that keeps the input's memory
    format: upsampling as a depthwise transposed conv (it scatters each sample through the
    kernel, which is zero insertion followed by the convolution) cropped to the padded window,
    and plain filtering with the conv's own padding."""
    b, c, h, w = x.shape
    p0, p1 = pad
    kh = kernel.shape[0]
    if bias is not None and not (up == 1 and down == 1 and p0 == p1 >= 0):
        return upfirdn2d(x, kernel, up, down, pad) + bias.to(x.dtype).view(1, -1, 1, 1)
    if up > 1 and down == 1 and kernel.shape[0] == kernel.shape[1] and 0 <= kh - 1 - p0 and p1 <= kh - up:
        weight = kernel.to(x.dtype)[None, None].expand(c, 1, kh, kh)
        out = F.conv_transpose2d(x, weight, stride=up, groups=c)
        first = kh - 1 - p0
        return out[:, :, first:first + h * up + p0 + p1 - kh + 1, first:first + w * up + p0 + p1 - kh + 1]
    if up == 1 and p0 == p1 >= 0:
        weight = torch.flip(kernel, [0, 1]).to(x.dtype)[None, None].expand(c, 1, *kernel.shape)
        out = F.conv2d(x, weight, None if bias is None else bias.to(x.dtype), padding=p0, groups=c)
        return out[:, :, ::down, ::down] if down > 1 else out
    if up > 1:
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(b, c, h * up, w * up)
    x = F.pad(x, [p0, p1, p0, p1])
    weight = torch.flip(kernel, [0, 1]).to(x.dtype)[None, None].expand(c, 1, *kernel.shape)
    x = F.conv2d(x, weight, groups=c)
    return x[:, :, ::down, ::down] if down > 1 else x


def upfirdn2d_reference(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1,
                        pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """The same operation spelled out tap by tap in float64 (slow; for tests)."""
    x = x.double()
    k = kernel.double()
    b, c, h, w = x.shape
    z = x.new_zeros(b, c, h * up, w * up)
    z[:, :, ::up, ::up] = x
    p0, p1 = pad
    z = F.pad(z, [max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
    z = z[:, :, max(-p0, 0):z.shape[2] - max(-p1, 0), max(-p0, 0):z.shape[3] - max(-p1, 0)]
    kh, kw = k.shape
    oh, ow = z.shape[2] - kh + 1, z.shape[3] - kw + 1
    out = x.new_zeros(b, c, oh, ow)
    for i in range(kh):
        for j in range(kw):
            out += z[:, :, i:i + oh, j:j + ow] * k[kh - 1 - i, kw - 1 - j]
    return out[:, :, ::down, ::down]


class Blur(nn.Module):
    """FIR filter with padding (after a transposed conv). ``kernel`` is a buffer (checkpoint key)."""

    def __init__(self, taps, pad: tuple[int, int], gain: float = 1.0):
        super().__init__()
        self.register_buffer("kernel", make_kernel(taps) * gain)
        self.pad = pad

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad, bias=bias)


class Upsample(nn.Module):
    """2x FIR upsampling (zero insertion + filter with gain 4), as for the ToRGB skip."""

    def __init__(self, taps, factor: int = 2):
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(taps) * factor ** 2)
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


# -- activation -------------------------------------------------------------------------------
def bias_leaky_relu(x: torch.Tensor, bias: torch.Tensor, slope: float = SLOPE, gain: float = SQRT2,
                    inplace: bool = False) -> torch.Tensor:
    """``leaky_relu(x + bias) * gain``; ``bias`` [C] broadcast over dim 1. ``inplace``: the same
    operations written into ``x`` (no new buffers; not for tensors autograd needs)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if inplace:
        return F.leaky_relu_(x.add_(bias.to(x.dtype).view(shape)), slope).mul_(gain)
    return F.leaky_relu(x + bias.to(x.dtype).view(shape), slope) * gain


class FusedLeakyReLU(nn.Module):
    """Bias + leaky ReLU + sqrt(2) gain; its bias is the ``*.activate.bias`` checkpoint key."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        return bias_leaky_relu(x, self.bias, inplace=inplace)


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x * x, dim=1, keepdim=True) + 1e-8)


# -- equalised learning rate ------------------------------------------------------------------
class EqualLinear(nn.Module):
    """Linear layer whose stored weight is scaled at run time by ``lr_mul / sqrt(in)`` (and its
    bias by ``lr_mul``); optionally followed by bias + leaky ReLU with gain."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation:
            return bias_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


# -- modulated convolution --------------------------------------------------------------------
def _pointwise(weight: torch.Tensor, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """A per-sample 1x1 conv, ``weight`` [B,out,in] applied to ``x`` [B,in,H,W], plus ``bias``
    [out], with the result in ``x``'s memory format. Channels-last ``x`` is read as the
    [B,H*W,in] matrix it is in memory: a matrix product over its channels would otherwise first
    copy it to channels-first (the 256x256 ToRGB input of random:256:32 is 8 MB), and the
    channels-first result made the RGB skip's 2x upsampling take the slow path of a depthwise
    transposed conv (4-8x slower). The bias goes in with the product: added afterwards to a
    channels-last [B,3,H,W] it runs a slow loop over 3 channels (10 ms at 1024x1024 in bf16)."""
    b, cin, h, w = x.shape
    if cin > 1 and h * w > 1 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        x = x.permute(0, 2, 3, 1).reshape(b, h * w, cin)
        out = torch.bmm(x, weight.transpose(1, 2)) if bias is None else \
            torch.baddbmm(bias.view(1, 1, -1), x, weight.transpose(1, 2))
        return out.view(b, h, w, -1).permute(0, 3, 1, 2)
    out = torch.einsum("boi,bihw->bohw", weight, x)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


CONV_MODE: ContextVar[str | None] = ContextVar("videoinv_conv_mode", default=None)


@contextmanager
def conv_mode(mode: str | None):
    """Run the modulated convs of this thread in ``mode`` ("grouped" or "shared"; None: the
    class default) inside the block."""
    if mode not in (None, "grouped", "shared"):
        raise ValueError(f"conv mode must be grouped or shared, not {mode!r}")
    token = CONV_MODE.set(mode)
    try:
        yield
    finally:
        CONV_MODE.reset(token)


def active_conv_mode() -> str:
    """The form the modulated convs of this thread run in now: its ``conv_mode``, else the class
    default."""
    return CONV_MODE.get() or ModulatedConv2d.mode


class ModulatedConv2d(nn.Module):
    """StyleGAN2's style-modulated convolution (optionally demodulated, optionally 2x upsampling
    through a transposed conv + blur).

    Stored weight ``[1,out,in,k,k]`` (equalised lr, scale ``1/sqrt(in*k*k)``); ``modulation`` maps
    a style ``[B,style_dim]`` to per-input-channel scales ``s`` ``[B,in]``. Two equivalent forms:
    ``mode="grouped"`` builds a weight per sample and runs one grouped conv (groups = batch);
    ``mode="shared"`` scales the activations by ``s``, runs the shared weight, and applies the
    demodulation to the output (cheaper for large batches). ``x`` [B,in,H,W] -> [B,out,H',W'].

    ``bias`` [out] and ``gain`` give ``gain * (conv + bias)`` with no pass over the output of
    their own: the gain scales the weights (or the demodulation), and the bias is added by the
    convolution that makes the output (the blur's, when upsampling).
    """

    mode = "grouped"

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True, upsample: bool = False, blur_taps=(1, 3, 3, 1)):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.upsample = upsample
        self.demodulate = demodulate
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1.0)
        self.padding = kernel_size // 2
        if upsample:
            p = (len(blur_taps) - 2) - (kernel_size - 1)
            self.blur = Blur(blur_taps, pad=((p + 1) // 2 + 1, p // 2 + 1), gain=4)

    def forward(self, x: torch.Tensor, style: torch.Tensor, bias: torch.Tensor | None = None,
                gain: float = 1.0, mode: str | None = None) -> torch.Tensor:
        """``mode``: the form for this call; None: ``active_conv_mode()``. Compiled callers pass it: ``torch.compile`` cannot read a ContextVar, and
        every read split the compiled graph in two (see tuning.CompiledGenerator)."""
        s = self.modulation(style)  # [B, in]
        if bias is not None:
            bias = bias * gain if gain != 1 else bias
        if (mode or active_conv_mode()) == "shared":
            return self._shared(x, s, bias, gain)
        return self._grouped(x, s, bias, gain)

    def _demod(self, s: torch.Tensor) -> torch.Tensor:
        """rsqrt of the sum of squares of each sample's modulated weight: [B, out]."""
        w2 = (self.weight[0] * self.scale).square().sum(dim=(2, 3))  # [out, in]
        return torch.rsqrt(s.square() @ w2.t().to(s.dtype) + 1e-8)

    def _grouped(self, x: torch.Tensor, s: torch.Tensor, bias: torch.Tensor | None, gain: float) -> torch.Tensor:
        b, cin, h, w = x.shape
        weight = self.scale * self.weight * s.view(b, 1, cin, 1, 1)  # [B,out,in,k,k]
        if self.demodulate:
            demod = torch.rsqrt(weight.square().sum(dim=(2, 3, 4)) + 1e-8)
            weight = weight * (demod * gain if gain != 1 else demod).view(b, -1, 1, 1, 1)
        elif gain != 1:
            weight = weight * gain
        bias = None if bias is None else bias.to(x.dtype)
        k = self.kernel_size
        if k == 1 and not self.upsample:  # a per-sample matrix product (ToRGB), in x's memory format
            return _pointwise(weight[:, :, :, 0, 0].to(x.dtype), x, bias)
        # one sample: no regrouping, whose reshape would also drop a channels-last layout
        x = x.reshape(1, b * cin, h, w) if b > 1 else x
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(b * cin, self.out_channels, k, k)
            out = F.conv_transpose2d(x, weight.to(x.dtype), stride=2, groups=b)
            out = out.view(b, self.out_channels, *out.shape[2:]) if b > 1 else out
            return self.blur(out, bias)
        if bias is not None and b > 1:
            bias = bias.repeat(b)
        out = F.conv2d(x, weight.reshape(b * self.out_channels, cin, k, k).to(x.dtype), bias,
                       padding=self.padding, groups=b)
        return out.view(b, self.out_channels, h, w) if b > 1 else out

    def _shared(self, x: torch.Tensor, s: torch.Tensor, bias: torch.Tensor | None, gain: float) -> torch.Tensor:
        weight = (self.weight[0] * self.scale).to(x.dtype)  # [out, in, k, k]
        x = x * s.to(x.dtype)[:, :, None, None]
        if not self.demodulate and not self.upsample:  # the gain and bias go into the conv
            weight = weight * gain if gain != 1 else weight
            return F.conv2d(x, weight, None if bias is None else bias.to(x.dtype), padding=self.padding)
        if self.upsample:
            out = self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2))
        else:
            out = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:  # the demodulation, gain and bias in one pass
            demod = self._demod(s)
            scale = (demod * gain if gain != 1 else demod).to(out.dtype)[:, :, None, None]
            if bias is None:
                return out * scale
            return torch.addcmul(bias.to(out.dtype).view(1, -1, 1, 1), out, scale)
        out = out * gain if gain != 1 else out
        return out if bias is None else out + bias.to(out.dtype).view(1, -1, 1, 1)  # (upsampled, undemodulated)


def modulated_conv2d_reference(conv: ModulatedConv2d, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """The modulated conv of one sample at a time, in float64, with the upsampling done as
    zero insertion + padded correlation with the 180-degree rotated kernel + blur (slow; tests)."""
    x, style = x.double(), style.double()
    mod = conv.modulation
    s = F.linear(style, mod.weight.double() * mod.scale, mod.bias.double() * mod.lr_mul)
    outs = []
    k = conv.kernel_size
    for i in range(x.shape[0]):
        weight = conv.scale * conv.weight[0].double() * s[i].view(1, -1, 1, 1)
        if conv.demodulate:
            weight = weight / torch.sqrt(weight.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        xi = x[i:i + 1]
        if conv.upsample:
            z = xi.new_zeros(1, xi.shape[1], 2 * xi.shape[2] - 1, 2 * xi.shape[3] - 1)
            z[:, :, ::2, ::2] = xi
            out = F.conv2d(F.pad(z, [k - 1] * 4), torch.flip(weight, [2, 3]))
            out = upfirdn2d_reference(out, conv.blur.kernel, pad=conv.blur.pad)
        else:
            out = F.conv2d(xi, weight, padding=conv.padding)
        outs.append(out)
    return torch.cat(outs)
