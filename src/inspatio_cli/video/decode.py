"""Decoding: frames streamed in presentation order, in display orientation, at their own timestamps, with
the accounting of frames that do not decode (strict by default, replaced under ``--skip-bad-frames``); a
still image is a source of one frame."""

from __future__ import annotations

import contextlib
import heapq
import logging
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from ..errors import VideoError
from .container import Timeline, ffmpeg_reason, frame_rate, is_frame, open_source, rotation_of, video_stream
from .image import is_image, read_image

log = logging.getLogger(__name__)


def iter_frames(path: str | Path, *, start_frame: int = 0, max_frames: int | None = None,
                start_time: float | None = None, end_time: float | None = None,
                skip_bad_frames: bool = False, stats: dict | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(timestamp_seconds, frame)`` with frame uint8 ``(H, W, 3)`` RGB in display orientation.

    Frames are selected by index (``start_frame``, ``max_frames``) and/or by time (``start_time``,
    ``end_time``, seconds from the first frame, end exclusive). Decoding streams: memory does not grow
    with the video length. A decoding error raises :class:`VideoError`, unless ``skip_bad_frames``; then
    decoding continues past damaged data, every frame that does not decode is replaced by the previous
    good frame (the first good one at the start) at its own timestamp, so frame indices and times stay
    those :func:`~inspatio_cli.video.probe` counts, and ``stats["skipped"]`` counts the replaced frames so far.
    A still image (:func:`~.image.is_image`) yields its one frame at time 0 (upright, :func:`~.image.read_image`).

    Frames without a timestamp (raw H.264/HEVC streams) follow the previous one by one frame interval at the
    stream's declared rate. A video whose picture size changes mid-stream is decoded at its first frame's
    size (the size :func:`~inspatio_cli.video.probe` reports): later frames of another size are scaled to it,
    stretched as a player shows them in one window, with a warning on the ``inspatio_cli`` logger.
    """
    if max_frames is not None and max_frames <= 0:
        return
    if is_image(path):
        if stats is not None:
            stats["skipped"] = 0
        if start_frame == 0 and (start_time is None or start_time <= 0) and (end_time is None or end_time > 0):
            yield 0.0, read_image(path)
        return
    with contextlib.closing(open_source(path)) as container:
        stream = video_stream(container, path)
        stream.thread_type = "AUTO"
        tb = float(stream.time_base) if stream.time_base else None
        clock = _Clock(1.0 / float(frame_rate(stream)))
        index = -1
        emitted = 0
        rotation = size = None
        resized = False
        frames = _decode_frames(container, stream, path, skip_bad_frames, stats)
        for frame, pts in frames:
            index += 1
            t = clock.time(None if pts is None else (pts * tb if tb else frame.time))
            if size is None:
                rotation, size = rotation_of(frame), (frame.width, frame.height)
            if index < start_frame or (start_time is not None and t < start_time - 1e-9):
                continue
            if end_time is not None and t >= end_time - 1e-9:
                break
            if (frame.width, frame.height) != size:  # scaled to the first size, as a player shows it
                if not resized:
                    log.warning("%s: the picture size changes from %dx%d to %dx%d at frame %d; such frames are "
                                "scaled to %dx%d", path, *size, frame.width, frame.height, index, *size)
                resized = True
                frame = frame.reformat(width=size[0], height=size[1])
            image = frame.to_ndarray(format="rgb24")
            if rotation:
                image = np.ascontiguousarray(np.rot90(image, k=rotation // 90))
            yield t, image
            emitted += 1
            if max_frames is not None and emitted >= max_frames:
                break
        if emitted == 0 and index < 0:
            raise VideoError("no decodable video frame", path)


class _Clock:
    """Frame times in seconds from the first frame: a frame's own timestamp when it has one, else (a raw
    stream, packets without timestamps) one frame interval ``step`` after the previous frame."""

    def __init__(self, step: float):
        self.step = step
        self.origin: float | None = None
        self.last: float | None = None

    def time(self, stamp: float | None) -> float:
        """The time of the next frame, whose own timestamp in seconds is ``stamp`` (None: it has none)."""
        following = 0.0 if self.last is None else self.last + self.step
        if stamp is None:
            self.last = following
        else:
            if self.origin is None:
                self.origin = stamp - following
            self.last = stamp - self.origin
        return self.last


def lost_frames_warning(path: str | Path, lost: int, total: int) -> str:
    """The warning every command prints when ``--skip-bad-frames`` replaced ``lost`` of ``total`` frames."""
    return (f"{path}: {lost} of {total} frames could not be decoded (damaged or cut off) and were replaced by "
            "the previous good frame (--skip-bad-frames)")


def _decode_frames(container, stream, path, skip_bad: bool,
                   stats: dict | None) -> Iterator[tuple[av.VideoFrame, int | None]]:
    """``(frame, pts)`` in presentation order; ``pts`` is the frame's own, except for replaced frames.

    Every frame :func:`~inspatio_cli.video.probe` counts (:func:`~.container.is_frame`) must come out of
    the decoder. When one does not (damaged data, a file cut off at the end), strict decoding raises
    :class:`VideoError`; with ``skip_bad`` the previous good frame is yielded with the lost timestamp
    instead (leading losses wait for the first good frame) and packets that fail to decode are passed over.
    """
    advice = "; use --skip-bad-frames to keep the frames that decode"
    expected: list[int] = []  # min-heap of the timestamps demuxed and not decoded yet
    waiting: list[int] = []  # lost before the first good frame
    last = None
    stats = stats if stats is not None else {}
    stats["skipped"] = 0

    def lost(count: int, where: str) -> None:
        if not skip_bad:
            raise VideoError(f"{count} frame(s) {where} could not be decoded (damaged or cut off){advice}", path)
        stats["skipped"] += count

    for frame in _decode_packets(container, stream, expected, path, skip_bad, advice):
        if frame.pts is None:
            yield frame, None
            continue
        while expected and expected[0] < frame.pts:
            missing = heapq.heappop(expected)
            if last is None:
                waiting.append(missing)
                continue
            lost(1, "in the middle")
            yield last, missing
        if expected and expected[0] == frame.pts:
            heapq.heappop(expected)
        if waiting:
            lost(len(waiting), "at the start")
        for missing in waiting:
            yield frame, missing
        waiting = []
        last = frame
        yield frame, frame.pts
    if expected and last is not None:
        lost(len(expected), "at the end")
        while expected:
            yield last, heapq.heappop(expected)


def _decode_packets(container, stream, expected: list[int], path, lenient: bool,
                    advice: str) -> Iterator[av.VideoFrame]:
    """Decode packet by packet, pushing the timestamp of every counted packet onto the heap ``expected``.
    A decoding error raises :class:`VideoError`; ``lenient`` passes over packets that fail and stops
    quietly where the container itself is damaged."""
    codec = stream.codec_context
    timeline = Timeline(container, stream)
    try:
        for packet in map(timeline.mend, container.demux(stream)):
            if is_frame(packet) and packet.pts is not None:
                heapq.heappush(expected, packet.pts)
            try:
                yield from codec.decode(packet)
            except av.error.FFmpegError:
                if not lenient:
                    raise
        with contextlib.suppress(av.error.EOFError):  # raised by the flush once the decoder has drained
            yield from codec.decode(None)
    except av.error.FFmpegError as exc:
        if not lenient:
            raise VideoError(f"decoding failed ({ffmpeg_reason(exc)}){advice}", path) from None
