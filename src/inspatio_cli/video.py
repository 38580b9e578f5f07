"""Video input and output (PyAV): probe, decode, fit to the model size, encode H.264 atomically.

Frames inside the pipeline are float tensors ``(T, 3, H, W)`` in ``[-1, 1]``; uint8 ``(T, H, W, 3)`` RGB
exists only at this I/O edge. Decoding applies the display rotation stored in the file (as players do),
keeps the source fps (average rate and per-frame timestamps), and never resamples in time.

Fitting to the model resolution (default 480 x 832):

* ``stretch`` (the official behaviour): bilinear with antialias to exactly H x W, aspect ratio not kept.
* ``crop``: centre crop to the model aspect ratio, then the same resize.
* ``pad``: resize to fit inside H x W keeping the aspect ratio, then letterbox with black (-1).

Writing is H.264 (libx264, yuv420p, CRF 18 by default) at the source fps, with optional audio passthrough
trimmed to the video's duration, always through :class:`inspatio_cli.files.AtomicFile`. The encoder runs
on a background thread (PyAV releases the GIL while x264 works), so encoding overlaps the next chunk's
compute; :class:`Prefetch` does the same for decoding.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import math
import queue
import threading
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Generic, Iterable, Iterator, Literal, TypeVar

import av
import numpy as np
import torch
import torch.nn.functional as F

from .choices import FIT_MODES, MODEL_SIZE, check_video_output
from .errors import InputError, RuntimeFailure, UsageError, VideoError
from .files import AtomicFile

log = logging.getLogger(__name__)

FitMode = Literal["stretch", "crop", "pad"]
PAD_VALUE = -1.0
"""Letterbox value for ``pad`` in model range [-1, 1] (black)."""

# Audio codecs the MP4 muxer accepts as-is; anything else is re-encoded to AAC.
_MP4_AUDIO_COPY = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}


# --------------------------------------------------------------------------------------------------
# Probing


@dataclass(frozen=True)
class VideoInfo:
    """Facts about a video file. ``width``/``height`` are display sizes (after rotation)."""

    path: str
    width: int
    height: int
    fps: float
    frame_count: int
    duration: float
    rotation: int
    codec: str
    pix_fmt: str
    bit_depth: int
    variable_frame_rate: bool
    has_audio: bool
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    fps_fraction: tuple[int, int] = field(default=(0, 1), repr=False)
    missing_frames: int = 0
    """Frames the container's index lists beyond the end of the file (a cut-off copy of a file whose index
    comes first, e.g. an mp4 written for streaming): they are not in ``frame_count`` and cannot be decoded."""

    def as_dict(self) -> dict:
        """JSON-friendly dict (``fps_fraction`` as ``"num/den"``)."""
        data = asdict(self)
        data["fps_fraction"] = f"{self.fps_fraction[0]}/{self.fps_fraction[1]}"
        data["duration"] = round(self.duration, 6)
        return data

    @property
    def rate(self) -> Fraction:
        """The exact average frame rate."""
        return Fraction(*self.fps_fraction)


def _open(path: str | Path) -> av.container.InputContainer:
    p = Path(path)
    if not p.exists():
        raise VideoError("no such file", p)
    if p.is_dir():
        raise VideoError("is a directory, not a video file", p)
    if p.stat().st_size == 0:
        raise VideoError("file is empty", p)
    try:
        return av.open(str(p), mode="r")
    except av.error.FFmpegError as exc:
        raise VideoError(f"not a readable video ({_ffmpeg_reason(exc)})", p) from None


def _ffmpeg_reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


def _video_stream(container: av.container.InputContainer, path: str | Path) -> av.video.stream.VideoStream:
    streams = [s for s in container.streams.video if s.codec_context is not None]
    if not streams:
        kinds = sorted({s.type for s in container.streams}) or ["nothing"]
        raise VideoError(f"has no video stream (contains {', '.join(kinds)})", path)
    return streams[0]


def _bit_depth(pix_fmt: str | None) -> int:
    if not pix_fmt:
        return 8
    for depth in (16, 14, 12, 10, 9):
        if f"p{depth}" in pix_fmt or pix_fmt.endswith(f"{depth}le") or pix_fmt.endswith(f"{depth}be"):
            return depth
    return 8


def probe(path: str | Path) -> VideoInfo:
    """Read a video's facts. Demuxes every video packet (no full decode) to count frames exactly and to
    detect variable frame rate, and decodes the first frame to validate the stream and read rotation.

    Raises :class:`VideoError` for a missing, empty, non-video or undecodable file.
    """
    with contextlib.closing(_open(path)) as container:
        stream = _video_stream(container, path)
        ctx = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or rate <= 0:
            rate = Fraction(25, 1)
        pts: list[int] = []
        stored = 0  # packets with data, shown or not: what an mp4's index counts
        try:
            for packet in container.demux(stream):
                stored += bool(packet.size)
                if _counts(packet):
                    pts.append(packet.pts)
        except av.error.FFmpegError as exc:
            raise VideoError(f"cannot read packets ({_ffmpeg_reason(exc)})", path) from None
        if not pts:
            raise VideoError("video stream has no frames", path)
        container.seek(0)
        first = _first_frame(container, stream, path)
        rotation = _rotation_of(first)
        width, height = (ctx.height, ctx.width) if rotation % 180 else (ctx.width, ctx.height)
        tb = float(stream.time_base) if stream.time_base else 1.0 / float(rate)
        stamps = np.unique(np.asarray(pts, dtype=np.int64))
        vfr = _is_vfr(stamps, tb, float(rate))
        n = len(pts)
        indexed = "mp4" in container.format.name.split(",")  # the index of mp4/mov counts every sample exactly
        missing = max(0, int(stream.frames or 0) - stored) if indexed else 0
        vfr = vfr and not missing  # the last packets of a cut-off file carry no reliable timing
        duration = _duration(stream, stamps, tb, n, float(rate))
        audio = container.streams.audio[0] if container.streams.audio else None
        actx = audio.codec_context if audio is not None else None
        return VideoInfo(
            path=str(path), width=int(width), height=int(height), fps=float(rate), frame_count=n,
            duration=duration, rotation=rotation, codec=ctx.name, pix_fmt=str(ctx.pix_fmt or "unknown"),
            bit_depth=_bit_depth(ctx.pix_fmt), variable_frame_rate=vfr, has_audio=audio is not None,
            audio_codec=actx.name if actx is not None else None,
            audio_sample_rate=int(actx.sample_rate) if actx is not None and actx.sample_rate else None,
            audio_channels=int(actx.channels) if actx is not None and actx.channels else None,
            fps_fraction=(rate.numerator, rate.denominator), missing_frames=missing,
        )


def cut_off_warning(info: VideoInfo, skip_bad_frames: bool = False) -> str | None:
    """None for a complete video. For a cut-off one (:attr:`VideoInfo.missing_frames`): raises
    :class:`VideoError` saying so, or with ``skip_bad_frames`` returns the warning to give while the
    frames that are there are used."""
    if not info.missing_frames:
        return None
    problem = (f"the file is cut off: its index lists {info.frame_count + info.missing_frames} frames but only the "
               f"first {info.frame_count} are in it")
    if not skip_bad_frames:
        raise VideoError(problem, info.path, hint="use --skip-bad-frames to use the frames that are there")
    return f"{info.path}: {problem}; using those {info.frame_count} frames"


def _first_frame(container, stream, path) -> av.VideoFrame:
    """The first frame that decodes: damaged leading packets are passed over (decoding them fails later,
    with the advice to use ``--skip-bad-frames``)."""
    codec = stream.codec_context
    try:
        for packet in container.demux(stream):
            with contextlib.suppress(av.error.FFmpegError):
                for frame in codec.decode(packet):
                    return frame
        with contextlib.suppress(av.error.FFmpegError):
            for frame in codec.decode(None):
                return frame
    except av.error.FFmpegError as exc:
        raise VideoError(f"cannot decode video ({_ffmpeg_reason(exc)})", path) from None
    raise VideoError("no decodable video frame", path)


def _rotation_of(frame: av.VideoFrame) -> int:
    """Counter-clockwise display rotation in degrees, normalised to 0/90/180/270."""
    try:
        angle = frame.rotation or 0
    except Exception:  # noqa: BLE001 - malformed side data: treat as unrotated
        angle = 0
    return int(round(angle / 90.0)) % 4 * 90


def _is_vfr(stamps: np.ndarray, time_base: float, fps: float) -> bool:
    if len(stamps) < 3:
        return False
    deltas = np.diff(stamps) * time_base
    expected = 1.0 / fps
    return bool(np.max(np.abs(deltas - expected)) > 0.25 * expected)


def _duration(stream, stamps: np.ndarray, time_base: float, n: int, fps: float) -> float:
    if len(stamps) >= 2:
        step = float(np.median(np.diff(stamps))) * time_base
        return float((stamps[-1] - stamps[0]) * time_base + step)
    if stream.duration:
        return float(stream.duration * time_base)
    return n / fps


# --------------------------------------------------------------------------------------------------
# Decoding


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


def iter_frames(path: str | Path, *, start_frame: int = 0, max_frames: int | None = None,
                start_time: float | None = None, end_time: float | None = None,
                skip_bad_frames: bool = False, stats: dict | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(timestamp_seconds, frame)`` with frame uint8 ``(H, W, 3)`` RGB in display orientation.

    Frames are selected by index (``start_frame``, ``max_frames``) and/or by time (``start_time``,
    ``end_time``, seconds from the first frame, end exclusive). Decoding streams: memory does not grow
    with the video length. A decoding error raises :class:`VideoError`, unless ``skip_bad_frames``; then
    decoding continues past damaged data, every frame that does not decode is replaced by the previous
    good frame (the first good one at the start) at its own timestamp, so frame indices and times stay
    those :func:`probe` counts, and ``stats["skipped"]`` counts the replaced frames so far.
    """
    if max_frames is not None and max_frames <= 0:
        return
    with contextlib.closing(_open(path)) as container:
        stream = _video_stream(container, path)
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
                rotation = _rotation_of(frame)
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


