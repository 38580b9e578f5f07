"""A render made chunk by chunk with cameras chosen as it goes: :class:`RenderSession`.

:meth:`Rerenderer.session <.rerender.Rerenderer.session>` prepares everything once (plan, scene and depth,
prompt embedding, models, noise seed) and returns a session; each :meth:`RenderSession.step` then takes the
next chunk's cameras and returns its output frames::

    with renderer.session("room.mp4", prompt="a room") as session:   # live: no trajectory
        while not session.finished:
            n = session.chunk_frames(session.index)                  # 9 for the first chunk, then 12
            frames = session.step(my_cameras(n))                     # (n, H, W, 3) uint8

The session steps the same chunk loop as :meth:`Rerenderer.render <.rerender.Rerenderer.render>`
(:class:`~.stream.ChunkStepper`), so a session given a trajectory and stepped with its cameras
(:meth:`RenderSession.planned_cameras`, or ``step()`` without cameras) makes the render's frames bit for bit.
How the soft z-buffer maximum is chosen with and without a trajectory: :mod:`.stream`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..cameras import PoseSequence, TrajectorySource
from ..errors import out_of_memory
from ..meter import StageMeter
from ..models.dit import CausalWanDiT
from ..models.streaming import StreamingAutoencoder
from ..scene import Scene
from ..video import to_uint8
from .plan import RenderPlan
from .stream import ChunkStepper


def live_source() -> TrajectorySource:
    """The placeholder trajectory of a live session: the camera stays on the source's first camera at
    every output frame, and fits any length (the source's, or an image's ``frames``)."""
    still = np.repeat(np.eye(4)[None], 2, axis=0)
    return PoseSequence(still, {"source": "live session", "format": "live"}, resample=True)


@dataclass
class Prepared:
    """What a render or a session has before its first chunk (see ``Rerenderer._prepare``): the plan, the
    local weight files, the scene, the prompt record and embedding ``(1, 512, text_dim)``, the models."""

    plan: RenderPlan
    paths: dict[str, Path]
    scene: Scene
    prompt: dict[str, Any]
    embedding: torch.Tensor
    generator: CausalWanDiT
    autoencoder: StreamingAutoencoder


class RenderSession:
    """One render made chunk by chunk (see the module docstring); a context manager (:meth:`close`).

    ``frames``: the output length; ``fps``, ``size`` (H, W): the output's rate and canvas; ``chunks``: how
    many steps make it; ``index``: the next chunk; ``prompt``: the prompt record (text, source, caption);
    ``live``: no trajectory was given (every step needs its cameras); ``meter``: seconds per stage.
    """

    def __init__(self, stepper: ChunkStepper, scene: Scene, prompt: dict[str, Any], meter: StageMeter, *,
                 live: bool):
        self._stepper, self.scene, self.prompt, self.meter, self.live = stepper, scene, prompt, meter, live

    @property
    def frames(self) -> int:
        return self._stepper.total

    @property
    def fps(self) -> float:
        return float(self.scene.video.rate)

    @property
    def size(self) -> tuple[int, int]:
        return self.scene.size

    @property
    def chunks(self) -> int:
        return self._stepper.chunks

    @property
    def index(self) -> int:
        return self._stepper.index

    @property
    def finished(self) -> bool:
        """Whether every output frame has been made."""
        return self.index >= self.chunks

    @property
    def lost_frames(self) -> int:
        """Source frames that did not decode so far (``skip_bad_frames``)."""
        return self._stepper.lost_frames

    def chunk_frames(self, index: int) -> int:
        """Output frames chunk ``index`` makes (the cameras its step takes): 9 for the first chunk, 12 for
        the others, fewer for the last; 0 past the end."""
        return self._stepper.chunk_frames(index)

    def planned_cameras(self, index: int) -> torch.Tensor:
        """The trajectory's cameras of chunk ``index``'s output frames, ``(n, 4, 4)`` float64 c2w (for a live
        session: the source's first camera, or the cameras given so far)."""
        frames = self._stepper.plan[index]
        return self._stepper.scene.trajectory.rel_c2w[frames.start:frames.start + self.chunk_frames(index)].clone()

    def source_frames(self, index: int) -> torch.Tensor:
        """The source frame each output frame of chunk ``index`` shows, ``(n,)`` int64 (the time map)."""
        frames = self._stepper.plan[index]
        return self._stepper.scene.trajectory.time_map[frames.start:frames.start + self.chunk_frames(index)].clone()

    def step(self, cameras: torch.Tensor | np.ndarray | None = None) -> np.ndarray:
        """Make the next chunk and return its output frames, ``(n, H, W, 3)`` uint8 RGB with
        ``n = chunk_frames(index)`` (the levels a render writes to its video, :func:`~inspatio_cli.video.to_uint8`).

        ``cameras``: the chunk's target cameras, ``(n, 4, 4)`` c2w in the scene's world (OpenCV axes, relative
        to the source's first camera, translations in depth units: as a resolved
        :class:`~inspatio_cli.cameras.Trajectory`'s ``rel_c2w``), composed with the source cameras as the
        session's camera options say (``relative_to_source``); ``None`` (sessions with a trajectory only):
        the trajectory's. Raises :class:`UsageError` once the source is exhausted (:attr:`finished`), for
        cameras of the wrong shape, non-finite or not rigid, and :class:`RuntimeFailure` when out of memory.
        """
        device = self._stepper.device
        try:
            frames = self._stepper.step(cameras)
        except (RuntimeError, MemoryError) as exc:
            failure = out_of_memory(exc, f"generating on {device}")
            if failure is None:
                raise
            raise failure from None
        return to_uint8(frames)

    def close(self) -> None:
        """Stop decoding the source (the models stay with the renderer)."""
        self._stepper.close()

    def __enter__(self) -> "RenderSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
