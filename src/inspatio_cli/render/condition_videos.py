"""The condition videos a render can save (``--save-condition``): what the generator is conditioned on,
as videos, for inspection; written by ``preview`` and ``rerender``."""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import torch

from ..errors import InspatioError
from ..files import AtomicFile
from ..video import VideoWriter
from ..warp import mask_to_video

CONDITION_FILES = ("warped.mp4", "mask.mp4")
"""The files ``--save-condition DIR`` writes in ``DIR``."""


def condition_outputs(folder: Path) -> list[tuple[Path, str]]:
    """The condition files of ``folder`` as planned outputs (path, what it is), for the collision checks of
    :class:`~inspatio_cli.files.OutputClaims`."""
    return [(folder / name, f"the condition video {name}") for name in CONDITION_FILES]


class ConditionWriter:
    """Writes the generator's condition as videos in ``folder``, at ``rate``: ``warped.mp4`` (H.264 CRF 18,
    like the official render video) and ``mask.mp4`` (x264 qp 0, so it decodes back to the exact binary
    mask). A context manager: both videos are written under temporary names, finished by :meth:`finish`
    (or on a normal exit) and renamed together only when the block exits normally, so a render's other
    output can be completed in between (enter this writer first); on any failure, a full disk included,
    neither file appears and no temporary is left."""

    def __init__(self, folder: str | Path, rate: Fraction | float):
        self.folder = Path(folder)
        self.rate = rate
        self._stack = contextlib.ExitStack()
        self._targets: list[AtomicFile] = []

    def __enter__(self) -> "ConditionWriter":
        self._targets = [AtomicFile(path) for path, _ in condition_outputs(self.folder)]
        warped, mask = self._targets
        with contextlib.ExitStack() as stack:
            self.warped = stack.enter_context(VideoWriter(warped.tmp, self.rate))
            self.mask = stack.enter_context(VideoWriter(mask.tmp, self.rate, lossless=True))
            self._stack = stack.pop_all()
        return self

    def write(self, warped: torch.Tensor, mask: torch.Tensor) -> None:
        """Append frames: ``warped`` (n, 3, H, W) in [-1, 1], ``mask`` (n, 1, H, W) in {0, 1}."""
        with self._final_names():
            self.warped.write(warped)
            self.mask.write(mask_to_video(mask).numpy())

    def finish(self) -> None:
        """Complete both videos under their temporary names."""
        with self._final_names():
            self._stack.close()

    @contextlib.contextmanager
    def _final_names(self) -> Iterator[None]:
        """Errors of the writers name the file the user asked for, not its temporary name."""
        try:
            yield
        except InspatioError as exc:
            for target in self._targets:
                if exc.path == str(target.tmp):
                    exc.path = str(target.final)
            raise

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.finish()
                for target in self._targets:
                    target.commit()
            else:
                self._stack.__exit__(exc_type, exc, tb)
        finally:
            for target in self._targets:  # what was not committed: nothing left under any name
                target.discard()
