"""``--align-to CAMERAS``: a target path written in another coordinate system, mapped into the scene's.

The user gives the path (``-t``) in the coordinate system of CAMERAS, their own cameras of the *source*
frames (any per-frame pose format :func:`~inspatio_cli.cameras.load_trajectory` reads, with the same
``--convention``, ``--direction`` and ``--scale`` as the path, since both are in that system). Frame ``i``
of CAMERAS is source frame ``i``: time edits choose which source frame each output frame shows but never
drop source frames, so CAMERAS must hold exactly one pose per source frame (the depth's frame count), or
the run stops with an error (a count that differs is more often a wrong file than a trimmed one).

The fit (:func:`~inspatio_cli.geometry.sim3.robust_similarity`) maps CAMERAS onto the depth stage's
source cameras by centres and orientations; a frame is an inlier when its centre lands within
:data:`INLIER_FRACTION` of the source cameras' extent (the RMS distance of their centres from their mean)
and its orientation within :data:`INLIER_DEG` degrees. The path then goes through the same similarity and
is re-expressed relative to the first source camera, as every trajectory is (``rel_k = S_0^-1 sim(P_k)``);
with ``--rotation-only`` its centre stays at the first source camera.

Reported (log, ``--json`` scene event, sidecar, ``trajectory check``): scale, rotation angle,
translation, per-frame residuals (scene units, fraction of the scene's median depth, degrees) and the
outlier frames. Warnings: a median centre residual (over all frames) above :data:`LARGE_RESIDUAL_FRACTION`
of the median depth, outliers, and degenerate fits (two frames only, or centres on a line, where the
rotation about that line comes from the orientations alone).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import TrajectoryError, UsageError
from ..geometry import se3
from ..geometry.sim3 import DegenerateFit, Sim3, pose_residuals, robust_similarity
from ..progress import Reporter
from .official import OrbitKeyframes
from .source import PoseSequence, TrajectorySource
from .trajectory import Trajectory

if TYPE_CHECKING:
    from ..depth.result import DepthResult

INLIER_FRACTION = 0.1
"""A frame is an inlier when its centre lands within this fraction of the source cameras' extent."""
INLIER_DEG = 5.0
"""... and its orientation within this many degrees."""
LARGE_RESIDUAL_FRACTION = 0.05
"""Warn when the median centre residual (all frames) exceeds this fraction of the scene's median depth."""
MAX_COORDINATE = 1e12
"""Camera positions beyond this many units are refused (damage, not a coordinate system; the fit's squares
would overflow)."""
COLLINEAR_RATIO = 1e-3
"""Centres count as collinear when their second principal spread is below this fraction of the first."""


@dataclass(frozen=True)
class Alignment:
    """A fitted ``--align-to``: ``sim`` maps CAMERAS' world into the depth's (``X = scale R X_user + t``);
    per source frame ``centre_residual (T,)`` in scene units, ``angle_residual (T,)`` in degrees and
    ``inliers (T,)``; ``median_depth``: the scene's (first frame), the unit residuals are compared with;
    ``centre_tol``: the inlier distance used; ``source``: the CAMERAS file."""

    sim: Sim3
    centre_residual: np.ndarray
    angle_residual: np.ndarray
    inliers: np.ndarray
    median_depth: float
    centre_tol: float
    collinear: bool
    source: str

    @property
    def median_residual(self) -> float:
        """The median centre residual over all frames, scene units (outliers included: a minority of them
        leaves it small, a fit that most frames disagree with does not)."""
        return float(np.median(self.centre_residual))

    def describe(self) -> dict:
        """JSON-friendly figures (the ``alignment`` entry of the trajectory's meta)."""
        relative = self.centre_residual / self.median_depth
        return {
            "cameras": self.source, "scale": self.sim.scale, "rotation_deg": round(self.sim.angle_deg, 6),
            "rotation": self.sim.R.tolist(), "translation": self.sim.t.tolist(),
            "frames": len(self.inliers), "inliers": int(self.inliers.sum()),
            "outliers": np.flatnonzero(~self.inliers).tolist(), "collinear": self.collinear,
            "inlier_distance": self.centre_tol, "inlier_deg": INLIER_DEG, "median_depth": self.median_depth,
            "residual": {"median": self.median_residual, "median_relative": self.median_residual / self.median_depth,
                         "max": float(self.centre_residual.max()), "per_frame": self.centre_residual.tolist(),
                         "per_frame_relative": relative.tolist(), "per_frame_deg": self.angle_residual.tolist()},
        }


def alignment_summary(fit: dict) -> str:
    """One log line for the figures of a fit (:meth:`Alignment.describe`)."""
    t = ", ".join(f"{v:.4g}" for v in fit["translation"])
    res = fit["residual"]
    return (f"aligned to {fit['cameras']}: scale {fit['scale']:.6g}, rotation {fit['rotation_deg']:.3f} deg, "
            f"translation ({t}); residual median {res['median']:.3g} units ({res['median_relative']:.2%} of the "
            f"median depth), {fit['inliers']}/{fit['frames']} frames inliers")


