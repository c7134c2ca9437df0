"""Identity similarity between face crops: cosine of identity embeddings.

Backend ``dlib`` (the default, offline): dlib's ResNet face descriptor (128-d,
``dlib_face_recognition_resnet_model_v1.dat``) on the chip dlib aligns with its 5-point shape
predictor. On an aligned crop ([S,S,3] RGB, uint8 or float in [0,1], any S >= 64) the face box
comes from dlib's HOG detector run on the crop itself; when it finds nothing (a strongly edited or
blurred face, a profile) the box where an FFHQ-aligned face sits is used instead
(``ALIGNED_FACE_BOX``, fractions of the side, measured with HOG on aligned crops), so every crop
gets an embedding. ``embed`` tells which was used through ``last_detected``.

Scale: cosine similarities of dlib descriptors are high for everyone (same person ~0.99 under
noise, different people ~0.78-0.86 on our test faces; dlib's own rule "same person" is a
Euclidean distance below 0.6 between the unnormalised descriptors). They are not comparable with
ArcFace/CurricularFace cosines such as the FeatureStyleEncoder paper's ID 0.895.

Backend ``arcface``: InsightFace's ArcFace IResNet (metrics/arcface.py) on the same face box,
aligned from dlib's 68 landmarks; needs its weights (a clear error says where they go).
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import VideoinvError
from ..faces import dlib_models

ALIGNED_FACE_BOX = (0.254, 0.363, 0.738, 0.848)  # x0, y0, x1, y1 as fractions of an FFHQ crop's side
BACKENDS = ("dlib", "arcface")  # arcface: when its weights are present (see metrics/arcface.py)


def cosine(u, v) -> float:
    """Cosine similarity of two vectors (0 when one of them is zero)."""
    u, v = np.asarray(u, np.float64).ravel(), np.asarray(v, np.float64).ravel()
    n = np.linalg.norm(u) * np.linalg.norm(v)
    return float(u @ v / n) if n > 0 else 0.0


@functools.lru_cache(maxsize=None)
def _shape_predictor_5():
    import dlib

    return dlib.shape_predictor(str(dlib_models.model_path("landmarks5")))


def _uint8(image) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a.astype(np.float64) * 255), 0, 255).astype(np.uint8)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"a face crop must be [H,W,3] RGB, not {a.shape}")
    return np.ascontiguousarray(a)


class IdentityEncoder:
    """Unit identity embeddings of aligned face crops (``backend`` from ``BACKENDS``)."""

    def __init__(self, backend: str = "dlib", detect: bool = True):
        if backend not in BACKENDS:
            raise VideoinvError(f"unknown identity backend {backend!r}; available: {', '.join(BACKENDS)}")
        self.backend, self.detect = backend, detect
        self.last_detected = False
        self.arcface = None
        if backend == "arcface":
            from .arcface import ArcFaceEmbedder

            self.arcface = ArcFaceEmbedder()

    @property
    def dim(self) -> int:
        return 512 if self.arcface is not None else 128

    def face_box(self, crop: np.ndarray) -> tuple[tuple[int, int, int, int], bool]:
        """The face box (x0, y0, x1, y1) in crop pixels and whether the detector found it."""
        h, w = crop.shape[:2]
        if self.detect:
            rects, scores, _ = dlib_models.hog_detector().run(crop, 0, 0.0)
            if len(rects):
                best = rects[int(np.argmax(scores))]
                return (best.left(), best.top(), best.right(), best.bottom()), True
        x0, y0, x1, y1 = ALIGNED_FACE_BOX
        return (round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h)), False

    def embed(self, crop) -> np.ndarray:
        """The unit-length embedding ([128] dlib, [512] arcface; float64) of the face in ``crop``."""
        import dlib

        image = _uint8(crop)
        box, self.last_detected = self.face_box(image)
        if self.arcface is not None:
            from ..faces.detect import landmarks68

            return self.arcface.embed(image, landmarks68(image, np.asarray(box, np.float64)))
        shape = _shape_predictor_5()(image, dlib.rectangle(*box))
        v = np.asarray(dlib_models.face_descriptor_model().compute_face_descriptor(image, shape), np.float64)
        return v / np.linalg.norm(v)


def identity_similarity(a, b, encoder: IdentityEncoder | None = None) -> float:
    """Cosine similarity of the identities in two aligned crops (1 = same embedding)."""
    encoder = encoder or IdentityEncoder()
    return cosine(encoder.embed(a), encoder.embed(b))
