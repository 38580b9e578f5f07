"""Writing: H.264 (libx264) at the source's exact frame rate, through :class:`~inspatio_cli.files.AtomicFile`,
encoded on a background thread, with optional audio passthrough."""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator

import av
import numpy as np
import torch

from ..choices import check_video_output
from ..errors import InputError, RuntimeFailure, UsageError, VideoError
from ..files import AtomicFile
from .audio import AudioPassthrough
from .container import ffmpeg_reason
from .fit import to_uint8
from .threads import EncodeThread

ENCODE_QUEUE = 2
"""Frame batches (one ``write`` call each, a generator chunk in rerender) waiting for the encode thread."""


def as_rate(fps: float | Fraction | int) -> Fraction:
    """A frame rate as an exact fraction (29.97 -> 30000/1001, 23.976 -> 24000/1001)."""
    if isinstance(fps, Fraction):
        rate = fps
    else:
        value = float(fps)
        if not math.isfinite(value) or value <= 0:
            raise UsageError(f"invalid frame rate {fps!r}")
        rate = Fraction(value).limit_denominator(1001)
        for ntsc in (24000, 30000, 60000):
            if abs(value - ntsc / 1001) < 5e-3:
                rate = Fraction(ntsc, 1001)
    if rate <= 0:
        raise UsageError(f"invalid frame rate {fps!r}")
    return rate


