"""Chaining overlapping DA3 windows into one trajectory with a Sim(3) fit on the shared frames.

Each window of frames is reconstructed in its own world frame (its reference camera) and, for relative
models, its own scale. Consecutive windows share ``overlap`` frames. The transform that maps window B's
world into the already chained world A is a similarity ``X_A = s R X_B + t``; under it a camera pose
``[R_c | c]`` (camera-to-world) becomes ``[R R_c | s R c + t]`` and every depth is multiplied by ``s``.
It is fitted on the shared frames as:

* ``s``: the median per-pixel depth ratio ``d_A / d_B`` over the shared frames, on pixels where both
  confidences are at least their median (depth is dense, so the scale stays well determined even when
  the camera barely moves, where camera-centre fits are ill-conditioned);
* ``R``: the rotation nearest to ``sum_i R_A,i R_B,i^T`` (chordal mean of the per-frame rotation offsets);
* ``t``: the mean of ``c_A,i - s R c_B,i`` over the shared frames.

With consistent windows (exact data) this recovers the transform exactly; with noisy ones it is the
least-squares answer for ``R`` and ``t`` given a robust ``s``.
"""

from __future__ import annotations

import numpy as np
import torch

from ..geometry.se3 import orthonormalize
from ..geometry.sim3 import Sim3


def depth_scale(depth_a: torch.Tensor, depth_b: torch.Tensor, conf_a: torch.Tensor | None = None,
                conf_b: torch.Tensor | None = None) -> float:
    """Median of ``depth_a / depth_b`` over pixels (``(n, h, w)`` each) where both depths are positive and
    finite and both confidences are at least their median."""
    a, b = depth_a.double().flatten(), depth_b.double().flatten()
    keep = torch.isfinite(a) & torch.isfinite(b) & (a > 0) & (b > 0)
    if conf_a is not None and conf_b is not None:
        ca, cb = conf_a.double().flatten(), conf_b.double().flatten()
        confident = keep & (ca >= ca[keep].median()) & (cb >= cb[keep].median()) if bool(keep.any()) else keep
        keep = confident if bool(confident.any()) else keep
    if not bool(keep.any()):
        return 1.0
    return float(torch.exp(torch.median(torch.log(a[keep]) - torch.log(b[keep]))))


def fit_sim3(c2w_a: np.ndarray, c2w_b: np.ndarray, scale: float) -> Sim3:
    """The similarity mapping world B onto world A from the same cameras' poses in both (``(n, 4, 4)``
    camera-to-world) and the depth scale ``s = d_A/d_B`` (see the module doc)."""
    c2w_a, c2w_b = np.asarray(c2w_a, dtype=np.float64), np.asarray(c2w_b, dtype=np.float64)
    R = orthonormalize((c2w_a[:, :3, :3] @ np.swapaxes(c2w_b[:, :3, :3], 1, 2)).sum(axis=0))
    t = (c2w_a[:, :3, 3] - scale * c2w_b[:, :3, 3] @ R.T).mean(axis=0)
    return Sim3(scale, R, t)