def alignment_warnings(fit: dict) -> list[str]:
    """What makes a fit (:meth:`Alignment.describe`) doubtful, each with its remedy; empty when it is sound."""
    out, name, relative = [], f"--align-to {fit['cameras']}", fit["residual"]["median_relative"]
    if not relative <= LARGE_RESIDUAL_FRACTION:
        out.append(f"{name}: the cameras fit the source cameras only to {relative:.1%} of the median scene depth "
                   f"(threshold {LARGE_RESIDUAL_FRACTION:.0%}): check that they are the source frames' cameras, one "
                   "per frame, in the path's --convention/--direction")
    outliers = fit["outliers"]
    if outliers:
        shown = ", ".join(str(k) for k in outliers[:10]) + (", ..." if len(outliers) > 10 else "")
        out.append(f"{name}: {len(outliers)} of {fit['frames']} frames disagree with the fit and were left out "
                   f"(frames {shown})")
    if fit["inliers"] < 3:
        out.append(f"{name}: the fit rests on {fit['inliers']} frames, so nothing checks it; give the cameras of "
                   "more source frames")
    elif fit["collinear"]:
        out.append(f"{name}: the camera centres lie on a line, so the rotation about it comes from the camera "
                   "orientations alone")
    return out


def report_alignment(trajectory: Trajectory, reporter: Reporter) -> None:
    """Log the fit of an aligned ``trajectory`` (:func:`alignment_summary`) and warn when it is doubtful
    (:func:`alignment_warnings`); nothing for a trajectory that was not aligned."""
    fit = trajectory.meta.get("alignment")
    if fit is not None:
        reporter.info(alignment_summary(fit))
        for warning in alignment_warnings(fit):
            reporter.warn(warning)


def check_alignable(parsed: TrajectorySource, *, anchor: str | None, relative_to_source: bool) -> None:
    """:class:`UsageError` when a path ``parsed`` cannot be aligned: an orbit file (relative to the source
    camera by definition), ``anchor="first"`` or ``relative_to_source`` (both make the path relative to a
    camera instead of placing it in the cameras' world)."""
    if isinstance(parsed, OrbitKeyframes):
        raise UsageError("--align-to applies to pose files; 3-line orbit trajectories are relative to the source "
                         "camera by definition")
    for flag, used in (("--anchor first", anchor == "first"), ("--relative-to-source", relative_to_source)):
        if used:
            raise UsageError(f"--align-to places the path in the cameras' world; {flag} would make it relative "
                             "to a camera instead: leave it out")


def check_cameras(cameras: TrajectorySource, num_frames: int) -> PoseSequence:
    """``cameras`` (the ``--align-to`` file, parsed) when it holds one pose per source frame (``num_frames``);
    :class:`TrajectoryError` for keyframes or another pose count."""
    path = cameras.meta.get("path") or cameras.meta.get("source")
    if not isinstance(cameras, PoseSequence):
        raise TrajectoryError(f"--align-to needs one camera pose per source frame, not {cameras.meta.get('format')} "
                              "keyframes", path)
    if cameras.frame_count != num_frames:
        raise TrajectoryError(f"--align-to has {cameras.frame_count} cameras but the source has {num_frames} frames: "
                              "camera i must be source frame i, one per frame", path)
    return cameras


def fit_alignment(cameras: PoseSequence, source_c2w: np.ndarray | torch.Tensor, median_depth: float) -> Alignment:
    """Fit ``cameras`` (the ``--align-to`` poses, one per source frame: :func:`check_cameras`) onto
    ``source_c2w (T, 4, 4)`` (the depth's OpenCV c2w) with the scene's ``median_depth`` (see the module
    docstring). :class:`TrajectoryError` when the fit is impossible (cameras that do not move, or whose
    motion opposes the source's) or the positions are beyond :data:`MAX_COORDINATE`."""
    source = np.asarray(source_c2w, dtype=np.float64)
    name = str(cameras.meta.get("path") or cameras.meta.get("source"))
    user = cameras.c2w
    if np.abs(user[:, :3, 3]).max() > MAX_COORDINATE:
        raise TrajectoryError(f"--align-to: camera positions beyond {MAX_COORDINATE:g} units", name)
    ours = source[:, :3, 3]
    extent = float(np.sqrt(((ours - ours.mean(0)) ** 2).sum(1).mean()))
    tol = INLIER_FRACTION * extent if extent > 0 else INLIER_FRACTION * median_depth
    try:
        sim, inliers = robust_similarity(user, source, tol, INLIER_DEG)
    except DegenerateFit as exc:
        raise TrajectoryError(f"--align-to: {exc}", name) from None
    centre, angle = pose_residuals(sim, user, source)
    centres = user[inliers if inliers.sum() >= 2 else slice(None), :3, 3]
    spread = np.linalg.svd(centres - centres.mean(0), compute_uv=False)
    collinear = bool(len(spread) < 2 or spread[1] <= COLLINEAR_RATIO * spread[0])
    return Alignment(sim, centre, angle, inliers, float(median_depth), tol, collinear, name)


def align_trajectory(trajectory: Trajectory, alignment: Alignment, source_c2w: np.ndarray | torch.Tensor,
                     rotation_only: bool = False) -> Trajectory:
    """``trajectory`` (poses in CAMERAS' world) mapped by ``alignment`` and re-expressed relative to the first
    source camera ``source_c2w[0]``; ``rotation_only`` keeps the camera at that camera. Intrinsics and the
    time map are unchanged; the fit's figures go into ``meta["alignment"]``."""
    first = np.asarray(source_c2w[0], dtype=np.float64)
    rel = se3.invert(first) @ alignment.sim.apply_to_poses(trajectory.rel_c2w.double().numpy())
    if rotation_only:
        rel[:, :3, 3] = 0.0
    return dataclasses.replace(trajectory, rel_c2w=torch.from_numpy(rel),
                               meta={**trajectory.meta, "alignment": alignment.describe()})


def scene_median_depth(depth: DepthResult) -> float:
    """The scene's median depth (first frame) that alignment residuals are compared with."""
    return float(depth.depth[0].double().median())
