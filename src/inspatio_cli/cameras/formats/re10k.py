"""RealEstate10K / CameraCtrl camera files.

Line 1 is the clip's URL (optional here); every other line is one frame with 19 numbers:
``timestamp_us fx fy cx cy k1 k2`` followed by a row-major 3x4 **world-to-camera** matrix in OpenCV
axes. The intrinsics are normalised by the image width (``fx``, ``cx``) and height (``fy``, ``cy``), so
they scale to any image size. The scale of the translations is arbitrary per clip (use ``--scale``).
"""

from __future__ import annotations

import numpy as np

from ...errors import TrajectoryError
from ..source import PoseSequence, normalize_poses
from . import MAX_POSES, data_lines, to_floats
from .matrices import rows_to_poses

COLUMNS = 19


def looks_like_re10k(lines: list[tuple[int, list[str]]]) -> bool:
    """True when the data lines are an optional URL line followed by 19-number lines."""
    body = lines[1:] if lines and len(lines[0][1]) == 1 and not _is_number(lines[0][1][0]) else lines
    return bool(body) and all(len(tokens) == COLUMNS for _, tokens in body)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def parse_re10k(text: str, path, *, direction: str, convention: str, anchor: str, scale: float,
                rotation_only: bool, resample: bool, meta: dict) -> PoseSequence:
    """Parse a RealEstate10K camera file into a :class:`PoseSequence` with per-frame intrinsics."""
    lines = data_lines(text)
    url = None
    if lines and len(lines[0][1]) == 1 and not _is_number(lines[0][1][0]):
        url, lines = lines[0][1][0], lines[1:]
    if not lines:
        raise TrajectoryError("no camera lines: expected 'timestamp fx fy cx cy k1 k2' + 12 numbers per frame",
                              path, 1)
    if len(lines) > MAX_POSES:
        raise TrajectoryError(f"{len(lines)} frames; at most {MAX_POSES} are supported", path, lines[MAX_POSES][0])
    rows = []
    for number, tokens in lines:
        if len(tokens) != COLUMNS:
            raise TrajectoryError(f"{len(tokens)} numbers on this line; a RealEstate10K frame has {COLUMNS} "
                                  "(timestamp, fx fy cx cy, two zeros, a 3x4 world-to-camera matrix)", path, number)
        rows.append(to_floats(tokens, path, number))
    rows = np.array(rows)
    numbers = [number for number, _ in lines]
    c2w = normalize_poses(rows_to_poses(rows[:, 7:]), convention=convention, direction=direction, anchor=anchor, scale=scale,
                          rotation_only=rotation_only, path=path, lines=numbers)
    intr = rows[:, 1:5]
    for i in np.flatnonzero((intr[:, :2] <= 0).any(axis=1)):
        raise TrajectoryError("non-positive focal length", path, numbers[i])
    return PoseSequence(c2w, {**meta, "path": str(path), "url": url, "lines": numbers,
                              "timestamps_us": rows[:, 0].tolist()},
                        intrinsics=intr, intrinsics_size=(1.0, 1.0), resample=resample)
