"""Parsed, not-yet-resolved trajectories and the shared pose normalisation of the file parsers.

A :class:`TrajectorySource` knows how to produce target poses for any number of output frames
(keyframe formats) or for exactly its own number of frames (per-frame formats, resampled only when
asked). :meth:`TrajectorySource.resolve` combines it with a :class:`TimeControl` into a
:class:`Trajectory`.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..choices import MODEL_SIZE
from ..errors import TrajectoryError, UsageError
from ..geometry import se3
from .timecontrol import TimeControl, official_adaptive_indices
from .trajectory import Trajectory

if TYPE_CHECKING:
    from ..depth.result import DepthResult

ANCHORS = ("world", "first")
MAX_RELATIVE_FOCAL = 1e6
"""Largest focal length (and principal point offset) a file may give, in image sizes (a field of view of
about 6e-5 degrees): beyond it the intrinsics are damage, and scaling them to the canvas could overflow."""
MEDIAN_DEPTH = "median depth"
"""``meta["translation_unit"]`` of a path whose translations are in median depths of the scene (the moves
format, :mod:`.formats.moves`): :func:`in_scene_units` turns them into depth units once the depth is known."""


def intrinsics_matrix(fx: np.ndarray, fy: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """``(N, 3, 3)`` pinhole matrices from per-frame ``fx, fy, cx, cy`` (each ``(N,)``, pixels)."""
    K = np.zeros((len(fx), 3, 3))
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = fx, fy, cx, cy, 1.0
    return K


def fov_to_intrinsics(fov_y_deg: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(N, 3, 3)`` square-pixel intrinsics of vertical field of view ``fov_y_deg (N,)`` for an image
    of ``size`` (H, W), principal point at the centre (``fy = (H/2) / tan(fov/2)``)."""
    h, w = size
    f = (h / 2.0) / np.tan(np.radians(np.asarray(fov_y_deg, dtype=np.float64)) / 2.0)
    return intrinsics_matrix(f, f, np.full(len(f), w / 2.0), np.full(len(f), h / 2.0))


def normalize_poses(mats: np.ndarray, *, convention: str, direction: str, anchor: str, scale: float,
                    rotation_only: bool, path=None, lines: list[int] | None = None) -> np.ndarray:
    """Turn poses read from a file into the tool's frame: OpenCV c2w relative to the source's first camera.

    ``mats (L, 4, 4)`` as stored; ``direction`` ``c2w``/``w2c``; ``convention`` of the file's axes;
    ``anchor`` ``world`` (the file's world frame is the source's first camera, as in InSpatio v1.5's
    ``target_tcw.txt``) or ``first`` (re-express every pose relative to the file's first pose);
    ``scale`` multiplies translations (e.g. 0.01 for centimetres); ``rotation_only`` drops them.
    Non-finite values or non-rigid matrices raise :class:`TrajectoryError` at the offending line.
    """
    mats = np.asarray(mats, dtype=np.float64)
    bad = ~np.isfinite(mats).all(axis=(1, 2))
    rigid = se3.is_rigid(mats, atol=1e-3) | bad
    for i in np.flatnonzero(bad | ~rigid):
        what = "non-finite value (NaN or inf)" if bad[i] else (
            "not a rigid transform (rotation not orthonormal, or last row not 0 0 0 1)")
        raise TrajectoryError(f"pose {i}: {what}", path, None if lines is None else lines[i])
    if direction not in ("c2w", "w2c"):
        raise UsageError(f"--direction {direction!r}: expected c2w or w2c")
    if anchor not in ANCHORS:
        raise UsageError(f"--anchor {anchor!r}: expected one of {', '.join(ANCHORS)}")
    mats = mats.copy()
    mats[:, :3, :3] = se3.orthonormalize(mats[:, :3, :3])
    mats[:, 3] = (0.0, 0.0, 0.0, 1.0)
    c2w = se3.invert(mats) if direction == "w2c" else mats
    c2w = se3.convert_convention(c2w, convention, "opencv")
    if anchor == "first":
        c2w = se3.invert(c2w[0]) @ c2w
    c2w[:, :3, 3] *= scale
    if rotation_only:
        c2w[:, :3, 3] = 0.0
    return c2w


class TrajectorySource(ABC):
    """A parsed trajectory; ``meta`` says what it was read from and how it was interpreted."""

    #: number of poses for per-frame formats, ``None`` for keyframe formats (any length)
    frame_count: int | None = None

    def __init__(self, meta: dict):
        self.meta = dict(meta)

    @abstractmethod
    def sample(self, n: int, *, fps: float | None = None, size: tuple[int, int] = MODEL_SIZE
               ) -> tuple[np.ndarray, np.ndarray | None]:
        """Target poses ``(n, 4, 4)`` float64 (OpenCV c2w relative to the first source camera) and
        optional intrinsics ``(n, 3, 3)`` in pixels of ``size`` for ``n`` output frames."""

    def official_total_angle(self) -> float:
        """The official adaptive rule's total keyframe angle; only 3-line orbit files define it."""
        raise UsageError(f"--extend official applies only to 3-line orbit trajectories, not {self.meta.get('format')}")

    def resolve(self, num_source_frames: int, time: TimeControl | None = None, *, fps: float | None = None,
                size: tuple[int, int] = MODEL_SIZE) -> Trajectory:
        """The per-output-frame :class:`Trajectory` for a source video of ``num_source_frames`` frames.

        The time edits give the time map; the camera path is sampled at its length (so the camera keeps
        moving during freezes and extensions). ``--extend official`` instead samples the path at the
        edited length and replays poses and frames together with the official index list. ``fps`` is
        needed only by keyframes given in seconds; ``size`` (H, W) is the image size of ``K``.
        """
        time = time or TimeControl()
        edited = time.edited_map(num_source_frames)
        if time.extend == "official":
            idx = official_adaptive_indices(self.official_total_angle(), len(edited))
            poses, K = self.sample(len(edited), fps=fps, size=size)
            time_map, poses, K = edited[idx], poses[idx], None if K is None else K[idx]
        else:
            time_map = time.extend_map(edited)
            poses, K = self.sample(len(time_map), fps=fps, size=size)
        meta = {**self.meta, "time": time.describe()}
        return Trajectory(torch.from_numpy(np.ascontiguousarray(poses)), torch.from_numpy(time_map.astype(np.int64)),
                          num_source_frames, None if K is None else torch.from_numpy(np.ascontiguousarray(K)),
                          tuple(size), meta)


