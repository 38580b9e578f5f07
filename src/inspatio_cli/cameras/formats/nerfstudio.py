"""nerfstudio ``camera_path.json`` (what ``ns-render camera-path`` reads and the viewer exports).

Fields used: ``render_height``, ``render_width``, ``camera_type`` (only ``perspective``), and
``camera_path``: a list of ``{"camera_to_world": 16 numbers (row-major 4x4, or nested 4x4),
"fov": vertical field of view in degrees}``. Poses are camera-to-world in nerfstudio's camera axes,
which are OpenGL's (x right, y up, z backward). Focal length ``(H/2) / tan(fov/2)`` in pixels of the
render size, principal point at the image centre (as nerfstudio's ``get_path_from_json``).
"""

from __future__ import annotations

import json
import math

import numpy as np

from ...geometry import se3
from ..source import PoseSequence, normalize_poses
from ..trajectory import Trajectory
from . import MAX_POSES, json_number, json_vector, schema_error


def parse_nerfstudio(data: dict, path, *, direction: str, convention: str, anchor: str, scale: float,
                     rotation_only: bool, resample: bool, meta: dict) -> PoseSequence:
    """Read a parsed ``camera_path.json`` object into a :class:`PoseSequence` with per-frame intrinsics."""
    height = json_number(data.get("render_height"), "render_height", path, data)
    width = json_number(data.get("render_width"), "render_width", path, data)
    if height <= 0 or width <= 0:
        raise schema_error("render_height and render_width must be positive", path, data)
    camera_type = data.get("camera_type", "perspective")
    if camera_type != "perspective":
        raise schema_error(f"camera_type {camera_type!r} is not supported; only perspective cameras", path, data)
    cams = data.get("camera_path")
    if not isinstance(cams, list) or not cams:
        raise schema_error("camera_path must be a non-empty list of cameras", path, data)
    if len(cams) > MAX_POSES:
        raise schema_error(f"{len(cams)} cameras; at most {MAX_POSES} are supported", path, data)
    mats, fovs, lines = [], [], []
    for i, cam in enumerate(cams):
        where = f"camera_path[{i}]"
        if not isinstance(cam, dict):
            raise schema_error(f"{where} must be an object", path, data)
        matrix = cam.get("camera_to_world")
        if isinstance(matrix, list) and len(matrix) == 4 and all(isinstance(r, list) for r in matrix):
            matrix = [v for row in matrix for v in row]
        mats.append(json_vector(matrix, 16, f"{where}.camera_to_world", path, cam))
        fov = json_number(cam.get("fov"), f"{where}.fov", path, cam)
        if not 0 < fov < 180:
            raise schema_error(f"{where}.fov must be between 0 and 180 degrees, got {fov:g}", path, cam)
        fovs.append(fov)
        lines.append(getattr(cam, "line", None))
    c2w = normalize_poses(np.array(mats).reshape(-1, 4, 4), convention=convention, direction=direction,
                          anchor=anchor, scale=scale, rotation_only=rotation_only, path=path, lines=lines)
    f = (height / 2.0) / np.tan(np.radians(fovs) / 2.0)
    intr = np.stack([f, f, np.full(len(f), width / 2.0), np.full(len(f), height / 2.0)], axis=1)
    return PoseSequence(c2w, {**meta, "path": str(path), "lines": lines, "fps": data.get("fps")},
                        intrinsics=intr, intrinsics_size=(height, width), resample=resample)


def nerfstudio_json(trajectory: Trajectory, *, fallback_K: np.ndarray | None = None, fps: float = 24.0) -> str:
    """A ``camera_path.json`` for ``trajectory`` at its image size: OpenGL-axis c2w, vertical fov from
    the trajectory's ``K`` (else ``fallback_K (3, 3)`` in pixels of the same size, else 60 degrees)."""
    h, w = trajectory.size
    c2w = se3.convert_convention(trajectory.rel_c2w.numpy(), "opencv", "opengl")
    if trajectory.K is not None:
        fy = trajectory.K[:, 1, 1].numpy()
    elif fallback_K is not None:
        fy = np.full(len(c2w), float(np.asarray(fallback_K)[1, 1]))
    else:
        fy = np.full(len(c2w), (h / 2.0) / math.tan(math.radians(30.0)))
    fov = np.degrees(2.0 * np.arctan((h / 2.0) / fy))
    cams = [{"camera_to_world": [float(v) for v in m.reshape(16)], "fov": float(f), "aspect": w / h}
            for m, f in zip(c2w, fov)]
    doc = {"camera_type": "perspective", "render_height": h, "render_width": w, "fps": fps,
           "seconds": len(cams) / fps, "camera_path": cams}
    return json.dumps(doc, indent=1) + "\n"