class VideoWriter:
    """Streaming H.264 writer with atomic output and optional audio passthrough.

    Use as a context manager; ``write(frames)`` accepts uint8 ``(T, H, W, 3)`` / ``(H, W, 3)`` or float
    ``(T, 3, H, W)`` in [-1, 1]. The file appears under ``path`` only when the block exits normally.

    ``audio_from``: a media file whose first audio stream is copied (or re-encoded to AAC when the
    container cannot hold its codec), starting at ``audio_start`` seconds and trimmed to the number of
    frames written; audio that cannot be kept is left out (or ends early) with a warning passed to
    ``warn`` (default: the ``inspatio_cli`` logger), never failing the video (:mod:`.audio`).
    ``lossless``: x264 with qp 0 (yuv444p), for masks and debugging.
    Odd frame sizes cannot use 4:2:0, so they are written as yuv444p.

    ``background`` (default): ``write`` copies the frames' bytes into a numpy array of their own and
    queues it (at most :data:`ENCODE_QUEUE` batches wait, plus one being encoded); a thread encodes and
    muxes them, so the caller goes on computing.
    The frames, their order, timestamps and the encoder settings are those of a foreground writer (x264's
    threads make its bits vary slightly from run to run either way). An encoding error (a full disk, say)
    is raised by the next ``write`` or at the end of the block; ``frames_written`` counts frames accepted.
    """

    def __init__(self, path: str | Path, fps: float | Fraction, *, crf: int = 18, preset: str = "medium",
                 audio_from: str | Path | None = None, audio_start: float = 0.0, lossless: bool = False,
                 background: bool = True, warn: Callable[[str], None] | None = None):
        self.path = Path(path)
        self.rate = as_rate(fps)
        if not 0 <= crf <= 51:
            raise UsageError(f"CRF must be within 0..51, got {crf}")
        self.crf, self.preset, self.lossless = crf, preset, lossless
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.audio_start = float(audio_start)
        self.background = background
        self.warn = warn if warn is not None else logging.getLogger(__name__).warning
        self.frames_written = 0
        self._encoded = 0
        self._audio: AudioPassthrough | None = None
        self._target: AtomicFile | None = None
        self._container = None
        self._stream = None
        self._encoder: EncodeThread | None = None

    def __enter__(self) -> "VideoWriter":
        check_video_output(self.path)
        self._target = AtomicFile(self.path)
        try:
            self._container = av.open(str(self._target.tmp), mode="w", format=_format_for(self.path))
        except av.error.FFmpegError as exc:
            raise InputError(f"cannot write the output here ({ffmpeg_reason(exc)})", self.path) from None
        return self

    def _open_stream(self, height: int, width: int) -> None:
        stream = self._container.add_stream("libx264", rate=self.rate)
        stream.width, stream.height = width, height
        odd = height % 2 or width % 2
        stream.pix_fmt = "yuv444p" if (self.lossless or odd) else "yuv420p"
        options = {"preset": self.preset}
        options.update({"qp": "0"} if self.lossless else {"crf": str(self.crf)})
        stream.options = options
        stream.codec_context.time_base = 1 / self.rate
        self._stream = stream
        if self.audio_from is not None:
            self._audio = AudioPassthrough(self._container, self.audio_from, self.audio_start, self.warn)
        if self.background:
            self._encoder = EncodeThread(self._encode, ENCODE_QUEUE)

    def write(self, frames: torch.Tensor | np.ndarray) -> None:
        """Append frames (see class doc for accepted layouts)."""
        if isinstance(frames, torch.Tensor) and frames.is_floating_point():
            array = to_uint8(frames if frames.ndim == 4 else frames[None])
        else:
            array = np.asarray(frames.cpu() if isinstance(frames, torch.Tensor) else frames)
            if array.ndim == 3:
                array = array[None]
        if self.background:  # the queued frames are the thread's own: no caller buffer, no torch storage
            array = array.copy()
        if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3:
            raise ValueError(f"expected uint8 (T,H,W,3) frames, got {array.shape} {array.dtype}")
        if self._stream is None:
            self._open_stream(array.shape[1], array.shape[2])
        elif (array.shape[1], array.shape[2]) != (self._stream.height, self._stream.width):
            raise ValueError("all frames of one video must have the same size")
        if self._encoder is not None:
            self._encoder.put(array)
        else:
            self._encode(array)
        self.frames_written += len(array)

    def _encode(self, array: np.ndarray, stop: threading.Event | None = None) -> None:
        """Encode and mux uint8 frames (T, H, W, 3) in order (on the encode thread when ``background``);
        returns early once ``stop`` is set."""
        with self._refused():
            for image in array:
                if stop is not None and stop.is_set():
                    return
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                frame.pts = self._encoded
                frame.time_base = self._stream.codec_context.time_base
                for packet in self._stream.encode(frame):
                    self._container.mux(packet)
                self._encoded += 1

    @contextlib.contextmanager
    def _refused(self) -> Iterator[None]:
        """The system refusing the file (the container opens it at the first packet): no such folder, no
        permission, disk full or file size limit, as a one-line :class:`RuntimeFailure` naming the output."""
        try:
            yield
        except av.error.FFmpegError as exc:
            if not isinstance(exc, OSError):
                raise
            raise RuntimeFailure(f"cannot write the video ({ffmpeg_reason(exc)})", self.path) from None

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._finish()
        except BaseException:
            self._abort()
            raise
        if exc_type is not None:
            self._abort()
            return
        self._target.commit()

    def _finish(self) -> None:
        if self._stream is None:
            raise VideoError("no frames were written", self.path)
        if self._encoder is not None:
            encoder, self._encoder = self._encoder, None
            encoder.finish()
        with self._refused():
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            if self._audio is not None:
                self._audio.mux(self._container, self.frames_written / float(self.rate))
                self._audio.close()
            self._container.close()

    def _abort(self) -> None:
        if self._encoder is not None:
            self._encoder.stop()
        with contextlib.suppress(Exception):
            if self._audio is not None:
                self._audio.close()
            self._container.close()
        self._target.discard()


def write_video(path: str | Path, frames: Iterable[torch.Tensor | np.ndarray], fps: float | Fraction,
                **options) -> int:
    """Write frames (an array or an iterable of frame batches) to ``path``; returns the frame count."""
    with VideoWriter(path, fps, **options) as writer:
        if isinstance(frames, (np.ndarray, torch.Tensor)):
            writer.write(frames)
        else:
            for batch in frames:
                writer.write(batch)
        return writer.frames_written


def _format_for(path: Path) -> str | None:
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}.get(path.suffix.lower())
