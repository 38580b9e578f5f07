"""The condition videos a render can save (``--save-condition``): what the generator is conditioned on,
as videos, for inspection; written by ``preview`` and ``rerender``."""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path

import torch

from ..video import VideoWriter
from ..warp import mask_to_video


class ConditionWriter:
    """Writes the generator's condition as videos in ``folder``, at ``rate``: ``warped.mp4`` (H.264 CRF 18,
    like the official render video) and ``mask.mp4`` (x264 qp 0, so it decodes back to the exact binary
    mask). A context manager; both files appear only when it exits normally."""

    def __init__(self, folder: str | Path, rate: Fraction | float):
        self.folder = Path(folder)
        self.rate = rate
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "ConditionWriter":
        self.folder.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            self.warped = stack.enter_context(VideoWriter(self.folder / "warped.mp4", self.rate))
            self.mask = stack.enter_context(VideoWriter(self.folder / "mask.mp4", self.rate, lossless=True))
            self._stack = stack.pop_all()
        return self

    def write(self, warped: torch.Tensor, mask: torch.Tensor) -> None:
        """Append frames: ``warped`` (n, 3, H, W) in [-1, 1], ``mask`` (n, 1, H, W) in {0, 1}."""
        self.warped.write(warped)
        self.mask.write(mask_to_video(mask).numpy())

    def __exit__(self, *exc) -> bool:
        return self._stack.__exit__(*exc)