def _decode_frames(container, stream, path, skip_bad: bool,
                   stats: dict | None) -> Iterator[tuple[av.VideoFrame, int | None]]:
    """``(frame, pts)`` in presentation order; ``pts`` is the frame's own, except for replaced frames.

    Every frame :func:`probe` counts (a non-empty, non-discarded packet with a timestamp) must come out of
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


def _counts(packet: av.Packet) -> bool:
    """Whether a demuxed packet is a frame of the video (as :func:`probe` counts them)."""
    return bool(packet.size) and packet.pts is not None and not packet.is_discard


def _decode_packets(container, stream, expected: list[int], path, lenient: bool,
                    advice: str) -> Iterator[av.VideoFrame]:
    """Decode packet by packet, pushing the timestamp of every counted packet onto the heap ``expected``.
    A decoding error raises :class:`VideoError`; ``lenient`` passes over packets that fail and stops
    quietly where the container itself is damaged."""
    codec = stream.codec_context
    try:
        for packet in container.demux(stream):
            if _counts(packet):
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
            raise VideoError(f"decoding failed ({_ffmpeg_reason(exc)}){advice}", path) from None


def lost_frames_warning(path: str | Path, lost: int, total: int) -> str:
    """The warning every command prints when ``--skip-bad-frames`` replaced ``lost`` of ``total`` frames."""
    return (f"{path}: {lost} of {total} frames could not be decoded (damaged or cut off) and were replaced by "
            "the previous good frame (--skip-bad-frames)")


def read_video(path: str | Path, *, start_frame: int = 0, max_frames: int | None = None,
               start_time: float | None = None, end_time: float | None = None,
               skip_bad_frames: bool = False) -> Video:
    """Decode a video (or a part of it) into memory. See :func:`iter_frames` for the options."""
    info = probe(path)
    stats: dict = {}
    stamps, frames = [], []
    for t, image in iter_frames(path, start_frame=start_frame, max_frames=max_frames, start_time=start_time,
                                end_time=end_time, skip_bad_frames=skip_bad_frames, stats=stats):
        stamps.append(t)
        frames.append(image)
    if not frames:
        raise VideoError("no frames in the requested range", path)
    if stats.get("skipped"):
        log.warning(lost_frames_warning(path, stats["skipped"], len(frames)))
    return Video(frames=np.stack(frames), fps=info.fps, timestamps=np.asarray(stamps, dtype=np.float64),
                 info=info, skipped_frames=int(stats.get("skipped", 0)))


# --------------------------------------------------------------------------------------------------
# Fitting to the model size


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
        if min(sh, sw, dh, dw) <= 0:
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


# --------------------------------------------------------------------------------------------------
# Background threads

T = TypeVar("T")
_POLL = 0.05
"""Seconds between checks of the stop flag while a queue is full or empty."""


def _put(items: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set first (False then); never blocks for good."""
    while not stop.is_set():
        try:
            items.put(item, timeout=_POLL)
            return True
        except queue.Full:
            continue
    return False


