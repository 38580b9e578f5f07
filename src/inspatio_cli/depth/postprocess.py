"""From DA3 outputs at the processing resolution to the tool's depth cache (REFERENCE.md section 3.3).

* **Canvas mapping.** DA3 sees the whole source frame resized to ``h x w`` (multiples of 14). A model-canvas
  pixel maps to processed pixels through the video fit (:meth:`inspatio_cli.video.Fit.pixel_transform`,
  source -> canvas) and the processing resize (processed -> source, ``W0/w`` and ``H0/h``), both with the
  official corner convention. ``K`` is multiplied by that matrix (for ``stretch`` this is the official row
  scaling by ``832/w`` and ``480/h``); depth and confidence are resampled by nearest neighbour (the
  official ``INTER_NEAREST``: source index ``floor(x * w/W)``), so stretch, crop and pad all stay
  consistent with the fitted frames. Letterbox pixels (``pad``) get the frame's largest depth and
  confidence 0.
* **Poses.** World-to-camera -> camera-to-world, left-multiplied by the inverse of frame 0 (frame 0 becomes
  the identity), then smoothed over time: each rotation as a quaternion and each translation, filtered
  component-wise with ``scipy.ndimage.gaussian_filter1d`` (sigma 2, mode ``reflect``, truncate 4), the
  quaternions renormalised. Unlike the official code, consecutive quaternions are first put on the same
  hemisphere (``q`` and ``-q`` are the same rotation); without a sign flip in the sequence the results
  are identical, with one the official filter averages opposite quaternions and bends the path.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from ..geometry.se3 import invert, make_pose, matrix_to_quaternion, quaternion_to_matrix
from ..video import Fit
from .result import DepthResult

SMOOTH_SIGMA = 2.0


def processed_to_canvas(fit: Fit, proc_hw: tuple[int, int]) -> torch.Tensor:
    """3x3 float64 matrix from processed-image pixels ``proc_hw`` (the whole source frame resized) to
    model-canvas pixels of ``fit``."""
    (h0, w0), (h, w) = fit.src_hw, proc_hw
    to_source = torch.tensor([[w0 / w, 0.0, 0.0], [0.0, h0 / h, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    return fit.pixel_transform() @ to_source


def intrinsics_to_canvas(K: torch.Tensor, transform: torch.Tensor) -> torch.Tensor:
    """``K (n, 3, 3)`` in processed pixels -> float32 ``(n, 3, 3)`` in canvas pixels."""
    return (transform @ K.double()).float()


def _nearest_index(n_out: int, scale: float, offset: float, n_in: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Source index ``floor((x - offset)/scale)`` of each output pixel and whether it falls inside the source."""
    pos = (torch.arange(n_out, dtype=torch.float64, device=device) - offset) / scale
    index = torch.floor(pos + 1e-9).long()
    valid = (index >= 0) & (index < n_in)
    return index.clamp(0, n_in - 1), valid


def maps_to_canvas(maps: torch.Tensor, transform: torch.Tensor, dst_hw: tuple[int, int],
                   fill: torch.Tensor | float) -> torch.Tensor:
    """Per-pixel maps ``(n, h, w)`` at the processed size -> ``(n, H, W)`` on the canvas, nearest neighbour.

    ``transform`` is :func:`processed_to_canvas` (axis-aligned scale + offset); canvas pixels outside the
    processed image (letterbox) get ``fill`` (a scalar or one value per map, ``(n,)``).
    """
    n, h, w = maps.shape
    rows, row_ok = _nearest_index(dst_hw[0], float(transform[1, 1]), float(transform[1, 2]), h, maps.device)
    cols, col_ok = _nearest_index(dst_hw[1], float(transform[0, 0]), float(transform[0, 2]), w, maps.device)
    out = maps[:, rows][:, :, cols]
    inside = row_ok[:, None] & col_ok[None, :]
    if bool(inside.all()):
        return out.contiguous()
    fill_t = torch.as_tensor(fill, dtype=maps.dtype, device=maps.device).reshape(-1, 1, 1).expand(n, 1, 1)
    return torch.where(inside[None], out, fill_t)


def w2c_to_c2w(w2c: np.ndarray) -> np.ndarray:
    """World-to-camera ``(n, 3, 4)`` -> camera-to-world ``(n, 4, 4)`` float64."""
    w2c = np.asarray(w2c, dtype=np.float64)
    return invert(make_pose(w2c[:, :, :3], w2c[:, :, 3]))


def normalize_to_first(c2w: np.ndarray) -> np.ndarray:
    """``inv(c2w[0]) @ c2w[i]`` for every frame: frame 0 becomes the identity, relative motion is kept."""
    return invert(c2w[0])[None] @ c2w


def smooth_poses(c2w: np.ndarray, sigma: float = SMOOTH_SIGMA) -> np.ndarray:
    """Gaussian-smooth camera-to-world poses ``(T, 4, 4)`` over time (quaternion + translation, see the
    module doc). ``sigma <= 0`` or a single frame returns a copy."""
    c2w = np.asarray(c2w, dtype=np.float64)
    if sigma <= 0 or len(c2w) < 2:
        return c2w.copy()
    quats = matrix_to_quaternion(c2w[:, :3, :3])
    for i in range(1, len(quats)):
        if np.dot(quats[i], quats[i - 1]) < 0:
            quats[i] = -quats[i]
    quats = gaussian_filter1d(quats, sigma, axis=0, mode="reflect", truncate=4.0)
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    trans = gaussian_filter1d(c2w[:, :3, 3], sigma, axis=0, mode="reflect", truncate=4.0)
    return make_pose(quaternion_to_matrix(quats), trans)


def resample_depth(depth: DepthResult, source_hw: tuple[int, int], size: tuple[int, int],
                   fit: str = "stretch") -> DepthResult:
    """``depth`` (made on another canvas of the same video and fit) moved onto the canvas ``size`` (H, W):
    maps by nearest neighbour (as the depth stage resizes), ``K`` through the same pixel mapping (the
    official corner convention, :meth:`Fit.pixel_transform`); letterbox pixels of ``pad`` get the frame's
    largest depth and confidence 0, as the depth stage fills them. Poses are unchanged. The resampled maps
    are held in memory (the memory-mapped file is not: keep depth made on the run's canvas for long clips)."""
    old = Fit.make(source_hw, depth.size, fit).pixel_transform()
    new = Fit.make(source_hw, size, fit).pixel_transform()
    transform = new @ torch.linalg.inv(old)
    maps = depth.depth.float()
    far = maps.flatten(1).amax(1)
    confidence = None if depth.confidence is None else maps_to_canvas(depth.confidence.float(), transform, size, 0.0)
    meta = {**depth.meta, "resampled_from": f"{depth.size[0]}x{depth.size[1]}"}
    return DepthResult(maps_to_canvas(maps, transform, size, far), intrinsics_to_canvas(depth.K, transform),
                       depth.c2w, confidence, meta)
