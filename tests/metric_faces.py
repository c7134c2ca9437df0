"""Real aligned face crops for the metric tests: scikit-image's astronaut and faces from its
bundled LFW subset (other people), FFHQ-aligned with the project's own detector and quads."""

from __future__ import annotations

import functools

import cv2
import numpy as np
from skimage import data

from videoinv.faces.detect import HogDetector, landmarks68
from videoinv.faces.quad import crop, quad_from_landmarks


def align(image: np.ndarray, size: int) -> np.ndarray:
    found = HogDetector(detect_size=max(image.shape[:2]), upsample=1, threshold=0.0).detect(image)
    best = max(found, key=lambda d: d.score)
    return crop(image, quad_from_landmarks(landmarks68(image, best.box)), size)


@functools.lru_cache(maxsize=None)
def astronaut(size: int = 256) -> np.ndarray:
    """The astronaut's aligned face, [size,size,3] uint8."""
    return align(data.astronaut(), size)


@functools.lru_cache(maxsize=None)
def lfw_face(index: int, size: int = 256) -> np.ndarray:
    """LFW face ``index`` (0..99: grey 25x25, upscaled x4 with a replicated border), aligned."""
    grey = cv2.resize((data.lfw_subset()[index] * 255).astype(np.uint8), (100, 100), interpolation=cv2.INTER_CUBIC)
    grey = cv2.copyMakeBorder(grey, 40, 40, 40, 40, cv2.BORDER_REPLICATE)
    return align(np.repeat(grey[..., None], 3, axis=2), size)
