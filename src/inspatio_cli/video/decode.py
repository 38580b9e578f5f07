"""Decoding: frames streamed in presentation order, in display orientation, at their own timestamps, with
the accounting of frames that do not decode (strict by default, replaced under ``--skip-bad-frames``); a
still image is a source of one frame."""

from __future__ import annotations

import contextlib
import heapq
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from ..errors import VideoError
from .container import ffmpeg_reason, is_frame, open_source, rotation_of, video_stream
from .image import is_image, read_image


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
        origin: float | None = None
        index = -1
        emitted = 0
        rotation = None
        frames = _decode_frames(container, stream, path, skip_bad_frames, stats)
        for frame, pts in frames:
            index += 1
            if pts != frame.pts and tb:  # a replaced frame, shown at its own time
                t = pts * tb
            else:
                t = frame.time if frame.time is not None else (
                    frame.pts * tb if (frame.pts is not None and tb) else float(index) / float(stream.average_rate or 25))
            if origin is None:
                origin = t
                rotation = rotation_of(frame)
            t -= origin
            if index < start_frame or (start_time is not None and t < start_time - 1e-9):
                continue
            if end_time is not None and t >= end_time - 1e-9:
                break
            image = frame.to_ndarray(format="rgb24")
            if rotation:
                image = np.ascontiguousarray(np.rot90(image, k=rotation // 90))
            yield t, image
            emitted += 1
            if max_frames is not None and emitted >= max_frames:
                break
        if emitted == 0 and index < 0:
            raise VideoError("no decodable video frame", path)


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
    try:
        for packet in container.demux(stream):
            if is_frame(packet):
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
