"""MSE/PSNR/SSIM on a real aligned face: known answers and agreement with scikit-image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from metric_faces import astronaut
from videoinv.metrics.image import mse, psnr, ssim, ssim_map, to_unit


def _variants() -> dict[str, np.ndarray]:
    face = astronaut(256)
    rng = np.random.default_rng(7)
    noisy = np.clip(face + rng.normal(0, 12, face.shape), 0, 255).astype(np.uint8)
    return {"noise": noisy,
            "blur": cv2.GaussianBlur(face, (0, 0), 2.0),
            "shift": np.roll(face, (3, -2), axis=(0, 1)),
            "jpeg": cv2.imdecode(cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, 30])[1], cv2.IMREAD_UNCHANGED)}


def test_identical_images():
    face = astronaut(256)
    assert mse(face, face) == 0.0
    assert psnr(face, face) == float("inf")
    assert ssim(face, face) == pytest.approx(1.0, abs=1e-12)


def test_uint8_and_float_agree():
    face, other = astronaut(256), _variants()["noise"]
    assert mse(face, other) == pytest.approx(mse(face / 255.0, other / 255.0), rel=1e-12)
    assert ssim(face, other) == pytest.approx(ssim(face / 255.0, other / 255.0), rel=1e-12)


def test_constant_offset_closed_form():
    face = astronaut(256) / 255.0 * 0.8  # room for the offset without clipping
    d = 0.05
    assert mse(face, face + d) == pytest.approx(d * d, rel=1e-9)
    assert psnr(face, face + d) == pytest.approx(-20 * np.log10(d), rel=1e-9)
    # an offset leaves every variance and covariance alone: only the luminance term drops
    m = ssim_map(face, face + d)
    assert 0.9 < m.mean() < 1.0


def test_known_blur_of_a_checkerboard():
    # a one-pixel checkerboard averaged over 2x2 blocks (a box blur) is flat grey: error 0.25 exactly
    board = (np.indices((64, 64)).sum(0) % 2).astype(np.float64)
    board = np.repeat(board[..., None], 3, axis=2)
    grey = np.full_like(board, 0.5)
    assert mse(board, grey) == pytest.approx(0.25)
    assert psnr(board, grey) == pytest.approx(10 * np.log10(4))
    assert ssim(board, grey) < 0.01  # no structure left


def test_more_blur_is_worse():
    face = astronaut(256)
    blurred = [cv2.GaussianBlur(face, (0, 0), s) for s in (0.7, 1.5, 3.0, 6.0)]
    p = [psnr(face, b) for b in blurred]
    s = [ssim(face, b) for b in blurred]
    assert p == sorted(p, reverse=True) and s == sorted(s, reverse=True)
    assert s[0] > 0.9 and s[-1] < 0.7


@pytest.mark.parametrize("kind", ["noise", "blur", "shift", "jpeg"])
def test_agrees_with_scikit_image(kind):
    a, b = to_unit(astronaut(256)), to_unit(_variants()[kind])
    ref_ssim = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=1, channel_axis=-1)
    assert ssim(a, b) == pytest.approx(ref_ssim, abs=1e-3)
    assert abs(ssim(a, b) - ref_ssim) < 1e-9  # in fact the same formula
    assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1), abs=1e-3)


def test_grey_images_and_shape_errors():
    face = to_unit(astronaut(64)).mean(axis=2)
    assert ssim(face, face) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        mse(face, face[:-1])
    with pytest.raises(TypeError):
        mse(np.zeros((4, 4), np.int32), np.zeros((4, 4), np.int32))
