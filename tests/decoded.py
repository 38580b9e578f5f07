"""A whole video decoded into memory, for tests that compare frames (the library itself streams them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inspatio_cli.errors import VideoError
from inspatio_cli.video import VideoInfo, iter_frames, probe


@dataclass
class Video:
    """Decoded frames of one video: ``frames`` is uint8 ``(T, H, W, 3)`` RGB (display orientation),
    ``timestamps`` the presentation time of each frame in seconds from the first frame."""

    frames: np.ndarray
    fps: float
    timestamps: np.ndarray
    info: VideoInfo
    skipped_frames: int = 0

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


def read_video(path: str | Path, *, start_frame: int = 0, max_frames: int | None = None,
               start_time: float | None = None, end_time: float | None = None,
               skip_bad_frames: bool = False) -> Video:
    """Decode a video (or a part of it) into memory. See :func:`inspatio_cli.video.iter_frames` for the
    options; ``skipped_frames`` counts the frames ``skip_bad_frames`` replaced. :class:`VideoError` when the
    range holds no frame."""
    info = probe(path)
    stats: dict = {}
    stamps, frames = [], []
    for t, image in iter_frames(path, start_frame=start_frame, max_frames=max_frames, start_time=start_time,
                                end_time=end_time, skip_bad_frames=skip_bad_frames, stats=stats):
        stamps.append(t)
        frames.append(image)
    if not frames:
        raise VideoError("no frames in the requested range", path)
    return Video(frames=np.stack(frames), fps=info.fps, timestamps=np.asarray(stamps, dtype=np.float64),
                 info=info, skipped_frames=int(stats.get("skipped", 0)))