class Prefetch(Generic[T]):
    """Iterates ``make()`` on a background thread, up to ``ahead`` items in advance, in order.

    For decoding: the thread decodes (and fits) the next frames while the caller warps, encodes or
    generates. The iterator is created, run and closed on the thread; an exception it raises is raised
    by ``next`` at its place in the sequence (items before it are delivered first, items after are never
    made). :meth:`close` (also on garbage collection of an unfinished prefetch) stops the thread after
    the item it is making. Memory: at most ``ahead + 1`` items exist at once.
    """

    def __init__(self, make: Callable[[], Iterator[T]], ahead: int, name: str = "inspatio-prefetch"):
        if ahead < 1:
            raise ValueError(f"ahead must be >= 1, got {ahead}")
        self._items: queue.Queue = queue.Queue(ahead)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, args=(make,), name=name, daemon=True)
        self._thread.start()

    def _run(self, make: Callable[[], Iterator[T]]) -> None:
        source = None
        try:
            source = make()
            for item in source:
                if not _put(self._items, (True, item), self._stop):
                    return
            _put(self._items, (False, None), self._stop)
        except BaseException as exc:  # handed to the caller, who sees it where it happened
            _put(self._items, (False, exc), self._stop)
        finally:
            if source is not None and hasattr(source, "close"):
                source.close()

    def __iter__(self) -> "Prefetch[T]":
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        ok, value = self._items.get()
        if ok:
            return value
        self._done = True
        self._thread.join()
        if value is not None:
            raise value
        raise StopIteration

    def close(self) -> None:
        """Stop the thread (it finishes the item in hand and closes its iterator) and wait for it."""
        self._done = True
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def __del__(self) -> None:
        self._stop.set()


