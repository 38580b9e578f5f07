"""Arrays read from another tool's scene -> a checked :class:`DepthResult` in the tool's conventions.

Every importer hands its depth, intrinsics and poses to :func:`scene_result`, so the checks (frame counts,
non-finite values, non-rotations, reflections) and the conversions (world-to-camera -> camera-to-world,
other axes -> OpenCV, unknown depth) are the same for every format, and what was converted is recorded in
the result's metadata (``import_*`` keys, see :class:`~inspatio_cli.depth.result.DepthResult`). The poses
are taken relative to the first camera, whose pose in the source's world is kept (:data:`ANCHOR_KEY`) so
that :func:`source_world_c2w` gives exporters the cameras in the source's world again.

Unknown depth: other tools store it as 0 (the v1.5 image scenes; any depth <= 0 of an ``.npz``), which the
depth file refuses (depth is positive). It becomes the frame's largest known depth with ``confidence`` 0,
as the depth stage fills the letterbox of ``--fit pad``: the warp splats it as far background, and an
export to a format that can say "unknown" (v1.5 image scenes) writes it back as 0. Known pixels get
confidence 1 unless the source gave a confidence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..depth.result import DepthResult
from ..errors import DepthError
from ..geometry import se3

ANCHOR_KEY = "import_anchor"
"""Metadata key of the source's first camera-to-world pose (16 numbers, row-major), which the import takes
as the world origin: exports put the cameras back into the source's world with it."""
RIGID_TOLERANCE = 1e-3
"""Largest deviation of a stored rotation from orthonormal with determinant +1 (float32 text is ~1e-7)."""


def scene_result(depth: np.ndarray | torch.Tensor, K: np.ndarray | torch.Tensor, poses: np.ndarray | torch.Tensor,
                 *, path: str | Path, direction: str, convention: str, meta: dict[str, str],
                 confidence: torch.Tensor | None = None) -> DepthResult:
    """Check and convert one scene. ``depth (T, H, W)`` z-depth (<= 0: unknown); ``K (3, 3)`` or
    ``(T, 3, 3)`` pixels of the depth maps; ``poses (T, 4, 4)`` or ``(T, 3, 4)``, ``direction``
    ``c2w``/``w2c`` in axes ``convention`` (:data:`inspatio_cli.geometry.se3.CONVENTIONS`). The poses are
    re-expressed relative to the first (frame 0 is the identity, as the depth stage's, so presets and
    trajectories relative to the first camera mean the same on imported scenes). ``meta`` is kept and
    completed with ``import_direction``, ``import_convention``, ``unknown_depth`` (pixel count) and
    :data:`ANCHOR_KEY`. Raises a one-line :class:`DepthError` naming ``path`` for any problem."""
    depth = torch.as_tensor(np.asarray(depth, dtype=np.float32))
    K = np.asarray(K, dtype=np.float64)
    poses = np.asarray(poses, dtype=np.float64)
    if depth.ndim != 3 or not len(depth) or 0 in depth.shape:
        raise DepthError(f"depth must be (frames, H, W), got shape {tuple(depth.shape)}", path)
    frames = len(depth)
    if K.shape == (3, 3):
        K = np.broadcast_to(K, (frames, 3, 3))
    if K.ndim != 3 or K.shape[1:] != (3, 3):
        raise DepthError(f"K must be (3, 3) or (frames, 3, 3), got shape {K.shape}", path)
    if poses.ndim != 3 or poses.shape[1:] not in ((3, 4), (4, 4)):
        raise DepthError(f"poses must be (frames, 4, 4) or (frames, 3, 4), got shape {poses.shape}", path)
    for what, count in (("intrinsics (K)", len(K)), ("poses", len(poses))):
        if count != frames:
            raise DepthError(f"{count} {what} for {frames} depth frames: expected one per frame", path)
    bad = ~torch.isfinite(depth).flatten(1).all(1)
    if bad.any():
        raise DepthError(f"depth has non-finite values (NaN or Inf; first at frame {int(bad.nonzero()[0, 0])})", path)
    for what, values in (("K", K), ("poses", poses)):
        if not np.isfinite(values).all():
            raise DepthError(f"{what} has non-finite values (first at frame "
                             f"{int(np.flatnonzero(~np.isfinite(values).all(axis=(1, 2)))[0])})", path)
    if not ((K[:, 0, 0] > 0) & (K[:, 1, 1] > 0)).all() or not np.allclose(K[:, 2], (0.0, 0.0, 1.0)):
        raise DepthError("K must be pinhole intrinsics [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0", path)
    c2w = np.zeros((frames, 4, 4))
    c2w[:, :3] = poses[:, :3]
    c2w[:, 3, 3] = 1.0
    if poses.shape[1] == 4 and not np.allclose(poses[:, 3], (0.0, 0.0, 0.0, 1.0), atol=RIGID_TOLERANCE):
        raise DepthError("poses must end with the row [0, 0, 0, 1]", path)
    _check_rotations(c2w[:, :3, :3], path)
    c2w[:, :3, :3] = se3.orthonormalize(c2w[:, :3, :3])
    if direction == "w2c":
        c2w = se3.invert(c2w)
    c2w = se3.convert_convention(c2w, convention, "opencv")
    anchor = c2w[0].copy()
    c2w = se3.invert(anchor) @ c2w
    depth, confidence, unknown = _fill_unknown(depth, confidence, path)
    meta = {**meta, "import_direction": direction, "import_convention": convention, "unknown_depth": str(unknown),
            ANCHOR_KEY: " ".join(f"{v:.17g}" for v in anchor.reshape(16))}
    return DepthResult(depth=depth, K=torch.from_numpy(K.astype(np.float32)),
                       c2w=torch.from_numpy(c2w.astype(np.float32)), confidence=confidence, meta=meta).validate(path)


