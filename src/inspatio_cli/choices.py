"""The named choices and defaults that the API validates and the command line offers.

They live here, in a module that imports nothing heavy, so the ``inspatio`` command can build its options,
print help and reject bad input without loading PyTorch; each stage module re-exports the ones it owns.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .errors import UsageError
from .files import real_path

MODEL_SIZE = (480, 832)
"""The generator's training resolution (H, W)."""
SIZE_MULTIPLE = 16
"""Canvas sides must be multiples of 16: 8x autoencoder compression times the DiT's 2x2 patches."""
FIT_MODES = ("stretch", "crop", "pad")
"""How frames fit the model canvas (:class:`inspatio_cli.video.Fit`)."""
DECODERS = ("wan", "tae")
"""Autoencoders of the rerender: the Wan2.1 VAE or TAEHV."""
DTYPE_NAMES = ("bf16", "fp16", "fp32")
"""Precisions a model can be cast to."""
LAYOUTS = ("side", "warped", "mask", "grid")
"""Preview layouts."""
COVERAGE_THRESHOLD = 0.5
"""Default coverage below which a preview frame is reported: the generator must invent more than half of it."""
DEFAULT_NAME = "{video}__{trajectory}"
"""Default output name of batch jobs; ``__{seed}`` is added when the jobs use more than one seed, ``.mp4``
when the pattern gives no video suffix."""
FORMATS = ("orbit", "matrices", "tcw", "npy", "keyframes", "re10k", "nerfstudio", "colmap", "moves")
"""Trajectory file formats."""
EXPORTS = ("tcw", "c2w", "npy", "json", "nerfstudio")
"""Formats ``inspatio trajectory convert`` writes."""
SCENE_FORMATS = ("v15", "v15-community", "npz", "colmap")
"""Scene formats ``inspatio scene import`` reads and ``inspatio scene export`` writes (:mod:`.interchange`)."""
CONVENTIONS = ("opencv", "opengl", "blender", "unreal")
"""Camera axis conventions of pose files."""
EXTEND_MODES = ("none", "pingpong", "loop", "hold", "official")
"""How short clips are lengthened (:class:`inspatio_cli.cameras.TimeControl`)."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
"""Source file names read as still images rather than videos (:mod:`inspatio_cli.video.image`)."""
DEFAULT_IMAGE_FPS = 15.0
"""Frame rate of a video made from an image (as the official v1.5 examples), unless ``--fps`` says otherwise."""
DEFAULT_IMAGE_FRAMES = 45
"""Output frames made from an image with a trajectory that fits any length (3-line orbit, keyframes),
unless ``--frames`` says otherwise: 3 seconds at 15 fps, exactly 4 generator chunks (nothing padded)."""


VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")
"""Output video names: containers that hold the H.264 stream every command writes."""


def check_video_output(output: str | Path, source: str | Path | None = None) -> Path:
    """``output`` as a Path when it can name a video we write; :class:`UsageError` for a folder, another
    suffix (.avi, .webm, .gif... cannot hold our H.264 stream, or are not videos), or the ``source`` video
    itself. Cheap: commands call it before any work."""
    path = Path(output)
    if os.path.isdir(path):  # never raises (Path.is_dir does in a folder without permission)
        raise UsageError(f"the output is a folder; give a video file name ({', '.join(VIDEO_SUFFIXES)})", path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UsageError(f"the output must be a video file named {', '.join(VIDEO_SUFFIXES)}", path)
    if source is not None and real_path(path) == real_path(source):
        raise UsageError("the output would overwrite the source video", path)
    return path


MAX_OUTPUT_FRAMES = 1_000_000
"""Most output frames one render may have (``--frames``, ``--min-frames``, time edits): about 18 hours at 15 fps.
More is a typo; it is refused before any work rather than running out of memory or time hours in."""
MAX_CANVAS_SIDE = 4096
"""Longest canvas side in pixels (``--size``): 8.5 times the model's 480. A larger canvas is refused before any
work: one frame of it would not fit in memory (the model was trained at 480x832)."""


def check_canvas(h: int, w: int, option: str = "--size") -> None:
    """:class:`UsageError` naming ``option`` unless the canvas ``h`` x ``w`` pixels is positive and no side
    passes :data:`MAX_CANVAS_SIDE`."""
    if h <= 0 or w <= 0 or max(h, w) > MAX_CANVAS_SIDE:
        raise UsageError(f"{option} {h}x{w}: height and width must be within 1..{MAX_CANVAS_SIDE} pixels "
                         f"(the model was trained at {MODEL_SIZE[0]}x{MODEL_SIZE[1]})")


def check_size(size: Sequence[int] | None) -> tuple[int, int]:
    """The canvas (H, W), default the model size 480x832; :class:`UsageError` unless both sides are
    positive multiples of 16 of at most :data:`MAX_CANVAS_SIDE`."""
    h, w = MODEL_SIZE if size is None else (int(size[0]), int(size[1]))
    check_canvas(h, w)
    if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
        raise UsageError(f"--size {h}x{w}: height and width must be positive multiples of {SIZE_MULTIPLE} "
                         f"(the model was trained at {MODEL_SIZE[0]}x{MODEL_SIZE[1]})")
    return h, w


def check_frames(frames: int | None, option: str = "--frames") -> int | None:
    """``frames`` (None: not given) when it is a count of output frames within 1..:data:`MAX_OUTPUT_FRAMES`;
    :class:`UsageError` naming ``option`` otherwise."""
    if frames is not None and not 1 <= frames <= MAX_OUTPUT_FRAMES:
        raise UsageError(f"{option} {frames}: the output must have 1..{MAX_OUTPUT_FRAMES} frames")
    return frames
