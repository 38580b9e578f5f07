"""Similarity transforms (Sim(3): scale, rotation, translation) between two worlds, in float64 NumPy.

A similarity maps world B into world A as ``X_A = scale * R @ X_B + t``; under it a camera pose
``[R_c | c]`` (camera-to-world) becomes ``[R R_c | scale R c + t]``: orientations turn, centres are scaled,
turned and shifted, and the poses stay rigid. The depth stage chains its windows with one
(:mod:`inspatio_cli.depth.windows`); ``--align-to`` fits one between a user's cameras and the depth
stage's (:mod:`inspatio_cli.cameras.align`).

:func:`fit_similarity` is the weighted least-squares fit from the same cameras' poses in both worlds,
centres *and* orientations (so two frames, or frames on a line, still fix the rotation);
:func:`robust_similarity` wraps it in a RANSAC over pairs of frames with a final refit on the inliers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .se3 import make_pose, orthonormalize, rotation_angle_deg

MAX_HYPOTHESES = 500
"""RANSAC tries every pair of frames up to this many pairs, else this many random pairs (fixed seed)."""
MAX_REFITS = 20
"""Refits on the inliers until they stop changing, at most this many times."""


class DegenerateFit(ValueError):
    """The poses do not determine a similarity (no camera motion, or motions that disagree in sign)."""


@dataclass(frozen=True)
class Sim3:
    """``X_A = scale * R @ X_B + t``: ``scale`` > 0, ``R (3, 3)`` a rotation, ``t (3,)``."""

    scale: float
    R: np.ndarray
    t: np.ndarray

    @classmethod
    def identity(cls) -> "Sim3":
        return cls(1.0, np.eye(3), np.zeros(3))

    def apply_to_poses(self, c2w: np.ndarray) -> np.ndarray:
        """Camera-to-world ``(n, 4, 4)`` in world B -> world A (rigid poses; the scale moves the centres)."""
        c2w = np.asarray(c2w, dtype=np.float64)
        rot = self.R[None] @ c2w[:, :3, :3]
        centres = self.scale * c2w[:, :3, 3] @ self.R.T + self.t
        return make_pose(rot, centres)

    @property
    def angle_deg(self) -> float:
        """The rotation's angle in degrees (about its own axis)."""
        return float(rotation_angle_deg(np.eye(3), self.R))


