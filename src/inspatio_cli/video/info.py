"""Probing: the facts of a source (:class:`VideoInfo`): a video file read without decoding it, or a still
image as a one-frame source (:mod:`.image`); the frame rate given to an image; the message for a cut-off file."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..errors import UsageError, VideoError
from .container import Timeline, ffmpeg_reason, frame_rate, is_frame, open_source, rotation_of, video_stream
from .image import DEFAULT_IMAGE_FPS, is_image, read_image


MIN_FPS = 0.001
"""The lowest ``--fps`` of an image's video (a frame every 1000 s): exact rates keep denominators up to 1001."""


@dataclass(frozen=True)
class VideoInfo:
    """Facts about a source. ``width``/``height`` are display sizes (after rotation); ``kind``: ``video``, or
    ``image`` for a still image (one frame, no audio, ``fps`` the rate of the video made from it)."""

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
    kind: str = "video"
    timestamps: bool = True
    """False for a stream whose frames carry no timestamps (a raw H.264/HEVC stream): its frames are taken one
    after another at ``fps``, the rate the stream declares (25 when it declares none)."""

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


def probe(path: str | Path) -> VideoInfo:
    """Read a source's facts. A video: demuxes every video packet (no full decode) to count frames exactly
    and to detect variable frame rate, and decodes the first frame to validate the stream and read rotation.
    A stream without timestamps (a raw H.264/HEVC elementary stream, or packets that lack them) is taken at
    the rate it declares (25 fps when it declares none), one frame after another: its ``duration`` is
    ``frame_count / fps`` and it is never variable-rate. Codecs are named by the codec (``av1``), not by the
    decoder FFmpeg picked (``libdav1d``). A still image (:func:`~.image.is_image`): :func:`probe_image`.

    Raises :class:`VideoError` for a missing, empty, non-video or undecodable file.
    """
    if is_image(path):
        return probe_image(path)
    with contextlib.closing(open_source(path)) as container:
        stream = video_stream(container, path)
        ctx = stream.codec_context
        rate = frame_rate(stream)
        timeline = Timeline(container, stream)
        pts: list[int] = []
        n = 0
        stored = 0  # packets with data, shown or not: what an mp4's index counts
        try:
            for packet in map(timeline.mend, container.demux(stream)):
                stored += bool(packet.size)
                if is_frame(packet):
                    n += 1
                    if packet.pts is not None:
                        pts.append(packet.pts)
        except av.error.FFmpegError as exc:
            raise VideoError(f"cannot read packets ({ffmpeg_reason(exc)})", path) from None
        if not n:
            raise VideoError("video stream has no frames", path)
        audio = container.streams.audio[0] if container.streams.audio else None
        actx = audio.codec_context if audio is not None else None
        indexed = "mp4" in container.format.name.split(",")  # the index of mp4/mov counts every sample exactly
        missing = max(0, int(stream.frames or 0) - stored) if indexed else 0
        with contextlib.closing(open_source(path)) as again:  # from the start without a seek (raw streams, wraps)
            first = _first_frame(again, video_stream(again, path), path)
        rotation = rotation_of(first)
        width, height = (first.height, first.width) if rotation % 180 else (first.width, first.height)
        tb = float(stream.time_base) if stream.time_base else 1.0 / float(rate)
        timed = len(pts) == n
        stamps = np.unique(np.asarray(pts, dtype=np.int64)) if timed else np.zeros(0, np.int64)
        vfr = _is_vfr(stamps, tb, float(rate)) and not missing  # a cut-off file's last packets have no timing
        duration = _duration(stream, stamps, tb, n, float(rate)) if timed else n / float(rate)
        return VideoInfo(
            path=str(path), width=int(width), height=int(height), fps=float(rate), frame_count=n,
            duration=duration, rotation=rotation, codec=codec_name(ctx), pix_fmt=str(ctx.pix_fmt or "unknown"),
            bit_depth=_bit_depth(ctx.pix_fmt), variable_frame_rate=vfr, has_audio=audio is not None,
            audio_codec=codec_name(actx) if actx is not None else None,
            audio_sample_rate=int(actx.sample_rate) if actx is not None and actx.sample_rate else None,
            audio_channels=int(actx.channels) if actx is not None and actx.channels else None,
            fps_fraction=(rate.numerator, rate.denominator), missing_frames=missing, timestamps=bool(pts),
        )


def codec_name(ctx: av.codec.context.CodecContext) -> str:
    """The codec of a stream as FFmpeg names it (``h264``, ``av1``, ``mp3``), not the decoder that reads it
    (``libdav1d``, ``mp3float``)."""
    return ctx.codec.canonical_name or ctx.name


def probe_image(path: str | Path) -> VideoInfo:
    """The facts of the still image at ``path`` as a one-frame source (``kind="image"``) at
    :data:`~.image.DEFAULT_IMAGE_FPS`. Reads the image fully, so a bad file fails here with
    :func:`~.image.read_image`'s errors rather than later."""
    height, width = read_image(path).shape[:2]
    info = VideoInfo(path=str(path), width=int(width), height=int(height), fps=DEFAULT_IMAGE_FPS, frame_count=1,
                     duration=0.0, rotation=0, codec=Path(path).suffix.lower().lstrip("."), pix_fmt="rgb24",
                     bit_depth=8, variable_frame_rate=False, has_audio=False, kind="image")
    return with_fps(info, DEFAULT_IMAGE_FPS)


def with_fps(info: VideoInfo, fps: float | None) -> VideoInfo:
    """``info`` of an image with the output frame rate ``fps`` frames per second (``None``: unchanged).
    A video keeps its own rate: ``fps`` with a video source is a :class:`UsageError`."""
    if fps is None:
        return info
    if info.kind != "image":
        raise UsageError("--fps applies to image sources; a video keeps its own frame rate", info.path)
    if not (math.isfinite(fps) and MIN_FPS <= fps <= 240):
        raise UsageError(f"--fps must be within [{MIN_FPS:g}, 240], got {fps:g}")
    rate = Fraction(fps).limit_denominator(1001)
    return dataclasses.replace(info, fps=float(rate), duration=1.0 / float(rate),
                               fps_fraction=(rate.numerator, rate.denominator))


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


def _bit_depth(pix_fmt: str | None) -> int:
    if not pix_fmt:
        return 8
    for depth in (16, 14, 12, 10, 9):
        if f"p{depth}" in pix_fmt or pix_fmt.endswith(f"{depth}le") or pix_fmt.endswith(f"{depth}be"):
            return depth
    return 8


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
        raise VideoError(f"cannot decode video ({ffmpeg_reason(exc)})", path) from None
    raise VideoError("no decodable video frame", path)


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
