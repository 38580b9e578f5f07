"""inspatio keyframe JSON: our own readable trajectory format (documented in the README).

```
{
  "format": "inspatio-keyframes",            optional marker
  "units": "frames" | "seconds" | "normalized",   where "at" is measured (default frames;
                                              normalized: 0 = first output frame, 1 = last)
  "interpolation": "cubic" | "linear",        default cubic
  "keyframes": [                              at least 2, strictly increasing "at"
    {"at": 0,  "orbit": {"pitch": 0, "yaw": 0, "displacement": 1}},
    {"at": 48, "orbit": {"pitch": 10, "yaw": -20, "displacement": 1}, "fov": 50}
  ]
}
```

A keyframe is either an **orbit** (the official 3-line parameters: pitch/yaw in degrees, displacement
in depth units; interpolated as parameters, so the camera moves on arcs, and through the keys, unlike
the official smoothing spline) or a **pose**: ``position`` ``[x, y, z]`` (the camera centre) and at most
one rotation, ``quaternion`` ``[w, x, y, z]``, ``euler_deg`` ``[a, b, c]`` with ``order`` (SciPy notation,
default ``"YXZ"``: yaw about y, then pitch about x, then roll about z, intrinsic, right-handed) or
``look_at`` ``[x, y, z]`` (with optional ``up``, default ``[0, -1, 0]``). Poses are camera-to-world in the
first source camera's frame (OpenCV axes unless ``--convention`` says otherwise). All keyframes of a
file are of one kind. Pose keyframes interpolate with SLERP (linear) or a rotation spline (cubic) and
linear/cubic positions. Optional per keyframe: ``fov`` (vertical, degrees) or ``intrinsics``
``[fx/W, fy/H, cx/W, cy/H]``; values are interpolated linearly between the keyframes that give them.
Frames before the first or after the last keyframe hold the end keyframe.
"""

from __future__ import annotations

import json

import numpy as np
from scipy.interpolate import CubicSpline

from ...choices import MODEL_SIZE
from ...errors import TrajectoryError
from ...geometry import se3
from ..official import orbit_poses
from ..source import TrajectorySource, fov_to_intrinsics, intrinsics_matrix, normalize_poses
from ..trajectory import Trajectory
from . import MAX_KEYFRAMES, json_number, json_vector, schema_error

UNITS = ("frames", "seconds", "normalized")
INTERPOLATIONS = ("cubic", "linear")
ROTATIONS = ("quaternion", "euler_deg", "look_at")
KEY_FIELDS = {"at", "orbit", "position", "order", "up", "fov", "intrinsics", *ROTATIONS}
TOP_FIELDS = {"format", "version", "units", "interpolation", "keyframes", "description"}


def _interp(x: np.ndarray, y: np.ndarray, q: np.ndarray, cubic: bool) -> np.ndarray:
    """Interpolate ``y (K,)`` or ``(K, D)`` at ``q``, holding the ends outside ``[x0, xK]``."""
    q = np.clip(q, x[0], x[-1])
    if cubic and len(x) >= 3:
        return CubicSpline(x, y, axis=0)(q)
    if y.ndim == 1:
        return np.interp(q, x, y)
    return np.stack([np.interp(q, x, y[:, i]) for i in range(y.shape[1])], axis=1)


class Keyframes(TrajectorySource):
    """Parsed keyframe JSON: positions ``at (K,)`` in ``units``; either ``orbit (K, 3)`` (pitch, yaw,
    displacement) or ``poses (K, 4, 4)`` (normalised OpenCV c2w); optional ``fov (K,)`` and normalised
    ``intrinsics (K, 4)`` with NaN where a keyframe does not set them."""

    def __init__(self, at: np.ndarray, units: str, meta: dict, *, orbit: np.ndarray | None = None,
                 poses: np.ndarray | None = None, fov: np.ndarray, intrinsics: np.ndarray, cubic: bool,
                 scale: float = 1.0, rotation_only: bool = False):
        super().__init__(meta)
        self.at, self.units, self.orbit, self.poses = at, units, orbit, poses
        self.fov, self.intrinsics, self.cubic = fov, intrinsics, cubic
        self.scale, self.rotation_only = scale, rotation_only

    def key_frames(self, n: int, fps: float | None) -> np.ndarray:
        """Keyframe positions in output frames for an ``n``-frame output."""
        if self.units == "frames":
            return self.at
        if self.units == "normalized":
            return self.at * (n - 1)
        if not fps:
            raise TrajectoryError("keyframes are in seconds but the frame rate is unknown (pass --fps)",
                                  self.meta.get("path"))
        return self.at * fps

    def sample(self, n: int, *, fps: float | None = None, size: tuple[int, int] = MODEL_SIZE
               ) -> tuple[np.ndarray, np.ndarray | None]:
        x = self.key_frames(n, fps)
        q = np.arange(n, dtype=np.float64)
        if self.orbit is not None:
            vals = _interp(x, self.orbit, q, self.cubic)
            pitch, yaw, r = vals[:, 0], vals[:, 1], vals[:, 2] * self.scale
            poses = orbit_poses(pitch, yaw, r, is_zoom=not pitch.any() and not yaw.any(),
                                rotation_only=self.rotation_only)
        else:
            poses = se3.interpolate_poses(x, self.poses, q, cubic=self.cubic)
        has_fov, has_intr = ~np.isnan(self.fov), ~np.isnan(self.intrinsics[:, 0])
        if has_fov.any():
            return poses, fov_to_intrinsics(np.interp(np.clip(q, x[0], x[-1]), x[has_fov], self.fov[has_fov]), size)
        if has_intr.any():
            cols = [np.interp(np.clip(q, x[0], x[-1]), x[has_intr], self.intrinsics[has_intr, i]) for i in range(4)]
            return poses, intrinsics_matrix(cols[0] * size[1], cols[1] * size[0], cols[2] * size[1], cols[3] * size[0])
        return poses, None


