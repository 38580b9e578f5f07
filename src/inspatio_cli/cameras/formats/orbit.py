"""The official 3-line orbit format (``traj/*.txt`` of InSpatio-World v1).

Line 1: pitch keyframes ``x_up`` in degrees; line 2: yaw keyframes ``y_left`` in degrees; line 3: ``r``
keyframes (orbit radius, or dolly distance when both angle lines are zero). Whitespace-separated
numbers, at least 2 per line; lines may differ in length. Extension: ``#`` comments and blank lines are
allowed anywhere (the official reader accepts neither), so presets can describe themselves.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import TrajectoryError
from ..official import OrbitKeyframes
from . import MAX_KEYFRAMES, data_lines, to_floats

LINE_NAMES = ("pitch (x_up, degrees)", "yaw (y_left, degrees)", "displacement (r)")
MAX_ORBIT_VALUE = 1e6
"""Largest keyframe magnitude accepted (degrees or depth units), far beyond any real path; larger values
overflow the float32 pose arithmetic of the official formula into infinite poses."""


def parse_orbit(text: str, path: str | Path | None, *, scale: float = 1.0, rotation_only: bool = False,
                meta: dict | None = None) -> OrbitKeyframes:
    """Parse 3-line orbit text into :class:`OrbitKeyframes`; errors name the file and the line.

    Data lines after the third are ignored, as by the official reader; their line numbers are kept in
    ``meta["ignored_lines"]`` so ``trajectory check`` can warn about them.
    """
    lines = data_lines(text)
    if not lines:
        raise TrajectoryError("empty trajectory: expected 3 lines of keyframes (pitch, yaw, displacement)", path, 1)
    if len(lines) < 3:
        raise TrajectoryError(f"only {len(lines)} line(s) of keyframes; expected 3 (pitch, yaw, displacement)",
                              path, lines[-1][0])
    keys = []
    for (number, tokens), name in zip(lines[:3], LINE_NAMES):
        if len(tokens) > MAX_KEYFRAMES:
            raise TrajectoryError(f"{len(tokens)} keyframes on the {name} line; at most {MAX_KEYFRAMES} are supported",
                                  path, number)
        values = to_floats(tokens, path, number)
        if max(abs(v) for v in values) > MAX_ORBIT_VALUE:
            raise TrajectoryError(f"a keyframe of the {name} line is beyond +-{MAX_ORBIT_VALUE:g} (the official "
                                  "float32 arithmetic would overflow)", path, number)
        if len(values) < 2:
            raise TrajectoryError(f"the {name} line has a single keyframe; give at least 2 (e.g. '{tokens[0]} "
                                  f"{tokens[0]}' for a constant)", path, number)
        keys.append(values)
    info = {"format": "orbit", "path": None if path is None else str(path),
            "ignored_lines": [number for number, _ in lines[3:]], **(meta or {})}
    return OrbitKeyframes(*keys, info, scale=scale, rotation_only=rotation_only,
                          lines=tuple(number for number, _ in lines[:3]))
