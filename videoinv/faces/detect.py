"""Face detectors and the 68-point landmarker.

A detector finds face boxes in an RGB frame; the landmarker (dlib's 68-point shape predictor,
iBUG 300-W order) places landmarks inside a box. Detectors are registry components (kind
"detector"): ``hog`` (dlib HOG, the default), ``cnn`` (dlib's MMOD CNN: much slower on CPU, more
tolerant of rotation), and plugins. Detection runs on a copy of the frame scaled so its longer
side is at most ``detect_size`` pixels; boxes and landmarks are in full-frame pixel coordinates.

dlib scores: on our test frames the real face scores ~1.4 and false positives on clothing patches
score below 0.2 (see the design notes), so boxes under ``threshold`` (0.3) are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..video.frame import as_picture, placed
from . import dlib_models


@dataclass
class Detection:
    box: np.ndarray  # [x0, y0, x1, y1], float, frame pixels (the detector's box convention)
    score: float


def _scaled(image: np.ndarray, detect_size: int) -> tuple[np.ndarray, float]:
    h, w = image.shape[:2]
    scale = min(1.0, detect_size / max(h, w))
    if scale == 1.0:
        return np.ascontiguousarray(image), 1.0
    small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return small, scale


class _DlibDetector:
    """Runs ``_find`` (of a subclass) on a copy scaled to ``detect_size``; keeps boxes scoring at
    least ``threshold``, grown by ``grow`` to the landmarker's box convention."""

    grow = 1.0

    def __init__(self, detect_size: int = 640, upsample: int = 0, threshold: float = 0.3):
        self.detect_size, self.upsample, self.threshold = detect_size, upsample, threshold

    def detect(self, image: np.ndarray) -> list[Detection]:
        return self.detect_scaled(*_scaled(image, self.detect_size))

    def detect_scaled(self, small: np.ndarray, scale: float) -> list[Detection]:
        """Detect in ``small``, the frame scaled by ``scale`` (see ``_scaled``)."""
        found = []
        for rect, score in self._find(small):
            if score >= self.threshold:
                box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], np.float64) / scale
                found.append(Detection(_grow(box, self.grow), score))
        return found


class HogDetector(_DlibDetector):
    """dlib's HOG + linear SVM frontal face detector (five sub-detectors, roll up to ~30 degrees)."""

    name = "hog"

    def _find(self, small):
        rects, scores, _ = dlib_models.hog_detector().run(small, self.upsample, min(self.threshold, 0.0))
        return [(r, float(s)) for r, s in zip(rects, scores)]


class CnnDetector(_DlibDetector):
    """dlib's MMOD CNN detector: robust to rotation and blur, but ~1.4 s per 640x360 frame on CPU.
    Its boxes are tighter than HOG's, which the landmarker was trained with."""

    name = "cnn"
    grow = 1.15

    def _find(self, small):
        return [(d.rect, float(d.confidence)) for d in dlib_models.cnn_detector()(small, self.upsample)]


def _grow(box: np.ndarray, factor: float) -> np.ndarray:
    c = (box[:2] + box[2:]) / 2
    half = (box[2:] - box[:2]) / 2 * factor
    return np.concatenate([c - half, c + half])


LANDMARK_REACH = 0.5  # how far beyond its box (in box sizes) the landmarker reads pixels: up to 0.3 seen


def landmarks68(picture, box: np.ndarray) -> np.ndarray:
    """dlib's 68 landmarks [68,2] (float32, pixel coordinates) for the face in ``box``.
    ``picture``: a FrameRecord (only the box's surroundings are read) or an RGB array."""
    import dlib

    picture = as_picture(picture)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    reach = int(np.ceil(LANDMARK_REACH * max(x1 - x0, y1 - y0, 1)))
    w, h = picture.size
    rx0, ry0 = min(w - 1, max(0, x0 - reach)), min(h - 1, max(0, y0 - reach))
    rx1, ry1 = max(rx0 + 1, min(w, x1 + reach)), max(ry0 + 1, min(h, y1 + reach))
    rect = dlib.rectangle(x0, y0, x1, y1)
    if picture.has_image:
        shape = dlib_models.shape_predictor()(np.ascontiguousarray(picture.image), rect)
    else:
        area = (rx0, ry0, rx1, ry1)
        with placed(picture.region(area), area, (w, h)) as frame:
            shape = dlib_models.shape_predictor()(frame, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], np.float32)


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
    """The bounding box of a landmark set, [x0, y0, x1, y1]."""
    return np.concatenate([landmarks.min(axis=0), landmarks.max(axis=0)]).astype(np.float64)


def face_descriptor(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """dlib's 128-d identity descriptor of a face (same person: distance < 0.6)."""
    import dlib

    box = landmark_box(landmarks)
    rect = dlib.rectangle(*(int(round(v)) for v in box))
    parts = [dlib.point(int(round(x)), int(round(y))) for x, y in landmarks]
    shape = dlib.full_object_detection(rect, parts)
    return np.asarray(dlib_models.face_descriptor_model().compute_face_descriptor(image, shape), np.float32)


def register(registry) -> None:
    registry.add("detector", "hog", HogDetector)
    registry.add("detector", "cnn", CnnDetector)