def pose_residuals(sim: Sim3, src_c2w: np.ndarray, dst_c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, how far ``sim`` maps the poses ``src_c2w (n, 4, 4)`` from ``dst_c2w (n, 4, 4)``: the
    distance between camera centres ``(n,)`` in world A's units and the angle between orientations
    ``(n,)`` in degrees."""
    mapped = sim.apply_to_poses(src_c2w)
    dst = np.asarray(dst_c2w, dtype=np.float64)
    centre = np.linalg.norm(mapped[:, :3, 3] - dst[:, :3, 3], axis=1)
    return centre, rotation_angle_deg(mapped[:, :3, :3], dst[:, :3, :3])


def fit_similarity(src_c2w: np.ndarray, dst_c2w: np.ndarray, weights: np.ndarray | None = None) -> Sim3:
    """The similarity mapping the camera poses ``src_c2w (n, 4, 4)`` (world B) onto ``dst_c2w (n, 4, 4)``
    (world A), frames matched by index, each weighted by ``weights (n,)`` (default 1).

    With centred camera centres ``a_i`` (B) and ``b_i`` (A), ``R`` is the rotation nearest to
    ``sum w b a^T / (|a| |b|) + sum w R_A R_B^T / sum w``: the Umeyama cross-covariance of the centres,
    normalised so that it weighs like the orientation agreement term, which keeps ``R`` defined for two
    frames or centres on a line; then ``scale = sum w b.(R a) / sum w |a|^2`` and ``t = mean_A - scale R
    mean_B`` (least squares given ``R``). Exact data give the exact transform.

    Raises :class:`DegenerateFit` when the B centres do not move (the scale is then unknown) or the fitted
    scale is not positive (the two sets of centres move against each other).
    """
    src = np.asarray(src_c2w, dtype=np.float64)
    dst = np.asarray(dst_c2w, dtype=np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    total = w.sum()
    ca, cb = src[:, :3, 3], dst[:, :3, 3]
    a = ca - w @ ca / total
    b = cb - w @ cb / total
    var_a, var_b = float(w @ (a * a).sum(1)), float(w @ (b * b).sum(1))
    if np.sqrt(var_a / total) <= 1e-9 * max(1.0, float(np.abs(ca).max())):
        raise DegenerateFit("the camera centres do not move, so the scale between the two systems is unknown")
    M = np.einsum("n,nij->ij", w, dst[:, :3, :3] @ np.swapaxes(src[:, :3, :3], 1, 2)) / total
    if var_b > 0:
        M = M + np.einsum("n,ni,nj->ij", w, b, a) / np.sqrt(var_a * var_b)
    R = orthonormalize(M)
    scale = float(w @ np.einsum("ni,ni->n", b, a @ R.T)) / var_a
    if not scale > 0:
        raise DegenerateFit("the fitted scale is not positive: the camera centres move against each other")
    return Sim3(scale, R, w @ cb / total - scale * R @ (w @ ca / total))


def robust_similarity(src_c2w: np.ndarray, dst_c2w: np.ndarray, centre_tol: float, angle_tol: float
                      ) -> tuple[Sim3, np.ndarray]:
    """:func:`fit_similarity` robust to outlier frames: the RANSAC hypothesis (a fit on two frames, or on all
    of them, which wins when the noise is spread over every frame) with the lowest truncated cost ``sum min((e_c/centre_tol)^2, 1) + min((e_r/angle_tol)^2, 1)`` over the centre
    and angle residuals (:func:`pose_residuals`), then refits on the inliers (both residuals within their
    tolerance) until the inliers stop changing. Returns the fit and the inlier mask ``(n,)``.

    Frames whose centres coincide give no hypothesis; :class:`DegenerateFit` when no pair does (or fewer
    than two frames are given).
    """
    src = np.asarray(src_c2w, dtype=np.float64)
    dst = np.asarray(dst_c2w, dtype=np.float64)
    n = len(src)
    if n < 2:
        raise DegenerateFit(f"{n} camera(s): at least 2 are needed to fit a similarity")
    pairs = list(itertools.combinations(range(n), 2))
    if len(pairs) > MAX_HYPOTHESES:
        rng = np.random.default_rng(0)
        pairs = [pairs[k] for k in rng.choice(len(pairs), MAX_HYPOTHESES, replace=False)]
    best: tuple[float, Sim3] | None = None
    for frames in [*pairs, range(n)]:
        try:
            sim = fit_similarity(src[list(frames)], dst[list(frames)])
        except DegenerateFit:
            continue
        centre, angle = pose_residuals(sim, src, dst)
        cost = float(np.minimum((centre / centre_tol) ** 2, 1.0).sum() + np.minimum((angle / angle_tol) ** 2, 1.0).sum())
        if best is None or cost < best[0]:
            best = (cost, sim)
    if best is None:
        raise DegenerateFit("the camera centres do not move, so the scale between the two systems is unknown")
    sim, used = best[1], np.zeros(n, dtype=bool)
    for _ in range(MAX_REFITS):
        centre, angle = pose_residuals(sim, src, dst)
        inliers = (centre <= centre_tol) & (angle <= angle_tol)
        if inliers.sum() < 2 or np.array_equal(inliers, used):
            break
        try:
            sim, used = fit_similarity(src[inliers], dst[inliers]), inliers
        except DegenerateFit:
            break
    centre, angle = pose_residuals(sim, src, dst)
    return sim, (centre <= centre_tol) & (angle <= angle_tol)
