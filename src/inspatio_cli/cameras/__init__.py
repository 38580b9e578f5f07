"""Cameras and trajectories: SE(3) helpers and conventions, the trajectory file formats, time control,
the resolved per-frame :class:`Trajectory`, and the exact official render-path cameras.

Typical use::

    source = load_trajectory("orbit_left")                     # a file or a preset name
    traj = source.resolve(num_frames, TimeControl(freezes=(Freeze(40, 12),)))
    cams = render_cameras(traj, depth.c2w, depth.K[0], width=832, height=480)
    for chunk in traj.chunks(): ...
"""

from .lint import Issue, LintReport, check_trajectory
from .loader import EXPORTS, FORMATS, export_text, list_presets, load_trajectory, preset_dir, write_trajectory
from .official import OrbitKeyframes, foreground_depth_min, orbit_poses, recenter_K, reference_target_w2c
from .options import CameraOptions
from .render import RenderCameras, render_cameras
from .source import PoseSequence, TrajectorySource
from .timecontrol import (EXTEND_MODES, Freeze, Reverse, Slow, TimeControl, bounce_indices,
                          official_adaptive_indices)
from .trajectory import Chunk, ChunkPlan, Trajectory, chunk_plan

__all__ = [
    "CameraOptions", "Chunk", "ChunkPlan", "EXPORTS", "EXTEND_MODES", "FORMATS", "Freeze", "Issue", "LintReport",
    "OrbitKeyframes", "PoseSequence", "RenderCameras", "Reverse", "Slow", "TimeControl", "Trajectory",
    "TrajectorySource", "bounce_indices", "check_trajectory", "chunk_plan", "export_text", "foreground_depth_min",
    "list_presets", "load_trajectory", "official_adaptive_indices", "orbit_poses", "preset_dir", "recenter_K",
    "reference_target_w2c", "render_cameras", "write_trajectory",
]
