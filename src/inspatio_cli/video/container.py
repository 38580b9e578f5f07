"""Source containers (PyAV), shared by probing and decoding: opening a file with one clear error (the file
checks are shared with still images), its video stream, which packets are frames, the display rotation of a
frame, and FFmpeg's error text."""

from __future__ import annotations

import errno
import stat
from fractions import Fraction
from pathlib import Path

import av

from ..errors import VideoError


def check_file(path: str | Path) -> Path:
    """``path`` when it is a non-empty file; :class:`VideoError` for a missing, folder, empty or unreachable
    one (a symbolic link loop, no permission to look), from one ``stat`` of it."""
    p = Path(path)
    try:
        found = p.stat()
    except OSError as exc:
        problem = {errno.ENOENT: "no such file", errno.ELOOP: "symbolic link loop (too many levels of symbolic "
                   "links)", errno.ENOTDIR: "no such file (a part of the path is not a folder)"}
        raise VideoError(problem.get(exc.errno) or ffmpeg_reason(exc), p) from None
    except ValueError as exc:  # a NUL byte in the name
        raise VideoError(f"invalid file name ({exc})", p) from None
    if stat.S_ISDIR(found.st_mode):
        raise VideoError("is a directory, not a video file", p)
    if found.st_size == 0:
        raise VideoError("file is empty", p)
    return p


def open_source(path: str | Path) -> av.container.InputContainer:
    """``path`` opened for reading; :class:`VideoError` for a missing, folder, empty or unreadable file."""
    p = check_file(path)
    try:
        return av.open(str(p), mode="r")
    except av.error.FFmpegError as exc:
        raise VideoError(f"not a readable video ({ffmpeg_reason(exc)})", p) from None


def ffmpeg_reason(exc: Exception) -> str:
    """FFmpeg's error text on one line, for the messages that name the file."""
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


def video_stream(container: av.container.InputContainer, path: str | Path) -> av.video.stream.VideoStream:
    """The first video stream that has a decoder; :class:`VideoError` naming what the file holds instead."""
    streams = [s for s in container.streams.video if s.codec_context is not None]
    if not streams:
        kinds = sorted({s.type for s in container.streams}) or ["nothing"]
        raise VideoError(f"has no video stream (contains {', '.join(kinds)})", path)
    return streams[0]


def is_frame(packet: av.Packet) -> bool:
    """Whether a demuxed packet is a frame of the video: it has data and is not discarded. Its timestamp
    may be missing (raw H.264/HEVC streams have none; some files lack it on their first packets). Probing
    counts these and decoding expects one frame from each, so both agree on the frame count."""
    return bool(packet.size) and not packet.is_discard


def frame_rate(stream: av.video.stream.VideoStream) -> Fraction:
    """The stream's frame rate: the average, else FFmpeg's guess, else the base rate, else 25 fps (what a raw
    stream without timing information is taken at)."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate and rate > 0 else Fraction(25, 1)


TS_DISCONT = 0x0200
"""FFmpeg's ``AVFMT_TS_DISCONT``: the container format lets timestamps jump (MPEG-TS)."""


class Timeline:
    """Mends one video stream's timestamps where a format that allows it (:data:`TS_DISCONT`) lets them jump
    back, as in MPEG-TS files joined end to end: a packet whose decoding timestamp is not after the previous
    one's starts a new part, shifted (with every packet after it) to follow one frame interval later. Probing
    and decoding pass every packet through :meth:`mend`, so both see the same timestamps."""

    def __init__(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream):
        self.active = bool(container.format.flags & TS_DISCONT) and stream.time_base is not None
        self.step = max(1, round(1 / (frame_rate(stream) * stream.time_base))) if self.active else 1
        self.offset = 0
        self.last: int | None = None

    def mend(self, packet: av.Packet) -> av.Packet:
        """``packet`` with its timestamps shifted onto the mended timeline (in place)."""
        if not self.active or packet.dts is None:
            return packet
        dts = packet.dts + self.offset
        if self.last is not None and dts <= self.last:
            self.offset += self.last + self.step - dts
            dts = self.last + self.step
        packet.dts = dts
        if packet.pts is not None:
            packet.pts += self.offset
        self.last = dts
        return packet


def rotation_of(frame: av.VideoFrame) -> int:
    """Counter-clockwise display rotation in degrees, normalised to 0/90/180/270."""
    try:
        angle = frame.rotation or 0
    except Exception:  # noqa: BLE001 - malformed side data: treat as unrotated
        angle = 0
    return int(round(angle / 90.0)) % 4 * 90
