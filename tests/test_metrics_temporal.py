"""Temporal metrics on constructed cases with known answers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from metric_faces import astronaut
from videoinv.metrics.temporal import (FlowWarpingError, MaskFlicker, boundary_band, identity_consistency, jitter,
                                       mask_flicker, seam_error)


def _shift(image, dx, dy):
    return cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dy]]), image.shape[1::-1], flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REFLECT)


# -- TL-ID / TG-ID -------------------------------------------------------------------------------
def test_identity_consistency_identical_video_is_one():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(6, 16)) + 3  # similar embeddings, like frames of one face
    r = identity_consistency(e, e)
    assert r["tl_id"] == pytest.approx(1.0) and r["tg_id"] == pytest.approx(1.0)
    assert r["id_to_source"] == pytest.approx([1.0] * 6)


def test_identity_consistency_hand_computed():
    # unit vectors at angles: source 0, 10, 20 degrees; output 0, 20, 20 degrees
    def at(*deg):
        return np.stack([[np.cos(np.radians(d)), np.sin(np.radians(d))] for d in deg])

    r = identity_consistency(at(0, 10, 20), at(0, 20, 20))
    c = lambda d: np.cos(np.radians(d))  # noqa: E731
    ratios_adjacent = [c(20) / c(10), c(0) / c(10)]
    ratios_all = ratios_adjacent + [c(20) / c(20)]
    assert r["tl_id"] == pytest.approx(np.mean(ratios_adjacent))
    assert r["tg_id"] == pytest.approx(np.mean(ratios_all))  # the matrices are symmetric
    assert r["id_to_source"] == pytest.approx([1.0, c(10), 1.0])
    # an output frozen on one identity is more self-similar than its source: above 1
    frozen = identity_consistency(at(0, 10, 20), at(5, 5, 5))
    assert frozen["tl_id"] == pytest.approx(1 / c(10)) and frozen["tg_id"] > frozen["tl_id"]


def test_identity_consistency_one_frame():
    r = identity_consistency(np.ones((1, 4)), np.ones((1, 4)))
    assert r["tl_id"] is None and r["tg_id"] is None and r["id_to_source"] == [1.0]


# -- jitter --------------------------------------------------------------------------------------
def test_jitter_known_values():
    t = np.arange(20, dtype=np.float64)
    line = np.stack([3 + 2 * t, 5 - t], axis=1)  # constant velocity: no jitter
    assert jitter(line) == pytest.approx(0.0, abs=1e-12)
    # +-a alternating noise on one coordinate: second differences are +-4a (and 0 for the other)
    a = 0.5
    wobbly = line.copy()
    wobbly[:, 0] += a * (-1.0) ** t
    d2 = 4 * a * np.array([(-1.0) ** k for k in range(18)])
    assert jitter(wobbly) == pytest.approx(np.std(np.concatenate([d2, np.zeros(18)])))
    assert np.isnan(jitter(line[:2]))


# -- flow warping error --------------------------------------------------------------------------
def test_static_video_has_zero_warping_error():
    face = astronaut(256)
    w = FlowWarpingError()
    assert w.add(face, face, face, face) == 0.0
    assert w.last_flow[1].all() and np.abs(w.last_flow[0]).max() < 1e-3


@pytest.mark.parametrize("dx,dy", [(3, -2), (-5, 1)])
def test_known_shift_is_recovered_and_warped_back(dx, dy):
    face = astronaut(256)
    moved = _shift(face, dx, dy)
    w = FlowWarpingError()
    flow, valid = w.flow(face, moved)
    assert valid.mean() > 0.9
    assert np.median(flow[..., 0][valid]) == pytest.approx(dx, abs=0.1)
    assert np.median(flow[..., 1][valid]) == pytest.approx(dy, abs=0.1)
    assert np.abs(flow[valid] - (dx, dy)).mean() < 0.2
    # pixels that leave the frame are not counted
    assert not (valid[:, -dx:] if dx > 0 else valid[:, :-dx]).any()
    error = w.add(face, moved, face, moved)
    unwarped = np.mean((face / 255.0 - moved / 255.0) ** 2)
    assert error < unwarped / 100
    # an output that does not follow the source's motion (stays put) is penalised
    assert w.add(face, moved, face, face, flow=(flow, valid)) > unwarped / 3
    assert w.mean == pytest.approx(np.mean(w.errors))


def test_flickering_output_on_static_source():
    face = astronaut(128)
    w = FlowWarpingError()
    brighter = np.clip(face / 255.0 + 0.1, 0, 1)
    # flow 0 everywhere: error = mean squared difference (where nothing clips)
    expected = np.mean((face / 255.0 - brighter) ** 2)
    assert w.add(face, face, face, brighter) == pytest.approx(expected, rel=1e-5)


# -- mask flicker --------------------------------------------------------------------------------
def _square(side, size=64):
    m = np.zeros((size, size), np.uint8)
    lo = (size - side) // 2
    m[lo:lo + side, lo:lo + side] = 255
    return m


def test_mask_flicker_known_pattern():
    small, big = _square(20), _square(30)
    r = mask_flicker([small, big, small, big])
    assert r["iou"] == pytest.approx([400 / 900] * 3)
    assert r["boundary_change"] == pytest.approx([1.0] * 3)  # the outlines never meet
    steady = mask_flicker([big / 255.0] * 3)
    assert steady["iou"] == [1.0, 1.0] and steady["boundary_change"] == [0.0, 0.0]


def test_mask_flicker_streams_and_resets_at_gaps():
    small, big = _square(20), _square(30)
    flicker = MaskFlicker()
    assert flicker.add(small) is None
    assert flicker.add(small) == (1.0, 0.0)
    flicker.reset()  # a gap: no pair across it
    assert flicker.add(big) is None
    assert flicker.add(small) == (pytest.approx(400 / 900), 1.0)
    assert flicker.summary()["iou_mean"] == pytest.approx((1 + 400 / 900) / 2)


def test_mask_flicker_half_shared_boundary():
    # a 20x20 square and the same square 10 px taller downwards: the 20x30 rectangle shares the
    # square's top row and the upper 19 rows of both sides (58 pixels); boundaries 76 and 96 px
    a = np.zeros((64, 64), bool)
    a[10:30, 10:30] = True
    b = np.zeros((64, 64), bool)
    b[10:40, 10:30] = True
    r = mask_flicker([a, b])
    assert r["iou"] == [pytest.approx(400 / 600)]
    shared = 20 + 2 * 19
    assert r["boundary_change"] == [pytest.approx(1 - shared / (76 + 96 - shared))]


# -- seam ----------------------------------------------------------------------------------------
def test_seam_band_width():
    mask = np.zeros((40, 64), bool)
    mask[:, :32] = True  # a straight vertical boundary between columns 31 and 32
    for width in (2, 3, 4, 6):
        band = boundary_band(mask, width)
        columns = np.flatnonzero(band.any(axis=0))
        assert band.all(axis=0)[columns].all()
        assert list(columns) == list(range(32 - (width + 1) // 2, 32 + width // 2))
    assert not boundary_band(np.ones((8, 8), bool)).any()


def test_seam_error_sees_only_the_band():
    face = astronaut(128) / 255.0 * 0.8
    mask = np.zeros((128, 128), np.float32)
    cv2.circle(mask, (64, 64), 40, 1.0, -1)
    band = boundary_band(mask, 4)
    step = 0.1
    out = face.copy()
    out[band] += step  # a seam exactly on the band
    assert seam_error(out, face, mask, 4) == pytest.approx(step)
    inner = face.copy()
    core = cv2.erode((mask > 0.5).astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    inner[core] += 0.3  # the edit inside the face, away from the boundary
    assert seam_error(inner, face, mask, 4) == 0.0
    assert seam_error(face, face, mask) == 0.0
    assert np.isnan(seam_error(face, face, np.zeros((128, 128))))
