"""One object for every option that says how a trajectory is read and applied, so ``preview``,
``rerender``, ``batch`` and ``trajectory`` share identical flags (see ``cli.trajectory.camera_options``).
Light to import (the command line builds it first): the parsing code is imported by its methods."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..choices import MODEL_SIZE
from ..errors import UsageError
from .timecontrol import TimeControl

if TYPE_CHECKING:
    from ..depth.result import DepthResult
    from .source import PoseSequence, TrajectorySource
    from .trajectory import Trajectory


@dataclass(frozen=True)
class CameraOptions:
    """How to read a trajectory (``fmt``, ``convention``, ``direction``, ``scale``, ``anchor``,
    ``rotation_only``, ``resample``: see :func:`load_trajectory`), how to compose it with the source
    cameras (``relative_to_source``: see :func:`render_cameras`), the time edits (``time``) and the
    cameras file whose coordinate system the path is written in (``align_to``: see :mod:`.align`)."""

    fmt: str | None = None
    convention: str | None = None
    direction: str | None = None
    scale: float = 1.0
    anchor: str | None = None
    rotation_only: bool = False
    resample: bool = False
    relative_to_source: bool = False
    time: TimeControl = field(default_factory=TimeControl)
    align_to: str | None = None

    def load(self, source: str | Path) -> TrajectorySource:
        """Parse ``source`` (a file or a preset name) with these options."""
        from .loader import load_trajectory

        parsed = load_trajectory(source, fmt=self.fmt, convention=self.convention, direction=self.direction,
                                 scale=self.scale, anchor=self.anchor, rotation_only=self.rotation_only,
                                 resample=self.resample)
        if self.align_to is not None:
            from .align import check_alignable

            check_alignable(parsed, anchor=self.anchor, relative_to_source=self.relative_to_source)
        return parsed

    def load_cameras(self, num_frames: int) -> PoseSequence:
        """The ``align_to`` cameras of the ``num_frames`` source frames, read with the path's convention,
        direction and scale (both are in that coordinate system); :class:`TrajectoryError` for a bad file,
        keyframes or another pose count (:func:`.align.check_cameras`)."""
        from .align import check_cameras
        from .loader import load_trajectory

        return check_cameras(load_trajectory(self.align_to, convention=self.convention, direction=self.direction,
                                             scale=self.scale, anchor="world"), num_frames)

    def resolve(self, source: str | Path, num_source_frames: int, *, fps: float | None = None,
                size: tuple[int, int] = MODEL_SIZE) -> Trajectory:
        """Parse ``source`` and resolve it for a video of ``num_source_frames`` frames."""
        return self.load(source).resolve(num_source_frames, self.time, fps=fps, size=size)

    def align(self, trajectory: Trajectory, depth: DepthResult | None) -> Trajectory:
        """``trajectory`` (resolved from a file read with these options) mapped into ``depth``'s frame by the
        ``align_to`` fit, its figures in ``meta["alignment"]`` (:mod:`.align`); unchanged without
        ``align_to`` or when it is aligned already. :class:`UsageError` when ``align_to`` is set but there is
        no depth to fit onto."""
        if self.align_to is None or "alignment" in trajectory.meta:
            return trajectory
        if depth is None:
            raise UsageError("--align-to fits the cameras onto the scene's source cameras: pass --depth FILE")
        from .align import align_trajectory, fit_alignment, scene_median_depth

        fit = fit_alignment(self.load_cameras(depth.num_frames), depth.c2w, scene_median_depth(depth))
        return align_trajectory(trajectory, fit, depth.c2w, self.rotation_only)

    def describe(self) -> dict:
        """The settings as JSON-friendly values, for run reports (the ``align_to`` file is an input: a
        render plan records it with its fingerprint)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("time", "align_to")}
        out["time"] = self.time.describe()
        return out
