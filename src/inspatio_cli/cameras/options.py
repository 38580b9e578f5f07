"""One object for every option that says how a trajectory is read and applied, so ``preview``,
``rerender``, ``batch`` and ``trajectory`` share identical flags (see ``cli.trajectory.camera_options``).
Light to import (the command line builds it first): the parsing code is imported by its methods."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..choices import MODEL_SIZE
from .timecontrol import TimeControl

if TYPE_CHECKING:
    from .source import TrajectorySource
    from .trajectory import Trajectory


@dataclass(frozen=True)
class CameraOptions:
    """How to read a trajectory (``fmt``, ``convention``, ``direction``, ``scale``, ``anchor``,
    ``rotation_only``, ``resample``: see :func:`load_trajectory`), how to compose it with the source
    cameras (``relative_to_source``: see :func:`render_cameras`) and the time edits (``time``)."""

    fmt: str | None = None
    convention: str | None = None
    direction: str | None = None
    scale: float = 1.0
    anchor: str | None = None
    rotation_only: bool = False
    resample: bool = False
    relative_to_source: bool = False
    time: TimeControl = field(default_factory=TimeControl)

    def load(self, source: str | Path) -> TrajectorySource:
        """Parse ``source`` (a file or a preset name) with these options."""
        from .loader import load_trajectory

        return load_trajectory(source, fmt=self.fmt, convention=self.convention, direction=self.direction,
                               scale=self.scale, anchor=self.anchor, rotation_only=self.rotation_only,
                               resample=self.resample)

    def resolve(self, source: str | Path, num_source_frames: int, *, fps: float | None = None,
                size: tuple[int, int] = MODEL_SIZE) -> Trajectory:
        """Parse ``source`` and resolve it for a video of ``num_source_frames`` frames."""
        return self.load(source).resolve(num_source_frames, self.time, fps=fps, size=size)

    def describe(self) -> dict:
        """The settings as JSON-friendly values, for run reports."""
        out = {k: v for k, v in asdict(self).items() if k != "time"}
        out["time"] = self.time.describe()
        return out
