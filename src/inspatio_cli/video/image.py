"""Still images as a source: a photo read upright (EXIF orientation applied) and seen as a video of one frame.

:func:`probe` and :func:`~inspatio_cli.video.iter_frames` hand an image (:data:`IMAGE_SUFFIXES`) to this
module, so every stage that reads a source (depth, scene, warp, caption) takes an image unchanged: its
:class:`~inspatio_cli.video.VideoInfo` has ``kind="image"``, one frame, no audio, and the frame rate the
output will have (:data:`DEFAULT_IMAGE_FPS`, or ``--fps`` through :func:`~inspatio_cli.video.with_fps`).
How many output frames show that one frame is the render's choice (the trajectory's length or ``--frames``:
see :func:`inspatio_cli.scene.source_camera`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..choices import DEFAULT_IMAGE_FPS, DEFAULT_IMAGE_FRAMES, IMAGE_SUFFIXES
from ..errors import VideoError
from .container import check_file

IMAGE_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr")
"""Pillow modes of 8 bits per channel, converted to RGB (alpha dropped); other modes (16-bit, float) are
refused rather than silently truncated to 8 bits."""


def is_image(path: str | Path) -> bool:
    """Whether ``path`` names a still image (by its suffix, case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | Path) -> np.ndarray:
    """The image at ``path`` as uint8 ``(H, W, 3)`` RGB, upright (its EXIF orientation applied, as viewers do).

    Raises :class:`VideoError` for a missing, empty or unreadable (corrupt, not an image) file, an image of
    an unsupported mode (16-bit or float samples) and an image smaller than 2x2 pixels.
    """
    check_file(path)
    try:
        with Image.open(path) as image:
            image.load()
            upright = ImageOps.exif_transpose(image)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise VideoError(f"not a readable image ({' '.join(str(exc).split()) or type(exc).__name__})", path) from None
    if upright.mode not in IMAGE_MODES:
        raise VideoError(f"unsupported image mode {upright.mode!r} (use 8-bit RGB, RGBA or grey)", path)
    if min(upright.size) < 2:
        raise VideoError(f"the image is {upright.size[0]}x{upright.size[1]} pixels; it needs at least 2x2", path)
    return np.asarray(upright.convert("RGB"), dtype=np.uint8).copy()


__all__ = ["DEFAULT_IMAGE_FPS", "DEFAULT_IMAGE_FRAMES", "IMAGE_MODES", "IMAGE_SUFFIXES", "is_image", "read_image"]
