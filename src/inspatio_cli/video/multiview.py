"""Several still images of one scene ("views", ``--views``) as one source, and the source helpers that take
a path (video or image) or views alike.

InSpatio-World v1.5 renders a scene from 4 photos (REFERENCE-v1.5.md R0 #1, R5, R6): one joint depth
estimate over the views, every view warped into each target camera and merged. Here :class:`Views` is that
source: its :meth:`~Views.info` is a :class:`~inspatio_cli.video.VideoInfo` of ``kind="views"`` with one
frame per view (so the depth stage estimates the views as it estimates the frames of a clip) and the output
frame rate (:data:`~inspatio_cli.video.DEFAULT_IMAGE_FPS` or ``--fps``). :func:`open_views` checks every
input error before any work: a file that is not a still image (a video), an unreadable or too small image,
views of different sizes, fewer than :data:`MIN_VIEWS` or more than :data:`MAX_VIEWS` views.

:func:`source_info`, :func:`source_frames`, :func:`source_fingerprint` and :func:`source_files` serve the
stages that read a source, whatever its kind.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..errors import InputError, VideoError
from ..files import fingerprint_file
from .decode import iter_frames
from .image import is_image, read_image
from .info import VideoInfo, probe, probe_image, with_fps

MIN_VIEWS = 3
"""Fewest views: the reference choice takes 3 distinct views per chunk (:func:`inspatio_cli.views.select_chunk_top3`);
one photo is an image source."""
MAX_VIEWS = 4
"""Most views: the v1.5 release is trained and validated on 4 (REFERENCE-v1.5.md R1)."""


@dataclass(frozen=True)
class Views:
    """The still images of one scene, in view order (view 0 sets the world frame and the target intrinsics).
    ``paths``: the image files; ``fps``: the output frame rate (``None``: the image default). Build it with
    :func:`open_views`, which checks the files."""

    paths: tuple[Path, ...]
    fps: float | None = None

    @property
    def path(self) -> str:
        """The first view's file: the name messages and the depth cache use for the whole set."""
        return str(self.paths[0])

    def __str__(self) -> str:
        return f"{self.paths[0]} (+{len(self.paths) - 1} views)"

    def info(self) -> VideoInfo:
        """The source facts: the first view's image facts with ``kind="views"``, one frame per view."""
        first = with_fps(probe_image(self.paths[0]), self.fps)
        return dataclasses.replace(first, kind="views", frame_count=len(self.paths))

    def frames(self) -> Iterator[tuple[float, np.ndarray]]:
        """``(0.0, image)`` per view in order, each uint8 ``(H, W, 3)`` RGB upright (as :func:`iter_frames`)."""
        for path in self.paths:
            yield 0.0, read_image(path)

    def read(self) -> np.ndarray:
        """Every view, uint8 ``(V, H, W, 3)`` RGB."""
        return np.stack([image for _, image in self.frames()])

    def fingerprint(self) -> str:
        """16 hex digits of the views' contents in order (:func:`~inspatio_cli.files.fingerprint_file`)."""
        digest = hashlib.sha256(";".join(fingerprint_file(p) for p in self.paths).encode())
        return digest.hexdigest()[:16]


def open_views(items: Sequence[str | Path], fps: float | None = None) -> Views:
    """The views named by ``items``: image files in view order, or one folder (its png/jpg/webp files
    sorted by name); ``fps``: the output frame rate (default :data:`~inspatio_cli.video.DEFAULT_IMAGE_FPS`).

    Raises :class:`VideoError` for a file that is not a still image (a video: pass it as the source
    itself), is missing or unreadable, or is smaller than 2x2, and for views of different sizes;
    :class:`InputError` for fewer than :data:`MIN_VIEWS` or more than :data:`MAX_VIEWS` views; the
    ``fps`` errors of :func:`~inspatio_cli.video.with_fps`.
    """
    paths = [Path(item) for item in items]
    if len(paths) == 1 and paths[0].is_dir():
        folder = paths[0]
        paths = sorted((p for p in folder.iterdir() if p.is_file() and is_image(p)), key=lambda p: p.name)
        if not paths:
            raise InputError("the --views folder holds no image (png, jpg, webp)", folder)
    for path in paths:
        if not is_image(path):
            raise VideoError("not a still image: --views takes png, jpg or webp photos (a video is passed as the "
                             "source itself, without --views)", path)
    if not MIN_VIEWS <= len(paths) <= MAX_VIEWS:
        raise InputError(f"{len(paths)} views given; the model takes {MIN_VIEWS} to {MAX_VIEWS} (one photo is "
                         "an image source, without --views)", paths[0] if paths else None)
    first = read_image(paths[0]).shape
    for path in paths[1:]:
        shape = read_image(path).shape
        if shape != first:
            raise VideoError(f"the view is {shape[1]}x{shape[0]} but {paths[0].name} is {first[1]}x{first[0]}; "
                             "all views must have one size", path)
    views = Views(tuple(paths), fps)
    views.info()  # checks fps
    return views


def source_info(source: str | Path | Views, fps: float | None = None) -> VideoInfo:
    """The facts of a video, an image (with ``fps``, :func:`~inspatio_cli.video.with_fps`) or views (their
    own ``fps``; ``fps`` given here replaces it)."""
    if isinstance(source, Views):
        return (source if fps is None else dataclasses.replace(source, fps=fps)).info()
    return with_fps(probe(source), fps)


def source_frames(source: str | Path | Views, *, skip_bad_frames: bool = False,
                  stats: dict | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """The frames of a source in order, as :func:`~inspatio_cli.video.iter_frames` yields them (views: each
    view once)."""
    if isinstance(source, Views):
        return source.frames()
    return iter_frames(source, skip_bad_frames=skip_bad_frames, stats=stats)


def source_fingerprint(source: str | Path | Views) -> str:
    """The content fingerprint of a source (:func:`~inspatio_cli.files.fingerprint_file`; views:
    :meth:`Views.fingerprint`)."""
    return source.fingerprint() if isinstance(source, Views) else fingerprint_file(source)


def source_files(source: str | Path | Views) -> list[Path]:
    """The files a source is read from (outputs may replace none of them)."""
    return list(source.paths) if isinstance(source, Views) else [Path(source)]