def _check_rotations(R: np.ndarray, path: str | Path) -> None:
    """Refuse rotation blocks that are not orthonormal or are reflections (determinant -1), naming the first."""
    det = np.linalg.det(R)
    error = np.abs(np.swapaxes(R, 1, 2) @ R - np.eye(3)).max(axis=(1, 2))
    reflected = np.flatnonzero(det < 0)
    if reflected.size:
        raise DepthError(f"pose {int(reflected[0])} is a reflection (rotation determinant {det[reflected[0]]:.3g}), "
                         "not a rotation: are the axes of another convention or handedness?", path)
    skewed = np.flatnonzero(error > RIGID_TOLERANCE)
    if skewed.size:
        raise DepthError(f"pose {int(skewed[0])} is not a rotation (R^T R differs from the identity by "
                         f"{error[skewed[0]]:.3g})", path)


def _fill_unknown(depth: torch.Tensor, confidence: torch.Tensor | None,
                  path: str | Path) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Depth <= 0 -> the frame's largest known depth with confidence 0 (module docstring). Returns the
    filled depth, the confidence and the number of unknown pixels; a frame without known depth is an
    error."""
    unknown = depth <= 0
    confidence = torch.ones_like(depth) if confidence is None else confidence.float().clone()
    count = int(unknown.sum())
    if not count:
        return depth, confidence, 0
    empty = unknown.flatten(1).all(1)
    if empty.any():
        raise DepthError(f"frame {int(empty.nonzero()[0, 0])} has no known depth (every value is <= 0)", path)
    far = depth.flatten(1).amax(1)[:, None, None].expand_as(depth)
    return torch.where(unknown, far, depth), confidence.masked_fill(unknown, 0.0), count


def source_world_c2w(result: DepthResult, path: str | Path | None = None) -> np.ndarray:
    """float64 ``(T, 4, 4)`` camera-to-world poses of ``result`` in the world of the scene it was imported
    from (:data:`ANCHOR_KEY`; a depth file made by the depth stage has none and keeps its own); ``path``
    the depth file, named by the error for a damaged anchor."""
    c2w = result.c2w.double().numpy()
    anchor = result.meta.get(ANCHOR_KEY)
    if anchor is None:
        return c2w
    try:
        first = np.array([float(v) for v in anchor.split()]).reshape(4, 4)
    except ValueError:
        raise DepthError(f"metadata {ANCHOR_KEY} must be 16 numbers, got {anchor[:60]!r}", path) from None
    if not se3.is_rigid(first, atol=RIGID_TOLERANCE):
        raise DepthError(f"metadata {ANCHOR_KEY} is not a rigid pose", path)
    return first @ c2w
