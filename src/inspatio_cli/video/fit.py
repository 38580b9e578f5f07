"""Fitting source frames to the model canvas (:class:`Fit`: stretch, crop or pad) and back to uint8 bytes
(:func:`to_uint8`): the two conversions between the I/O edge (uint8 ``(T, H, W, 3)`` RGB) and the pipeline
(float ``(T, 3, H, W)`` in ``[-1, 1]``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..choices import FIT_MODES, MODEL_SIZE, check_canvas
from ..errors import UsageError

PAD_VALUE = -1.0
"""Letterbox value for ``pad`` in model range [-1, 1] (black)."""


@dataclass(frozen=True)
class Fit:
    """How source frames of size ``src_hw`` map onto the model canvas ``dst_hw``.

    The source crop ``crop = (top, left, height, width)`` is resized to ``content_hw`` and placed at
    ``offset = (top, left)`` on the canvas (non-zero only for ``pad``).
    """

    mode: str
    src_hw: tuple[int, int]
    dst_hw: tuple[int, int]
    crop: tuple[int, int, int, int]
    content_hw: tuple[int, int]
    offset: tuple[int, int]

    @classmethod
    def make(cls, src_hw: tuple[int, int], dst_hw: tuple[int, int] = MODEL_SIZE, mode: str = "stretch") -> "Fit":
        """Plan the fit of ``src_hw`` frames onto ``dst_hw`` with ``mode`` (stretch|crop|pad)."""
        if mode not in FIT_MODES:
            raise UsageError(f"unknown fit mode {mode!r} (choose stretch, crop or pad)")
        sh, sw = map(int, src_hw)
        dh, dw = map(int, dst_hw)
        check_canvas(dh, dw)
        if min(sh, sw) <= 0:
            raise UsageError(f"invalid sizes for fitting: {sh}x{sw} -> {dh}x{dw}")
        crop, content, offset = (0, 0, sh, sw), (dh, dw), (0, 0)
        if mode == "crop":
            if sw * dh > dw * sh:
                cw = max(1, round(sh * dw / dh))
                crop = (0, (sw - cw) // 2, sh, cw)
            else:
                ch = max(1, round(sw * dh / dw))
                crop = ((sh - ch) // 2, 0, ch, sw)
        elif mode == "pad":
            scale = min(dh / sh, dw / sw)
            content = (min(dh, max(1, round(sh * scale))), min(dw, max(1, round(sw * scale))))
            offset = ((dh - content[0]) // 2, (dw - content[1]) // 2)
        return cls(mode, (sh, sw), (dh, dw), crop, content, offset)

    def pixel_transform(self) -> torch.Tensor:
        """3x3 float64 matrix mapping source pixel coordinates to model pixel coordinates.

        Uses the official convention (coordinates scale about the image corner, no half-pixel shift),
        so for ``stretch`` it equals scaling K's rows by ``W/w`` and ``H/h`` as the official code does.
        Intrinsics follow as ``K_model = pixel_transform() @ K_source``.
        """
        top, left, ch, cw = self.crop
        sy, sx = self.content_hw[0] / ch, self.content_hw[1] / cw
        oy, ox = self.offset
        return torch.tensor([[sx, 0.0, ox - left * sx], [0.0, sy, oy - top * sy], [0.0, 0.0, 1.0]],
                            dtype=torch.float64)

    def frames(self, frames_u8: torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 ``(T, H, W, 3)`` -> float32 ``(T, 3, H', W')`` in [-1, 1] on the model canvas.

        ``x = u8/255``, bilinear+antialias resize (align_corners=False), then ``(x-0.5)/0.5``: bit-exact
        with the official source-video preprocessing for ``stretch``.
        """
        x = torch.as_tensor(frames_u8)
        if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
            raise ValueError(f"expected uint8 (T,H,W,3) frames, got {tuple(x.shape)} {x.dtype}")
        if tuple(x.shape[1:3]) != self.src_hw:
            raise ValueError(f"frames are {tuple(x.shape[1:3])}, the fit was planned for {self.src_hw}")
        top, left, ch, cw = self.crop
        x = x[:, top:top + ch, left:left + cw].permute(0, 3, 1, 2).float() / 255.0
        if (ch, cw) != self.content_hw:
            x = F.interpolate(x, size=self.content_hw, mode="bilinear", align_corners=False, antialias=True)
        x = (x - 0.5) / 0.5
        return self._place(x, PAD_VALUE)

    def maps(self, maps: torch.Tensor, fill: float) -> torch.Tensor:
        """Per-pixel maps ``(T, H, W)`` (depth, confidence) -> ``(T, H', W')`` with nearest resampling
        (as the official depth resize); letterbox area filled with ``fill``."""
        top, left, ch, cw = self.crop
        x = maps[:, None, top:top + ch, left:left + cw]
        if (ch, cw) != self.content_hw:
            x = F.interpolate(x, size=self.content_hw, mode="nearest")
        return self._place(x, fill)[:, 0]

    def _place(self, x: torch.Tensor, fill: float) -> torch.Tensor:
        if self.content_hw == self.dst_hw:
            return x.contiguous()
        canvas = x.new_full((x.shape[0], x.shape[1], *self.dst_hw), fill)
        oy, ox = self.offset
        canvas[:, :, oy:oy + self.content_hw[0], ox:ox + self.content_hw[1]] = x
        return canvas


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """float ``(T, 3, H, W)`` in [-1, 1] -> uint8 ``(T, H, W, 3)``, truncating like the official writer
    (``uint8(clip((x+1)*127.5, 0, 255))``). Computed in float32 on the frames' device (the same numbers on
    any device), so only the bytes cross to the host."""
    x = ((frames.detach().float() + 1.0) * 127.5).clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().cpu().numpy()
