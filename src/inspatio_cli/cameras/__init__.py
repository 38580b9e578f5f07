"""Cameras and trajectories: SE(3) helpers and conventions, the trajectory file formats, time control,
the resolved per-frame :class:`Trajectory`, and the exact official render-path cameras.

Typical use::

    source = load_trajectory("orbit_left")                     # a file or a preset name
    traj = source.resolve(num_frames, TimeControl(freezes=(Freeze(40, 12),)))
    cams = render_cameras(traj, depth.c2w, depth.K[0], width=832, height=480)
    for chunk in traj.chunks(): ...
"""

from ..lazy import lazy_exports

_EXPORTS = {
    "Issue": "lint", "LintReport": "lint", "check_trajectory": "lint",
    "export_text": "loader", "list_presets": "loader", "load_trajectory": "loader", "preset_dir": "loader",
    "write_trajectory": "loader",
    "OrbitKeyframes": "official", "orbit_poses": "official", "recenter_K": "official",
    "CameraOptions": "options",
    "RenderCameras": "render", "render_cameras": "render",
    "PoseSequence": "source", "TrajectorySource": "source", "in_scene_units": "source",
    "Freeze": "timecontrol", "Reverse": "timecontrol", "Slow": "timecontrol", "TimeControl": "timecontrol",
    "bounce_indices": "timecontrol", "official_adaptive_indices": "timecontrol",
    "Chunk": "trajectory", "ChunkPlan": "trajectory", "Trajectory": "trajectory", "chunk_plan": "trajectory",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