class PoseSequence(TrajectorySource):
    """Per-frame poses read from a file (matrices, ``.npy``, Tcw, RealEstate10K, nerfstudio).

    ``c2w (L, 4, 4)`` already normalised (:func:`normalize_poses`); ``intrinsics (L, 4)`` optional
    ``fx, fy, cx, cy`` in pixels of ``intrinsics_size`` (H, W) (rescaled per axis to the requested size);
    ``resample``: stretch the path to any frame count (SLERP rotations, linear centres) instead of
    requiring exactly ``L`` output frames.
    """

    def __init__(self, c2w: np.ndarray, meta: dict, *, intrinsics: np.ndarray | None = None,
                 intrinsics_size: tuple[int, int] | None = None, resample: bool = False):
        super().__init__(meta)
        self.c2w = np.asarray(c2w, dtype=np.float64)
        self.intrinsics = None if intrinsics is None else np.asarray(intrinsics, dtype=np.float64)
        if self.intrinsics is not None:
            h_ref, w_ref = intrinsics_size
            with np.errstate(all="ignore"):
                relative = self.intrinsics / np.array([w_ref, h_ref, w_ref, h_ref], dtype=np.float64)
            if not (np.isfinite(relative).all() and (relative[:, :2] > 0).all()
                    and (np.abs(relative) <= MAX_RELATIVE_FOCAL).all()):
                raise TrajectoryError(f"intrinsics must be finite, with positive focal lengths of at most "
                                      f"{MAX_RELATIVE_FOCAL:g} image sizes", meta.get("path"))
        self.intrinsics_size = intrinsics_size
        self.resample = resample
        self.frame_count = len(self.c2w)

    def sample(self, n: int, *, fps: float | None = None, size: tuple[int, int] = MODEL_SIZE
               ) -> tuple[np.ndarray, np.ndarray | None]:
        count = self.frame_count
        if n != count and not self.resample:
            raise TrajectoryError(
                f"the file has {count} poses but the output has {n} frames", self.meta.get("path"),
                hint=f"pass --resample to stretch the path to {n} frames, or change the video length with "
                     f"--extend hold|loop|pingpong --min-frames {count}" if n < count else
                     f"pass --resample to stretch the path to {n} frames")
        c2w, intr = self.c2w, self.intrinsics
        if n != count:
            src_t = np.linspace(0.0, 1.0, count)
            dst_t = np.linspace(0.0, 1.0, n)
            c2w = se3.interpolate_poses(src_t, c2w, dst_t)
            if intr is not None:
                intr = np.stack([np.interp(dst_t, src_t, intr[:, i]) for i in range(4)], axis=1)
        if intr is None:
            return c2w, None
        h_ref, w_ref = self.intrinsics_size
        sx, sy = size[1] / w_ref, size[0] / h_ref
        return c2w, intrinsics_matrix(intr[:, 0] * sx, intr[:, 1] * sy, intr[:, 2] * sx, intr[:, 3] * sy)



def frame_count(source: TrajectorySource, num_frames: int | None = None, depth_frames: int | None = None,
                default: int | None = None) -> int:
    """The source-video length to resolve ``source`` for: ``num_frames`` (``--frames``), else the depth
    file's, else the file's own pose count, else ``default``; a :class:`UsageError` when the two given
    counts disagree or none is known."""
    if num_frames is not None and depth_frames is not None and num_frames != depth_frames:
        raise UsageError(f"--frames {num_frames} but the depth file has {depth_frames} frames")
    n = num_frames or depth_frames or source.frame_count or default
    if n is None:
        raise UsageError("this trajectory fits any video length: pass --frames N or --depth FILE")
    if n < 1:
        raise UsageError(f"--frames must be >= 1, got {n}")
    return n


def in_scene_units(trajectory: Trajectory, depth: "DepthResult") -> Trajectory:
    """``trajectory`` with its translations in ``depth``'s units: a path in median depths
    (``meta["translation_unit"]`` is :data:`MEDIAN_DEPTH`) is scaled by the median of the first depth map
    (recorded as ``meta["median_depth"]``); any other trajectory is returned as it is. Every command that
    meets a trajectory with its scene's depth calls this (scene, ``trajectory check/show/convert --depth``)."""
    if trajectory.meta.get("translation_unit") != MEDIAN_DEPTH:
        return trajectory
    median = float(depth.depth[0].float().median())
    c2w = trajectory.rel_c2w.clone()
    c2w[:, :3, 3] *= median
    return dataclasses.replace(trajectory, rel_c2w=c2w,
                               meta={**trajectory.meta, "translation_unit": "depth", "median_depth": median})
