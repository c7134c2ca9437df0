"""Per-frame fidelity metrics between two images: MSE, PSNR and SSIM.

Convention (the FeatureStyleEncoder paper's, on aligned face crops): images are ``[H,W,3]`` (or
``[H,W]``) RGB, either uint8 in 0..255 or float in [0,1]; both are brought to float64 in [0,1]
first, so MSE is in [0,1]^2 units (the paper's 0.009), PSNR uses a data range of 1 and SSIM
compares [0,1] values. The two images must have the same shape.

SSIM (Wang et al. 2004) uses a normalised 11x11 Gaussian window with sigma 1.5, K1 = 0.01,
K2 = 0.03, population (not sample) variances, evaluated where the whole window lies inside the
image ("valid"), averaged over those positions and then over the channels. That is scikit-image's
``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=1, channel_axis=-1)``.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.ndimage import correlate1d

SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # 11x11 window
SSIM_K1, SSIM_K2 = 0.01, 0.03


def to_unit(image) -> np.ndarray:
    """``image`` as float64 in [0,1] (uint8 is divided by 255; floats are taken as they are)."""
    a = np.asarray(image)
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"images must be uint8 (0..255) or float (0..1), not {a.dtype}")
    return a.astype(np.float64)


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    x, y = to_unit(a), to_unit(b)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} vs {y.shape}")
    return x, y


def mse(a, b) -> float:
    """Mean squared error in [0,1] units."""
    x, y = _pair(a, b)
    return float(np.mean((x - y) ** 2))


def psnr(a, b) -> float:
    """Peak signal-to-noise ratio in dB for a data range of 1 (``inf`` for identical images)."""
    err = mse(a, b)
    return float("inf") if err == 0 else float(10 * np.log10(1.0 / err))


@functools.lru_cache(maxsize=None)
def gaussian_window(sigma: float = SSIM_SIGMA, radius: int = SSIM_RADIUS) -> np.ndarray:
    """The 1-D normalised Gaussian taps [2*radius+1] (the 2-D window is their outer product)."""
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _local_mean(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Gaussian-weighted local means of [H,W,C] at the valid positions [H-2r,W-2r,C]."""
    r = len(taps) // 2
    out = correlate1d(correlate1d(x, taps, axis=0, mode="constant"), taps, axis=1, mode="constant")
    return out[r:x.shape[0] - r, r:x.shape[1] - r]


def ssim_map(a, b) -> np.ndarray:
    """The SSIM index at every valid window position, [H-10, W-10, C] (C=1 for grey input)."""
    x, y = _pair(a, b)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    taps = gaussian_window()
    if min(x.shape[:2]) < len(taps):
        raise ValueError(f"SSIM needs images of at least {len(taps)}x{len(taps)} pixels, not {x.shape[:2]}")
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2  # data range 1
    mx, my = _local_mean(x, taps), _local_mean(y, taps)
    vx = _local_mean(x * x, taps) - mx * mx
    vy = _local_mean(y * y, taps) - my * my
    cxy = _local_mean(x * y, taps) - mx * my
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def ssim(a, b) -> float:
    """Mean SSIM (1 for identical images), averaged over window positions, then channels."""
    return float(ssim_map(a, b).mean(axis=(0, 1)).mean())