def _pose_of(key: dict, i: int, path) -> np.ndarray:
    where = f"keyframes[{i}]"
    position = np.array(json_vector(key.get("position", [0.0, 0.0, 0.0]), 3, f"{where}.position", path, key))
    given = [name for name in ROTATIONS if name in key]
    if len(given) > 1:
        raise schema_error(f"{where}: give one rotation ({' or '.join(ROTATIONS)}), not {' and '.join(given)}",
                           path, key)
    rotation = given[0] if given else None
    if rotation == "quaternion":
        q = np.array(json_vector(key["quaternion"], 4, f"{where}.quaternion", path, key))
        if np.linalg.norm(q) < 1e-9:
            raise schema_error(f"{where}.quaternion must not be zero", path, key)
        return se3.make_pose(se3.quaternion_to_matrix(q / np.linalg.norm(q)), position)
    if rotation == "euler_deg":
        angles = json_vector(key["euler_deg"], 3, f"{where}.euler_deg", path, key)
        order = key.get("order", "YXZ")
        if not isinstance(order, str) or len(order) != 3 or not (order.isupper() or order.islower()) \
                or set(order.lower()) - set("xyz"):
            raise schema_error(f"{where}.order must be 3 axis letters such as \"YXZ\" (intrinsic) or \"yxz\" "
                               f"(extrinsic), got {json.dumps(order)}", path, key)
        return se3.make_pose(se3.euler_to_matrix(angles, order), position)
    if rotation == "look_at":
        target = json_vector(key["look_at"], 3, f"{where}.look_at", path, key)
        up = json_vector(key.get("up", [0.0, -1.0, 0.0]), 3, f"{where}.up", path, key)
        try:
            return se3.look_at(position, target, up)
        except ValueError as exc:
            raise schema_error(f"{where}: {exc}", path, key) from None
    return se3.make_pose(np.eye(3), position)


def _orbit_of(key: dict, i: int, path) -> list[float]:
    orbit = key["orbit"]
    where = f"keyframes[{i}].orbit"
    if not isinstance(orbit, dict):
        raise schema_error(f"{where} must be an object with pitch, yaw and displacement", path, key)
    unknown = set(orbit) - {"pitch", "yaw", "displacement"}
    if unknown:
        raise schema_error(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; expected pitch, yaw, "
                           "displacement", path, orbit)
    return [json_number(orbit.get(name, 0.0), f"{where}.{name}", path, orbit)
            for name in ("pitch", "yaw", "displacement")]