# --------------------------------------------------------------------------------------------------
# Encoding


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

    ``audio_from``: a media file whose first audio stream is copied (or re-encoded to AAC when the MP4
    container cannot hold its codec), starting at ``audio_start`` seconds and trimmed to the number of
    frames written. ``lossless``: x264 with qp 0 (yuv444p), for masks and debugging.
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
                 background: bool = True):
        self.path = Path(path)
        self.rate = as_rate(fps)
        if not 0 <= crf <= 51:
            raise UsageError(f"CRF must be within 0..51, got {crf}")
        self.crf, self.preset, self.lossless = crf, preset, lossless
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.audio_start = float(audio_start)
        self.background = background
        self.frames_written = 0
        self._encoded = 0
        self._audio: _AudioPassthrough | None = None
        self._target: AtomicFile | None = None
        self._container = None
        self._stream = None
        self._encoder: _EncodeThread | None = None

    def __enter__(self) -> "VideoWriter":
        check_video_output(self.path)
        self._target = AtomicFile(self.path)
        try:
            self._container = av.open(str(self._target.tmp), mode="w", format=_format_for(self.path))
        except av.error.FFmpegError as exc:
            raise InputError(f"cannot write the output here ({_ffmpeg_reason(exc)})", self.path) from None
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
            self._audio = _AudioPassthrough(self._container, self.audio_from, self.audio_start)
        if self.background:
            self._encoder = _EncodeThread(self._encode)

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
            raise RuntimeFailure(f"cannot write the video ({_ffmpeg_reason(exc)})", self.path) from None

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


