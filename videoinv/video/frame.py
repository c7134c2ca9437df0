"""The record a frame travels in through the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np


@dataclass
class FrameRecord:
    """One video frame and what the stages learn about it.

    ``index``: 0-based frame number in the source (presentation order);
    ``pts``/``time_base``: the source timestamp, carried unchanged to the output;
    ``image``: ``[H,W,3]`` uint8 RGB, upright (rotation metadata applied), C-contiguous;
    ``duration``: display duration in ``time_base`` units when the source knows it;
    ``faces``: filled by the face stages (one entry per tracked face).
    """

    index: int
    pts: int
    time_base: Fraction
    image: np.ndarray
    duration: int | None = None
    faces: list = field(default_factory=list)

    @property
    def time(self) -> float:
        """Presentation time in seconds."""
        return float(self.pts * self.time_base)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``."""
        return self.image.shape[1], self.image.shape[0]
