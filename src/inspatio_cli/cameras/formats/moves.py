"""The ``moves`` format: a camera path written as moves of the camera, without coordinates.

Inline (``-t "moves:forward:24,turn-left*0.5:12,still:12"``) or in a ``.moves`` file (the same segments,
separated by commas, spaces or new lines; ``#`` starts a comment). Grammar::

    path    := segment ("," segment)*
    segment := move ("+" move)* ":" frames        e.g. forward:24, forward+turn-left:24, still:12
    move    := name ["*" scale]                   e.g. turn-left*0.5, up*2

Names: ``forward``, ``back``, ``left``, ``right``, ``up``, ``down`` (translations along the camera's own
axes), ``turn-left``, ``turn-right`` (yaw), ``look-up``, ``look-down`` (pitch) and ``still``. ``scale``
(a positive number, default 1) multiplies the move's speed; ``+`` runs moves together (``forward+turn-left``
flies an arc); ``frames`` (a whole number >= 1) is the segment's length.

Units: a move of scale 1 goes :data:`MOVE_SPEED` times the scene's median depth per frame (24 frames of
``forward`` cover 12% of the median depth), or turns :data:`TURN_SPEED` degrees per frame (below the
official 0.8 deg/frame). The median depth is that of the first source frame's depth map, so a path suits
near and far scenes alike; until the scene is known, translations are in median depths
(:func:`~inspatio_cli.cameras.source.in_scene_units` converts them when the depth is known).

Moves are relative to the camera: the path starts at the source's first camera and every frame moves the
camera by its segment's step from where it is, so each segment continues from where the last one ended.
Output frame ``k`` shows the camera after ``k`` steps: a segment's whole move is reached at the first
frame of the next segment (the path's last frame is one step short of its end). A moves path has one pose
per frame, like a pose file (``--resample`` stretches it to another length).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ...errors import TrajectoryError
from ...geometry import se3
from ..source import MEDIAN_DEPTH, PoseSequence
from . import MAX_POSES, data_lines

PREFIX = "moves:"
SUFFIX = ".moves"
MOVE_SPEED = 0.005
"""Translation per frame of a scale-1 move, in median depths of the scene."""
TURN_SPEED = 0.5
"""Rotation per frame of a scale-1 turn or look, in degrees."""
MAX_SCALE = 1000.0
"""Largest ``*scale`` accepted (beyond it a move is a typo, and a path would leave any scene)."""

_TRANSLATIONS = {"forward": (0, 0, 1), "back": (0, 0, -1), "right": (1, 0, 0), "left": (-1, 0, 0),
                 "down": (0, 1, 0), "up": (0, -1, 0)}
_TURNS = {"turn-right": (1, 0), "turn-left": (-1, 0), "look-up": (0, 1), "look-down": (0, -1)}
NAMES = (*_TRANSLATIONS, *_TURNS, "still")
"""The move names (OpenCV camera axes: x right, y down, z forward; yaw about y, pitch about x)."""


@dataclass(frozen=True)
class Segment:
    """One segment: its moves ``(name, scale)``, its length ``frames`` and its 1-based ``line`` (files)."""

    moves: tuple[tuple[str, float], ...]
    frames: int
    line: int | None = None

    def step(self) -> np.ndarray:
        """The camera-local pose change of one frame, ``(4, 4)``: translation in median depths, then the
        yaw and pitch (intrinsic, yaw first)."""
        velocity, yaw, pitch = np.zeros(3), 0.0, 0.0
        for name, scale in self.moves:
            if name in _TRANSLATIONS:
                velocity += np.asarray(_TRANSLATIONS[name], dtype=np.float64) * MOVE_SPEED * scale
            elif name in _TURNS:
                yaw += _TURNS[name][0] * TURN_SPEED * scale
                pitch += _TURNS[name][1] * TURN_SPEED * scale
        return se3.make_pose(se3.euler_to_matrix([yaw, pitch, 0.0], "YXZ"), velocity)

    def describe(self) -> str:
        """The segment as written (normalised), e.g. ``forward+turn-left*0.5:24``."""
        moves = "+".join(name if scale == 1 else f"{name}*{scale:g}" for name, scale in self.moves)
        return f"{moves}:{self.frames}"


def is_inline(source: object) -> bool:
    """Whether ``source`` (a ``-t`` value) is an inline moves path (``moves:...``)."""
    return isinstance(source, str) and source.startswith(PREFIX)


def parse_segments(text: str, path: str | Path | None, *, inline: bool) -> list[Segment]:
    """The segments of a moves text (``inline``: the part after ``moves:``, commas only; else a file's
    text with comments); one-line :class:`TrajectoryError` s name the segment (and the file's line)."""
    pieces = ([(None, piece) for piece in text.split(",")] if inline else
              [(number, piece) for number, tokens in data_lines(text)
               for token in tokens for piece in token.split(",") if piece])
    if not pieces or not any(piece.strip() for _, piece in pieces):
        raise TrajectoryError("no moves: expected segments such as forward:24,turn-left*0.5:12", path,
                              None if inline else 1)
    segments = [_segment(piece.strip(), path, line) for line, piece in pieces]
    total = sum(s.frames for s in segments)
    if total > MAX_POSES:
        raise TrajectoryError(f"{total} frames in all; at most {MAX_POSES} are supported", path)
    return segments


def _segment(text: str, path: str | Path | None, line: int | None) -> Segment:
    """One ``move(+move)*:frames`` segment."""
    body, colon, count = text.rpartition(":")
    if not colon or not body:
        raise TrajectoryError(f"segment {text!r}: expected MOVE[+MOVE...]:FRAMES, e.g. forward:24", path, line)
    if not re.fullmatch(r"\d+", count.strip()):
        raise TrajectoryError(f"segment {text!r}: the frame count {count!r} is not a whole number", path, line)
    frames = int(count)
    if frames < 1:
        raise TrajectoryError(f"segment {text!r}: a segment needs at least 1 frame", path, line)
    return Segment(tuple(_move(part.strip(), text, path, line) for part in body.split("+")), frames, line)


def _move(text: str, segment: str, path: str | Path | None, line: int | None) -> tuple[str, float]:
    """One ``name[*scale]`` move of ``segment``."""
    name, star, factor = text.partition("*")
    name = name.strip().lower()
    if name not in NAMES:
        raise TrajectoryError(f"segment {segment!r}: unknown move {name!r} (moves: {', '.join(NAMES)})", path, line)
    if not star:
        return name, 1.0
    try:
        scale = float(factor)
    except ValueError:
        scale = math.nan
    if not (math.isfinite(scale) and 0 < scale <= MAX_SCALE):
        raise TrajectoryError(f"segment {segment!r}: the scale {factor.strip()!r} of {name} is not a number in "
                              f"(0, {MAX_SCALE:g}]", path, line)
    return name, scale


def path_poses(segments: list[Segment]) -> np.ndarray:
    """The path's c2w poses ``(N, 4, 4)`` float64, ``N`` the segments' frames in all, relative to the start
    camera, translations in median depths: pose 0 is the start, pose ``k`` the camera after ``k`` steps."""
    poses = [np.eye(4)[None]]
    for segment in segments:
        poses.append(poses[-1][-1] @ step_powers(segment.step(), segment.frames))
    return np.concatenate(poses)[:-1]


def step_powers(step: np.ndarray, count: int) -> np.ndarray:
    """``step^1 .. step^count`` ``(count, 4, 4)`` of a rigid ``step`` ``(4, 4)``, in closed form (no loop):
    ``step^k = [R^k, sum_{j<k} R^j t]`` with ``R^k`` the rotation by ``k`` times ``R``'s rotation vector."""
    rotvec = Rotation.from_matrix(step[:3, :3]).as_rotvec()
    powers = Rotation.from_rotvec(np.arange(count + 1)[:, None] * rotvec).as_matrix()  # R^0 .. R^count
    out = np.tile(np.eye(4), (count, 1, 1))
    out[:, :3, :3] = powers[1:]
    out[:, :3, 3] = np.cumsum(powers[:-1] @ step[:3, 3], axis=0)
    return out


def parse_moves(text: str, path: str | Path | None, *, inline: bool, scale: float = 1.0,
                rotation_only: bool = False, resample: bool = False, meta: dict | None = None) -> PoseSequence:
    """A moves path (see the module docstring) as a per-frame :class:`PoseSequence` in median depths
    (``meta["translation_unit"]``: :data:`~inspatio_cli.cameras.source.MEDIAN_DEPTH`); ``scale`` multiplies
    the translations, ``rotation_only`` drops them, ``resample`` lets the path stretch to any length."""
    segments = parse_segments(text, path, inline=inline)
    c2w = path_poses(segments)
    c2w[:, :3, 3] *= 0.0 if rotation_only else scale
    info = {**(meta or {}), "format": "moves", "path": None if inline or path is None else str(path),
            "segments": [s.describe() for s in segments], "translation_unit": MEDIAN_DEPTH}
    return PoseSequence(c2w, info, resample=resample)