ENCODE_QUEUE = 2
"""Frame batches (one ``write`` call each, a generator chunk in rerender) waiting for the encode thread."""


class _EncodeThread:
    """Runs ``encode(batch, stop)`` for every queued batch, in order, on one thread. The first error is
    kept and raised in the caller's thread by the next :meth:`put` or by :meth:`finish`."""

    def __init__(self, encode: Callable[[np.ndarray, threading.Event], None]):
        self._batches: queue.Queue = queue.Queue(ENCODE_QUEUE)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(encode,), name="inspatio-encode", daemon=True)
        self._thread.start()

    def _run(self, encode: Callable[[np.ndarray, threading.Event], None]) -> None:
        while not self._stop.is_set():
            try:
                batch = self._batches.get(timeout=_POLL)
            except queue.Empty:
                continue
            if batch is None:
                return
            try:
                encode(batch, self._stop)
            except BaseException as exc:  # raised again in the caller's thread
                self._error = exc
                self._stop.set()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def put(self, batch: np.ndarray) -> None:
        """Queue a batch (waits while the queue is full); raises an earlier batch's error instead."""
        self._raise()
        _put(self._batches, batch, self._stop)
        self._raise()

    def finish(self) -> None:
        """Encode everything queued, stop the thread, raise its error if any."""
        _put(self._batches, None, self._stop)
        self._thread.join()
        self._raise()

    def stop(self) -> None:
        """Drop what is queued: the thread stops after the frame in hand."""
        self._stop.set()
        self._thread.join()


def _format_for(path: Path) -> str | None:
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}.get(path.suffix.lower())


class _AudioPassthrough:
    """The first audio stream of ``source``, added to ``out`` before any packet is written (the MP4
    header must list every stream) and copied once the video length is known."""

    def __init__(self, out: av.container.OutputContainer, source: Path, start: float):
        self.src = av.open(str(source))
        self.start = start
        self.ain = self.src.streams.audio[0] if self.src.streams.audio else None
        self.copy = self.ain is not None and self.ain.codec_context.name in _MP4_AUDIO_COPY
        self.aout = None
        if self.ain is None:
            return
        if self.copy:
            self.aout = out.add_stream_from_template(self.ain)
        else:
            ctx = self.ain.codec_context
            self.aout = out.add_stream("aac", rate=ctx.sample_rate or 48000)
            self.aout.layout = ctx.layout.name if ctx.layout else "stereo"

    def mux(self, out: av.container.OutputContainer, duration: float) -> None:
        """Write the audio in ``[start, start + duration)`` (packet granularity when copying)."""
        if self.ain is None:
            return
        tb = float(self.ain.time_base)
        origin = self.ain.start_time * tb if self.ain.start_time is not None else 0.0
        end = self.start + duration
        if self.copy:
            shift = int(round((self.start + origin) / tb))
            for packet in self.src.demux(self.ain):
                if packet.pts is None or packet.dts is None:
                    continue
                t = packet.pts * tb - origin
                if t < self.start - 1e-9:
                    continue
                if t >= end - 1e-9:
                    break
                packet.pts -= shift
                packet.dts -= shift
                packet.stream = self.aout
                out.mux(packet)
            return
        for frame in self.src.decode(self.ain):
            t = frame.time - origin if frame.time is not None else 0.0
            if t < self.start - 1e-9:
                continue
            if t >= end - 1e-9:
                break
            frame.pts = None
            for packet in self.aout.encode(frame):
                out.mux(packet)
        for packet in self.aout.encode(None):
            out.mux(packet)

    def close(self) -> None:
        self.src.close()


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
