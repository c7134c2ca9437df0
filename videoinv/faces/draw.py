"""Overlays for ``videoinv inspect``: what the face stages found, drawn on the frame."""

from __future__ import annotations

import cv2
import numpy as np

from .face import Face
from .masks import MaskSpec, build_mask
from .quad import transform_points

PALETTE = [(255, 80, 80), (80, 200, 255), (120, 255, 120), (255, 200, 60), (220, 120, 255), (255, 255, 255)]
MASK_DRAW = 256  # masks are computed at this crop size for their outline


def colour_of(track_id: int) -> tuple[int, int, int]:
    return PALETTE[track_id % len(PALETTE)]


def draw_faces(image: np.ndarray, faces: list[Face], spec: MaskSpec | None = None) -> np.ndarray:
    """A copy of ``image`` (RGB) with, per face: its box and id (thin box when it was followed
    rather than detected), 68 landmarks, the smoothed quad (its top edge thicker) and the outline
    of its mask."""
    out = np.array(image, copy=True)
    h = out.shape[0]
    thick = max(1, h // 360)
    for face in faces:
        colour = colour_of(face.track_id)
        x0, y0, x1, y1 = (int(round(v)) for v in face.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, thick * (2 if face.detected else 1), cv2.LINE_AA)
        label = f"#{face.track_id}" + ("" if face.fade >= 1 else f" {face.fade:.1f}")
        cv2.putText(out, label, (x0, max(0, y0 - 6 * thick)), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * thick, colour,
                    thick, cv2.LINE_AA)
        for x, y in face.landmarks:
            cv2.circle(out, (int(round(x)), int(round(y))), thick, colour, -1, cv2.LINE_AA)
        if face.quad is None:
            continue
        corners = np.round(face.quad.corners()).astype(np.int32)
        cv2.polylines(out, [corners.reshape(-1, 1, 2)], True, (255, 255, 0), thick, cv2.LINE_AA)
        cv2.line(out, tuple(corners[0]), tuple(corners[3]), (255, 255, 0), 3 * thick, cv2.LINE_AA)
        if spec is not None and face.crop_landmarks is not None:
            size = face.extra.get("crop_size", MASK_DRAW)
            landmarks = face.crop_landmarks * (MASK_DRAW / size)
            mask = (build_mask(landmarks, MASK_DRAW, spec) >= 0.5).astype(np.uint8)
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            to_frame = face.quad.crop_to_frame(MASK_DRAW)
            for contour in contours:
                pts = transform_points(contour.reshape(-1, 2).astype(np.float64), to_frame)
                cv2.polylines(out, [np.round(pts).astype(np.int32).reshape(-1, 1, 2)], True, (255, 0, 255), thick,
                              cv2.LINE_AA)
    return out
