"""The per-frame record of one tracked face, enriched stage by stage."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Face:
    """One face in one frame.

    From tracking: ``track_id`` (stable over the track), ``box`` [x0,y0,x1,y1] in frame pixels,
    ``landmarks`` [68,2] float32 frame pixels (dlib/iBUG order), ``score`` (detector score, NaN on
    frames where the face was followed without a detection), ``detected``.
    From alignment: ``quad`` (the smoothed FFHQ crop square), ``crop`` [S,S,3] uint8 RGB,
    ``crop_landmarks`` [68,2] (smoothed, crop pixels), ``fade`` in [0,1] (ramps at track ends).
    From later stages: ``edited`` [S,S,3] uint8 (what blending pastes back), ``mask`` [S,S] float32
    in [0,1] (where it is pasted), ``extra`` (anything else a stage wants to pass on).
    """

    track_id: int
    box: np.ndarray
    landmarks: np.ndarray
    score: float = float("nan")
    detected: bool = True
    quad: object = None
    crop: np.ndarray | None = None
    crop_landmarks: np.ndarray | None = None
    fade: float = 1.0
    edited: np.ndarray | None = None
    mask: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {"id": self.track_id, "box": [round(float(v), 2) for v in self.box],
               "score": None if np.isnan(self.score) else round(float(self.score), 4), "detected": self.detected,
               "landmarks": np.round(self.landmarks, 2).tolist()}
        if self.quad is not None:
            out["quad"] = np.round(self.quad.corners(), 2).tolist()
            out["fade"] = round(float(self.fade), 3)
        return out