def parse_keyframes(data: dict, path, *, direction: str, convention: str, anchor: str, scale: float,
                    rotation_only: bool, meta: dict) -> Keyframes:
    """Validate and read a keyframe JSON object (see the module docstring); schema errors name the
    line of the offending object."""
    unknown = set(data) - TOP_FIELDS
    if unknown:
        raise schema_error(f"unknown field(s) {', '.join(sorted(unknown))}; expected {', '.join(sorted(TOP_FIELDS))}",
                           path, data)
    units = data.get("units", "frames")
    if units not in UNITS:
        raise schema_error(f"units must be one of {', '.join(UNITS)}, got {json.dumps(units)}", path, data)
    interpolation = data.get("interpolation", "cubic")
    if interpolation not in INTERPOLATIONS:
        raise schema_error(f"interpolation must be cubic or linear, got {json.dumps(interpolation)}", path, data)
    keys = data.get("keyframes")
    if not isinstance(keys, list):
        raise schema_error("keyframes must be a list of keyframe objects", path, data)
    if len(keys) < 2:
        raise schema_error(f"{len(keys)} keyframe(s); give at least 2 (repeat a keyframe for a static camera)",
                           path, keys[0] if keys else data)
    if len(keys) > MAX_KEYFRAMES:
        raise schema_error(f"{len(keys)} keyframes; at most {MAX_KEYFRAMES} are supported", path, data)
    at, orbit, poses, fov, intr, lines = [], [], [], [], [], []
    for i, key in enumerate(keys):
        if not isinstance(key, dict):
            raise schema_error(f"keyframes[{i}] must be an object", path, data)
        bad = set(key) - KEY_FIELDS
        if bad:
            raise schema_error(f"keyframes[{i}]: unknown field(s) {', '.join(sorted(bad))}", path, key)
        if "at" not in key:
            raise schema_error(f"keyframes[{i}]: missing \"at\" (its position in {units})", path, key)
        at.append(json_number(key["at"], f"keyframes[{i}].at", path, key))
        if at[-1] < 0 or (i and at[-1] <= at[-2]):
            raise schema_error(f"keyframes[{i}].at = {at[-1]:g}: positions must be >= 0 and strictly increasing",
                               path, key)
        if "orbit" in key:
            if set(key) & {"position", "order", "up", *ROTATIONS}:
                raise schema_error(f"keyframes[{i}]: an orbit keyframe cannot also give a position or rotation",
                                   path, key)
            orbit.append(_orbit_of(key, i, path))
        else:
            poses.append(_pose_of(key, i, path))
        fov.append(np.nan)
        intr.append([np.nan] * 4)
        if "fov" in key and "intrinsics" in key:
            raise schema_error(f"keyframes[{i}]: give fov or intrinsics, not both", path, key)
        if "fov" in key:
            fov[-1] = json_number(key["fov"], f"keyframes[{i}].fov", path, key)
            if not 0 < fov[-1] < 180:
                raise schema_error(f"keyframes[{i}].fov must be between 0 and 180 degrees", path, key)
        if "intrinsics" in key:
            intr[-1] = json_vector(key["intrinsics"], 4, f"keyframes[{i}].intrinsics", path, key)
            if min(intr[-1][:2]) <= 0:
                raise schema_error(f"keyframes[{i}].intrinsics: focal lengths must be positive", path, key)
        lines.append(getattr(key, "line", None))
    if units == "normalized" and at[-1] > 1:
        raise schema_error("normalized positions must lie in [0, 1]", path, keys[-1])
    if orbit and poses:
        raise schema_error("keyframes mix orbit and pose keyframes; use one kind per file", path, data)
    if not np.isnan(fov).all() and not np.isnan(np.array(intr)[:, 0]).all():
        raise schema_error("keyframes mix fov and intrinsics; use one kind per file", path, data)
    info = {**meta, "path": str(path), "units": units, "interpolation": interpolation, "lines": lines,
            "kind": "orbit" if orbit else "pose"}
    if orbit:
        return Keyframes(np.array(at), units, info, orbit=np.array(orbit), fov=np.array(fov),
                         intrinsics=np.array(intr), cubic=interpolation == "cubic", scale=scale,
                         rotation_only=rotation_only)
    c2w = normalize_poses(np.array(poses), convention=convention, direction=direction, anchor=anchor, scale=scale,
                          rotation_only=rotation_only, path=path, lines=lines)
    return Keyframes(np.array(at), units, info, poses=c2w, fov=np.array(fov), intrinsics=np.array(intr),
                     cubic=interpolation == "cubic")


def keyframes_json(trajectory: Trajectory) -> str:
    """The trajectory as keyframe JSON with one pose keyframe per output frame (linear interpolation,
    positions in frames), so parsing it back gives the same cameras (and normalised intrinsics)."""
    c2w = trajectory.rel_c2w.numpy()
    quats = se3.matrix_to_quaternion(c2w[:, :3, :3])
    h, w = trajectory.size
    keys = []
    for i, (m, q) in enumerate(zip(c2w, quats)):
        key = {"at": i, "position": [float(v) for v in m[:3, 3]], "quaternion": [float(v) for v in q]}
        if trajectory.K is not None:
            K = trajectory.K[i].numpy()
            key["intrinsics"] = [K[0, 0] / w, K[1, 1] / h, K[0, 2] / w, K[1, 2] / h]
        keys.append(key)
    head = json.dumps({"format": "inspatio-keyframes", "version": 1, "units": "frames", "interpolation": "linear"})
    body = ",\n  ".join(json.dumps(k) for k in keys)
    return f'{head[:-1]},\n "keyframes": [\n  {body}\n ]}}\n'
