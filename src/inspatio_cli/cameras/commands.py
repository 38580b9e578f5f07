"""The Python API behind ``inspatio trajectory show`` and ``convert`` (``check`` is
:func:`~inspatio_cli.cameras.lint.check_trajectory`): load, resolve for a video length, then plot or export."""

from __future__ import annotations

from pathlib import Path

from ..choices import MODEL_SIZE
from ..depth.result import DepthResult
from ..progress import Reporter
from .align import report_alignment
from .loader import export_losses, write_trajectory
from .options import CameraOptions
from .plot import plot_trajectory
from .source import frame_count, in_scene_units
from .trajectory import Trajectory

SHOW_DEFAULT_FRAMES = 121


def resolve_for(source: str | Path, options: CameraOptions, *, num_frames: int | None = None,
                depth: DepthResult | None = None, fps: float | None = None,
                default_frames: int | None = None) -> Trajectory:
    """Parse ``source`` and resolve it for ``num_frames`` source frames (or the depth file's count, the
    file's own pose count, or ``default_frames``), at the depth file's image size and in its units
    (:func:`in_scene_units`) when given (without it a moves path stays in median depths), aligned onto the
    depth's cameras with ``options.align_to`` (:meth:`CameraOptions.align`)."""
    parsed = options.load(source)
    n = frame_count(parsed, num_frames, None if depth is None else depth.num_frames, default_frames)
    if depth is None:
        return options.align(parsed.resolve(n, options.time, fps=fps, size=MODEL_SIZE), depth)
    return options.align(in_scene_units(parsed.resolve(n, options.time, fps=fps, size=depth.size), depth), depth)


def show_trajectory(source: str | Path, out: str | Path, *, options: CameraOptions | None = None,
                    num_frames: int | None = None, depth: DepthResult | None = None, fps: float | None = None) -> Path:
    """Plot ``source`` resolved for the video (default 121 frames) to the PNG ``out``."""
    options = options or CameraOptions()
    traj = resolve_for(source, options, num_frames=num_frames, depth=depth, fps=fps, default_frames=SHOW_DEFAULT_FRAMES)
    return plot_trajectory(traj, out, depth=depth, relative_to_source=options.relative_to_source)


def convert_trajectory(source: str | Path, out: str | Path, to: str, *, options: CameraOptions | None = None,
                       num_frames: int | None = None, depth: DepthResult | None = None, fps: float | None = None,
                       reporter: Reporter | None = None) -> Trajectory:
    """Write the resolved per-frame cameras of ``source`` to ``out`` as ``to`` (see
    :func:`write_trajectory`); keyframe trajectories need ``num_frames`` or ``depth``. The depth
    file's first K gives the nerfstudio field of view when the trajectory has no intrinsics. Warns (on
    ``reporter``) when the format cannot keep the trajectory's intrinsics (:func:`export_losses`); logs an
    ``align_to`` fit and warns when it is doubtful."""
    options = options or CameraOptions()
    traj = resolve_for(source, options, num_frames=num_frames, depth=depth, fps=fps)
    write_trajectory(traj, out, to, fallback_K=None if depth is None else depth.K[0].double().numpy(),
                     fps=fps or 24.0)
    lost = export_losses(traj, to, out)
    if reporter is not None:
        report_alignment(traj, reporter)
        if lost:
            reporter.warn(lost)
    return traj
