"""FFHQ alignment: the oriented square ("quad") from 68 landmarks, cropping and its inverse.

The quad (FFHQ's ``recreate_aligned_images``, as FeatureStyleEncoder and STIT use it):

* ``eye_left``/``eye_right`` = means of landmarks 36-41 / 42-47; ``eye_avg``, ``eye_to_eye``;
  ``mouth_avg`` = mean of the outer mouth corners 48 and 54; ``eye_to_mouth`` = mouth_avg - eye_avg;
* ``x`` = eye_to_eye + (eye_to_mouth_y, -eye_to_mouth_x), normalised, times
  ``max(2.0 |eye_to_eye|, 1.8 |eye_to_mouth|) * scale``; ``y`` = (-x_y, x_x);
* centre ``c = eye_avg + 0.1 eye_to_mouth``; corners c-x-y (top left), c-x+y, c+x+y, c+x-y.

Coordinates are pixel indices (dlib's landmarks). The crop maps its square [0,S]^2 onto the quad
with pixel centres at +0.5 on both sides (PIL's QUAD transform of ``quad + 0.5``), sampled
bicubically by default (closer to FFHQ's supersampled crops than bilinear, and a crop pasted back
differs from the frame by at most 3 levels, against 12 with bilinear both ways); where the quad
leaves the frame the frame is mirrored (reflect padding). When the quad
is more than twice the output size, the frame is first reduced by an integer factor with area
averaging (FFHQ's shrink step), which avoids aliasing.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..video.frame import as_picture, placed


@dataclass(frozen=True)
class Quad:
    """An oriented square: centre ``c`` and half-axes ``x`` (rightwards) and ``y`` (downwards)."""

    c: np.ndarray
    x: np.ndarray
    y: np.ndarray

    def corners(self) -> np.ndarray:
        """[4,2]: top-left, bottom-left, bottom-right, top-right (FFHQ's order)."""
        c, x, y = self.c, self.x, self.y
        return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])

    @property
    def size(self) -> float:
        """Side length in frame pixels (FFHQ's ``qsize``)."""
        return 2 * float(np.hypot(*self.x))

    def to_vector(self) -> np.ndarray:
        return np.concatenate([self.c, self.x, self.y]).astype(np.float64)

    @classmethod
    def from_vector(cls, v) -> Quad:
        v = np.asarray(v, np.float64)
        return cls(v[0:2], v[2:4], v[4:6])

    def crop_to_frame(self, size: int) -> np.ndarray:
        """2x3 affine: crop pixel (u, v) -> frame pixel coordinates."""
        a = 2 * self.x / size
        b = 2 * self.y / size
        t = self.c - self.x - self.y + (self.x + self.y) / size
        return np.array([[a[0], b[0], t[0]], [a[1], b[1], t[1]]], np.float64)

    def frame_to_crop(self, size: int) -> np.ndarray:
        """2x3 affine: frame pixel -> crop pixel coordinates."""
        return cv2.invertAffineTransform(self.crop_to_frame(size))

    def scaled(self, factor: float) -> Quad:
        return Quad(self.c * factor, self.x * factor, self.y * factor)


def quad_from_landmarks(landmarks: np.ndarray, scale: float = 1.0) -> Quad:
    lm = np.asarray(landmarks, np.float64)
    eye_left, eye_right = lm[36:42].mean(0), lm[42:48].mean(0)
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) / 2
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye + np.array([eye_to_mouth[1], -eye_to_mouth[0]])
    x = x / np.hypot(*x) * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8) * scale
    y = np.array([-x[1], x[0]])
    return Quad(eye_avg + eye_to_mouth * 0.1, x, y)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to [N,2] points."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def crop(picture, quad: Quad, size: int, interpolation: int = cv2.INTER_CUBIC) -> np.ndarray:
    """The aligned square crop [size,size,C] of ``picture`` (reflect padding outside the frame):
    an RGB array, or a FrameRecord, of which only the quad's surroundings are read unless the
    quad leaves the frame."""
    picture = as_picture(picture)
    w, h = picture.size
    shrink = int(np.floor(quad.size / size * 0.5))
    if shrink > 1:  # reduce the region around the quad first, by an integer factor, with area averaging
        lo = np.floor(quad.corners().min(0)).astype(int) - shrink
        hi = np.ceil(quad.corners().max(0)).astype(int) + shrink + 1
        x0, y0 = max(0, lo[0] - lo[0] % shrink), max(0, lo[1] - lo[1] % shrink)
        x1, y1 = min(w, hi[0]), min(h, hi[1])
        rw, rh = (x1 - x0) // shrink, (y1 - y0) // shrink
        if rw >= 2 and rh >= 2:
            region = picture.region((x0, y0, x0 + rw * shrink, y0 + rh * shrink))
            region = cv2.resize(region, (rw, rh), interpolation=cv2.INTER_AREA)
            # pixel centres: small (i) = region (i*s + (s-1)/2)
            offset = np.array([x0, y0]) + (shrink - 1) / 2
            small = Quad((quad.c - offset) / shrink, quad.x / shrink, quad.y / shrink)
            return _warp(region, small, size, interpolation)  # region edges off the frame edge lie outside the quad
    # the samples lie inside the quad, and bicubic reads up to 2 pixels beyond each: where the
    # quad and that reach stay in the frame, its bounding box is all the warp reads
    x0, y0 = np.floor(quad.corners().min(0)).astype(int) - 4
    x1, y1 = np.ceil(quad.corners().max(0)).astype(int) + 5
    if x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h and not picture.has_image:
        box = (x0, y0, x1, y1)
        with placed(picture.region(box), box, (w, h)) as frame:
            return _warp(frame, quad, size, interpolation)
    return _warp(picture.image, quad, size, interpolation)


def _warp(image, quad: Quad, size: int, interpolation: int) -> np.ndarray:
    return cv2.warpAffine(image, quad.crop_to_frame(size), (size, size), flags=interpolation | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT_101)


def frame_roi(quad: Quad, frame_shape, margin: int = 2) -> tuple[int, int, int, int]:
    """The frame region [x0, y0, x1, y1) a quad covers (clamped; may be empty)."""
    h, w = frame_shape[:2]
    lo = np.floor(quad.corners().min(0)).astype(int) - margin
    hi = np.ceil(quad.corners().max(0)).astype(int) + margin + 1
    return max(0, lo[0]), max(0, lo[1]), min(w, hi[0]), min(h, hi[1])


def uncrop(crop_image: np.ndarray, quad: Quad, roi: tuple[int, int, int, int],
           interpolation: int = cv2.INTER_CUBIC) -> np.ndarray:
    """``crop_image`` warped back into frame coordinates, over ``roi`` only (zeros outside the quad)."""
    x0, y0, x1, y1 = roi
    matrix = quad.crop_to_frame(crop_image.shape[0]).copy()
    matrix[:, 2] -= (x0, y0)
    return cv2.warpAffine(crop_image, matrix, (x1 - x0, y1 - y0), flags=interpolation,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
