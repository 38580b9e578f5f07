"""Audio passthrough: the source's first audio stream carried into the written video, trimmed to the video's
duration. Never a reason for a render to fail: the stream is copied when the output container takes it as it
is, else re-encoded to AAC (at the source's channel layout and rate when the encoder takes them, else stereo at
the nearest AAC rate), else left out with a warning; an error while copying ends the audio there, with a warning.
"""

from __future__ import annotations

import contextlib
import io
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np

from .container import ffmpeg_reason

COPY_CODECS = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}
"""Audio codecs copied as they are when the output container's header takes them (checked on a scratch
container first); anything else is re-encoded to AAC."""
NAMED_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
"""The usual layout of a channel count, given to audio whose channels carry no positions (PCM in Matroska
reads as "2 channels"), so that the AAC encoder and a stereo downmix know which channel is which."""


class AudioPassthrough:
    """The first audio stream of ``source``, added to ``out`` before any packet is written (the header must
    list every stream) and carried once the video length is known. ``warn`` receives a one-line warning when
    the audio cannot be kept (then nothing is added) or stops early. A source without audio adds nothing."""

    def __init__(self, out: av.container.OutputContainer, source: Path, start: float,
                 warn: Callable[[str], None]):
        self.src = av.open(str(source))
        self.start = start
        self.warn = warn
        self.path = Path(source)
        self.aout = None
        self.ain = self.src.streams.audio[0] if self.src.streams.audio else None
        if self.ain is None:
            return
        ctx = self.ain.codec_context
        codec = ctx.codec.canonical_name
        fmt = out.format.name.split(",")[0]
        self.copy = codec in COPY_CODECS and _header_takes(fmt, lambda c: c.add_stream_from_template(self.ain))
        if self.copy:
            self.aout = out.add_stream_from_template(self.ain)
            return
        setting = _aac_setting(fmt, ctx.channels, ctx.layout.name if ctx.layout else "", ctx.sample_rate)
        if setting is None:
            warn(f"{source}: the audio ({codec}, {ctx.channels} channels, {ctx.sample_rate} Hz) can be neither "
                 "copied nor re-encoded to AAC; the output has no audio")
            self.ain = None
            return
        layout, rate = setting
        self.aout = out.add_stream("aac", rate=rate)
        self.aout.layout = layout

    def mux(self, out: av.container.OutputContainer, duration: float) -> None:
        """Write the audio in ``[start, start + duration)`` seconds (packet granularity when copying). An
        FFmpeg error other than a system one (a full disk, which fails the video) ends the audio there with
        a warning."""
        if self.ain is None:
            return
        try:
            if self.copy:
                self._copy(out, duration)
            else:
                self._encode(out, duration)
        except av.error.FFmpegError as exc:
            if isinstance(exc, OSError):
                raise
            self.warn(f"{self.path}: the audio stops early: {ffmpeg_reason(exc)}")

    def _origin(self) -> tuple[float, float]:
        """The source audio's time base and its first timestamp, both in seconds."""
        tb = float(self.ain.time_base)
        return tb, self.ain.start_time * tb if self.ain.start_time is not None else 0.0

    def _copy(self, out: av.container.OutputContainer, duration: float) -> None:
        tb, origin = self._origin()
        end = self.start + duration
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

    def _encode(self, out: av.container.OutputContainer, duration: float) -> None:
        _, origin = self._origin()
        end = self.start + duration
        sent = 0  # samples given to the encoder: numbered from 0, the audio starts with the video
        for frame in self.src.decode(self.ain):
            t = frame.time - origin if frame.time is not None else 0.0
            if t < self.start - 1e-9:
                continue
            if t >= end - 1e-9:
                break
            frame = _positioned(frame)
            frame.pts, frame.time_base = sent, Fraction(1, frame.sample_rate)
            sent += frame.samples
            for packet in self.aout.encode(frame):
                out.mux(packet)
        for packet in self.aout.encode(None):
            out.mux(packet)

    def close(self) -> None:
        """Close the source file."""
        self.src.close()


def _header_takes(fmt: str, add: Callable[[av.container.OutputContainer], object]) -> bool:
    """Whether a ``fmt`` container writes its header with the stream ``add`` puts in it (for an encoder, this
    opens it): tried on a scratch container in memory, so that the real output never lists a stream it
    cannot write."""
    with contextlib.suppress(av.error.FFmpegError, ValueError, TypeError):
        with av.open(io.BytesIO(), "w", format=fmt) as scratch:
            add(scratch)
            scratch.start_encoding()
            return True
    return False


def _aac_setting(fmt: str, channels: int, layout: str, rate: int) -> tuple[str, int] | None:
    """``(layout, rate)`` for the AAC encoder in a ``fmt`` container: the source's layout (named when its
    channels carry no positions) and rate when the encoder opens with them, else stereo at the nearest AAC
    rate; None when neither opens."""
    rates = av.Codec("aac", "w").audio_rates or (48000,)
    nearest = min(rates, key=lambda r: abs(r - (rate or 48000)))
    named = layout if layout and not layout.endswith("channels") else NAMED_LAYOUTS.get(channels)
    for option in dict.fromkeys([(named, nearest), ("stereo", nearest)]):
        if option[0] is not None and _header_takes(fmt, lambda c, o=option: _add_aac(c, *o)):
            return option
    return None


def _add_aac(out: av.container.OutputContainer, layout: str, rate: int) -> None:
    stream = out.add_stream("aac", rate=rate)
    stream.layout = layout


def _positioned(frame: av.AudioFrame) -> av.AudioFrame:
    """``frame`` with the usual layout of its channel count (:data:`NAMED_LAYOUTS`) when its channels carry
    no positions, so the encoder's resampler can mix it; otherwise ``frame`` itself."""
    if not frame.layout.name.endswith("channels") or len(frame.layout.channels) not in NAMED_LAYOUTS:
        return frame
    named = av.AudioFrame.from_ndarray(np.ascontiguousarray(frame.to_ndarray()), format=frame.format.name,
                                       layout=NAMED_LAYOUTS[len(frame.layout.channels)])
    named.sample_rate = frame.sample_rate
    return named
