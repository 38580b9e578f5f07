"""Audio passthrough: the source's first audio stream copied into the written video (re-encoded to AAC when
the MP4 container cannot hold its codec), trimmed to the video's duration."""

from __future__ import annotations

from pathlib import Path

import av

_MP4_COPY = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}
"""Audio codecs the MP4 muxer accepts as-is; anything else is re-encoded to AAC."""


class AudioPassthrough:
    """The first audio stream of ``source``, added to ``out`` before any packet is written (the MP4
    header must list every stream) and copied once the video length is known. A source without audio
    adds nothing."""

    def __init__(self, out: av.container.OutputContainer, source: Path, start: float):
        self.src = av.open(str(source))
        self.start = start
        self.ain = self.src.streams.audio[0] if self.src.streams.audio else None
        self.copy = self.ain is not None and self.ain.codec_context.name in _MP4_COPY
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
        """Write the audio in ``[start, start + duration)`` seconds (packet granularity when copying)."""
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
        """Close the source file."""
        self.src.close()
