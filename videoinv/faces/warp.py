"""Aligned crops and paste-back with torch's ``grid_sample``, on the frame's device.

The same geometry as :func:`faces.quad.crop` and :func:`faces.paste.paste` (OpenCV on the CPU):
crop pixel (u, v) samples the frame at ``quad.crop_to_frame(size) @ (u, v, 1)``, bicubic, with
reflection beyond the frame's edge; a quad much larger than the crop is first reduced by an
integer factor with area averaging. Pasting samples the crop (bicubic) and the mask (bilinear)
at ``quad.frame_to_crop`` over the quad's bounding box and mixes ``frame + (face - frame) *
mask * strength`` where the mask is non-zero. Used when frames live on a GPU, so that a face
goes from the uploaded frame to the models and back without a trip through host memory; the
results agree with the OpenCV versions to within interpolation rounding (see the tests).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .quad import Quad, frame_roi


def _pixel_grid(size_w: int, size_h: int, matrix: np.ndarray, src_w: int, src_h: int, device) -> torch.Tensor:
    """grid_sample's [1,h,w,2] grid: output pixel (u, v) -> source pixel ``matrix @ (u, v, 1)``,
    in grid_sample's normalised coordinates (align_corners=False). The matrix goes in as Python
    numbers, not a tensor: copying one to a GPU would wait for all the work queued there."""
    m = np.asarray(matrix, np.float64).tolist()
    v, u = torch.meshgrid(torch.arange(size_h, device=device, dtype=torch.float64),
                          torch.arange(size_w, device=device, dtype=torch.float64), indexing="ij")
    x = m[0][0] * u + m[0][1] * v + m[0][2]
    y = m[1][0] * u + m[1][1] * v + m[1][2]
    grid = torch.stack([(2 * x + 1) / src_w - 1, (2 * y + 1) / src_h - 1], dim=-1)
    return grid[None].float()


def crop_tensor(frame: torch.Tensor, quad: Quad, size: int) -> torch.Tensor:
    """The aligned crop [3,size,size] (float, 0..255) of ``frame`` [3,H,W] (any dtype)."""
    image = frame.float()[None]
    shrink = int(np.floor(quad.size / size * 0.5))
    if shrink > 1:
        h, w = frame.shape[1:]
        lo = np.floor(quad.corners().min(0)).astype(int) - shrink
        hi = np.ceil(quad.corners().max(0)).astype(int) + shrink + 1
        x0, y0 = max(0, lo[0] - lo[0] % shrink), max(0, lo[1] - lo[1] % shrink)
        x1, y1 = min(w, hi[0]), min(h, hi[1])
        rw, rh = (x1 - x0) // shrink, (y1 - y0) // shrink
        if rw >= 2 and rh >= 2:
            region = image[:, :, y0:y0 + rh * shrink, x0:x0 + rw * shrink]
            image = F.avg_pool2d(region, shrink)
            offset = np.array([x0, y0]) + (shrink - 1) / 2
            quad = Quad((quad.c - offset) / shrink, quad.x / shrink, quad.y / shrink)
    h, w = image.shape[2:]
    grid = _pixel_grid(size, size, quad.crop_to_frame(size), w, h, frame.device)
    out = F.grid_sample(image, grid, mode="bicubic", padding_mode="reflection", align_corners=False)
    return out[0].clamp(0, 255)


def paste_tensor(frame: torch.Tensor, face: torch.Tensor, mask: torch.Tensor, quad: Quad,
                 strength: float = 1.0) -> torch.Tensor:
    """``frame`` [3,H,W] uint8 with ``face`` [3,S,S] (0..255) pasted through ``mask`` [S,S] (0..1)
    times ``strength`` (alpha blending; a new tensor, uint8)."""
    out = frame.clone()
    x0, y0, x1, y1 = frame_roi(quad, (frame.shape[1], frame.shape[2]))
    if x1 <= x0 or y1 <= y0 or strength <= 0:
        return out
    size = face.shape[-1]
    matrix = quad.frame_to_crop(size).copy()
    matrix[:, 2] += matrix[:, :2] @ np.array([x0, y0], np.float64)  # ROI pixel -> crop pixel
    grid = _pixel_grid(x1 - x0, y1 - y0, matrix, size, size, frame.device)
    warped = F.grid_sample(face.float()[None], grid, mode="bicubic", padding_mode="zeros", align_corners=False)[0]
    alpha = F.grid_sample(mask.float()[None, None], grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False)[0] * float(strength)
    region = frame[:, y0:y1, x0:x1].float()
    mixed = (region + (warped.clamp(0, 255) - region) * alpha).round().clamp(0, 255)
    out[:, y0:y1, x0:x1] = torch.where(alpha > 0, mixed, region).to(frame.dtype)
    return out
