"""Identity similarity with dlib's descriptor on real aligned faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from metric_faces import astronaut, lfw_face
from videoinv.errors import VideoinvError
from videoinv.metrics.identity import IdentityEncoder, cosine, identity_similarity


@pytest.fixture(scope="module")
def encoder():
    return IdentityEncoder()


def test_cosine():
    assert cosine([1, 0], [2, 0]) == pytest.approx(1.0)
    assert cosine([1, 0], [0, 3]) == pytest.approx(0.0)
    assert cosine([1, 1], [-1, -1]) == pytest.approx(-1.0)
    assert cosine([0, 0], [1, 0]) == 0.0


def test_embedding_is_unit_and_deterministic(encoder):
    face = astronaut(256)
    e = encoder.embed(face)
    assert e.shape == (128,) and np.linalg.norm(e) == pytest.approx(1.0)
    assert encoder.last_detected
    assert np.array_equal(e, encoder.embed(face.copy()))
    assert identity_similarity(face, face, encoder) == pytest.approx(1.0)
    assert identity_similarity(face, face / 255.0, encoder) == pytest.approx(1.0)


def test_same_face_under_noise_beats_other_people(encoder):
    face = astronaut(256)
    rng = np.random.default_rng(3)
    noisy = np.clip(face + rng.normal(0, 8, face.shape), 0, 255).astype(np.uint8)
    same = identity_similarity(face, noisy, encoder)
    others = [identity_similarity(face, lfw_face(i), encoder) for i in (0, 24, 60)]
    assert same > 0.97
    assert max(others) < 0.9 and max(others) < same - 0.08


def test_fallback_box_when_no_face_is_detected(encoder):
    face = astronaut(256)
    hidden = cv2.GaussianBlur(face, (0, 0), 10)  # too soft for HOG
    e = encoder.embed(hidden)
    assert not encoder.last_detected
    assert np.linalg.norm(e) == pytest.approx(1.0)
    # the fixed aligned-face box on the sharp crop gives nearly the detector's embedding
    fixed = IdentityEncoder(detect=False)
    assert cosine(fixed.embed(face), encoder.embed(face)) > 0.98


def test_unknown_backend():
    with pytest.raises(VideoinvError, match="identity backend"):
        IdentityEncoder("arcface-nonexistent")
