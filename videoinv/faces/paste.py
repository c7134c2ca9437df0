"""Pasting an (edited) aligned crop back into its frame.

The crop and its mask are warped back with the inverse of the alignment transform (bicubic for
the picture, bilinear for the mask), over the quad's bounding box only (for ``alpha`` the picture
over the bounding box of the mask's support within it). ``alpha`` blending mixes in float32 and
rounds; pixels where the warped mask is exactly zero are copied unchanged. ``laplacian`` blending mixes band-pass
pyramids under a Gaussian pyramid of the mask (softer seams for colour differences) and then
keeps every pixel outside the dilated mask support unchanged. ``colour`` matching first shifts
the pasted face's colour statistics (Lab mean and spread, measured on the mask's soft edge) to
those of the frame it goes into.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..video.frame import as_picture
from .quad import Quad, frame_roi, uncrop


def match_colour(face: np.ndarray, frame: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """``face`` with its Lab statistics on ``ring`` moved to ``frame``'s (both [h,w,3] uint8)."""
    if ring.sum() < 16:
        return face
    face_lab = cv2.cvtColor(face, cv2.COLOR_RGB2LAB).astype(np.float32)
    frame_lab = cv2.cvtColor(frame, cv2.COLOR_RGB2LAB).astype(np.float32)
    f, g = face_lab[ring], frame_lab[ring]
    scale = np.clip(g.std(0) / np.maximum(f.std(0), 1e-3), 0.5, 2.0)
    adjusted = (face_lab - f.mean(0)) * scale + g.mean(0)
    return cv2.cvtColor(np.clip(adjusted, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def _laplacian_blend(a: np.ndarray, b: np.ndarray, mask: np.ndarray, levels: int) -> np.ndarray:
    """Blend float images a (under mask=0) and b (mask=1) band by band."""
    ga, gb, gm = [a], [b], [mask]
    for _ in range(levels):
        ga.append(cv2.pyrDown(ga[-1]))
        gb.append(cv2.pyrDown(gb[-1]))
        gm.append(cv2.pyrDown(gm[-1]))
    out = ga[-1] * (1 - gm[-1][..., None]) + gb[-1] * gm[-1][..., None]
    for i in range(levels - 1, -1, -1):
        size = (ga[i].shape[1], ga[i].shape[0])
        la = ga[i] - cv2.pyrUp(ga[i + 1], dstsize=size)
        lb = gb[i] - cv2.pyrUp(gb[i + 1], dstsize=size)
        m = gm[i][..., None]
        out = cv2.pyrUp(out, dstsize=size) + la * (1 - m) + lb * m
    return out


def paste(frame: np.ndarray, crop_image: np.ndarray, mask: np.ndarray, quad: Quad, mode: str = "alpha",
          colour: bool = False, strength: float = 1.0, boxes: list | None = None) -> np.ndarray:
    """A new frame with ``crop_image`` [S,S,3] pasted through ``mask`` [S,S] (times ``strength``).
    ``boxes``: a list to which the rectangle that may have changed is appended, ``(x0, y0, x1,
    y1)``; every pixel outside it is the frame's own."""
    out = frame.copy()
    pasted = paste_region(frame, crop_image, mask, quad, mode, colour, strength)
    if pasted is not None:
        (x0, y0, x1, y1), pixels = pasted
        out[y0:y1, x0:x1] = pixels
        if boxes is not None:
            boxes.append((x0, y0, x1, y1))
    return out


def paste_region(picture, crop_image: np.ndarray, mask: np.ndarray, quad: Quad, mode: str = "alpha",
                 colour: bool = False, strength: float = 1.0):
    """``(box, pixels)``: the rectangle of the frame that pasting ``crop_image`` [S,S,3] through
    ``mask`` [S,S] (times ``strength``) may change, ``(x0, y0, x1, y1)``, and its new pixels; None
    where nothing changes. ``picture``: an RGB array or a FrameRecord (only that rectangle is
    read)."""
    picture = as_picture(picture)
    w, h = picture.size
    roi = frame_roi(quad, (h, w))
    x0, y0, x1, y1 = roi
    if x1 <= x0 or y1 <= y0 or strength <= 0:
        return None
    alpha = uncrop(np.ascontiguousarray(mask, np.float32), quad, roi, cv2.INTER_LINEAR) * float(strength)
    support = alpha > 0
    if not support.any():
        return None
    if mode == "alpha":  # only the mask's support changes: warp and mix over its bounding box
        bx, by, bw, bh = cv2.boundingRect(support.view(np.uint8))
        alpha = alpha[by:by + bh, bx:bx + bw]
        x0, y0, x1, y1 = roi = (x0 + bx, y0 + by, x0 + bx + bw, y0 + by + bh)
    elif mode != "laplacian":
        raise ValueError(f"blend mode must be alpha or laplacian, not {mode!r}")
    face = uncrop(np.ascontiguousarray(crop_image), quad, roi)
    region = picture.region(roi)
    if colour:
        face = match_colour(face, region, (alpha > 0.05) & (alpha < 0.6))
    if mode == "alpha":
        # region + (face - region) * alpha in float32, rounded half to even and saturated, in
        # OpenCV's vector loops (4-5x NumPy's temporaries and np.where here; the same bits).
        # Where alpha is 0 the sum is the region's own value, so those pixels stay unchanged.
        a = cv2.merge([alpha, alpha, alpha])
        mixed = cv2.add(region.astype(np.float32), cv2.multiply(cv2.subtract(face, region, dtype=cv2.CV_32F), a))
        return roi, cv2.convertScaleAbs(mixed)  # |x| is x: a convex mix of 0..255 is not negative
    f, r = face.astype(np.float32), region.astype(np.float32)
    levels = int(max(1, min(5, np.log2(max(min(x1 - x0, y1 - y0), 2)) - 3)))
    inside = uncrop(np.ones(mask.shape, np.float32), quad, roi, cv2.INTER_LINEAR) > 0.999
    f = np.where(inside[..., None], f, r)  # no black beyond the crop's edge in the coarse bands
    mixed = _laplacian_blend(r, f, alpha, levels)
    reach = cv2.dilate(support.astype(np.uint8), np.ones((2 ** levels * 2 + 1,) * 2, np.uint8)) > 0
    return roi, np.where(reach[..., None], np.clip(np.rint(mixed), 0, 255), region).astype(np.uint8)
