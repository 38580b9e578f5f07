"""Synthetic media for tests, written with PyAV directly (independent of the writer under test)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch


def pattern(frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 (T, H, W, 3): smooth gradients plus a bright square that moves one step per frame, so frame
    order and orientation are recognisable after lossy coding."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height)[:, None]
    x = np.linspace(0, 1, width)[None, :]
    base = np.stack([np.broadcast_to(x, (height, width)), np.broadcast_to(y, (height, width)),
                     np.broadcast_to(0.5 * (x + y), (height, width))], -1)
    out = np.empty((frames, height, width, 3), np.uint8)
    side = max(2, min(height, width) // 5)
    for t in range(frames):
        img = base * (0.6 + 0.4 * rng.random())
        top = (t * 3) % max(1, height - side)
        left = (t * 5) % max(1, width - side)
        img[top:top + side, left:left + side] = 1.0
        out[t] = (img * 255).astype(np.uint8)
    return out


def make_clip(path: Path, frames: np.ndarray, fps: float | Fraction = 25, *, audio_seconds: float = 0.0,
              rotation: int = 0, codec: str = "libx264", pix_fmt: str = "yuv420p",
              pts: list[int] | None = None, time_base: Fraction | None = None,
              container_options: dict[str, str] | None = None, codec_options: dict[str, str] | None = None,
              audio: tuple[str, int, str] = ("aac", 44100, "mono")) -> Path:
    """Encode ``frames`` (T, H, W, 3) uint8 to ``path``. ``rotation`` stores a display matrix (degrees,
    counter-clockwise); ``pts``+``time_base`` give explicit (e.g. variable) timestamps; ``audio_seconds``
    adds a 440 Hz tone coded as ``audio`` (codec, sample rate, channel layout); ``container_options`` go to the muxer (e.g. ``{"movflags": "faststart"}``),
    ``codec_options`` to the encoder."""
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        if codec_options:
            stream.options = codec_options
        if time_base is not None:
            stream.codec_context.time_base = time_base
        if rotation:
            stream.set_display_rotation(rotation)
        astream = _tone_stream(out, *audio) if audio_seconds else None
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            if pts is not None:
                frame.pts = pts[i]
                frame.time_base = time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if astream is not None:
            _write_tone(out, astream, audio_seconds, 440.0)
    return path


def make_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An .mp4 (m4a) that holds only an AAC tone, no video stream."""
    with av.open(str(path), "w", format="mp4") as out:
        _write_tone(out, _tone_stream(out), seconds, 220.0)
    return path


def _tone_stream(out: av.container.OutputContainer, codec: str = "aac", rate: int = 44100,
                 layout: str = "mono") -> av.audio.stream.AudioStream:
    stream = out.add_stream(codec, rate=rate)
    stream.layout = layout
    return stream


def _write_tone(out: av.container.OutputContainer, stream, seconds: float, hertz: float) -> None:
    """Encode ``seconds`` of a sine tone at ``hertz`` (the same in every channel) into ``stream``, at its
    rate and layout (the encoder converts the float samples to its own format)."""
    rate, layout = stream.codec_context.sample_rate, stream.codec_context.layout
    n = int(rate * seconds)
    tone = (0.3 * np.sin(2 * np.pi * hertz * np.arange(n) / rate)).astype(np.float32)
    tone = np.repeat(tone[None], len(layout.channels), axis=0)
    for start in range(0, n, 1024):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + 1024]), format="fltp",
                                           layout=layout.name)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def mask_from_video(mask_u8: torch.Tensor) -> torch.Tensor:
    """Binary mask from decoded mask-video bytes (any shape, uint8): ``u8 / 255 > 0.5``, as the official
    dataset reads a mask video back (re-binarising what a lossy codec blurred). Returns float32 {0, 1}."""
    return (mask_u8.float() / 255 > 0.5).float()


def make_raw_stream(path: Path, frames: np.ndarray, codec: str = "libx264") -> Path:
    """An Annex-B elementary stream (``.h264``/``.hevc``: no container, no timestamps) of ``frames``;
    ``codec`` libx264 or libx265. Appends to ``path`` when it exists, so two calls with frames of two sizes
    make one stream whose picture size changes mid-stream."""
    with open(path, "ab") as raw, av.open(raw, "w", format="hevc" if codec == "libx265" else "h264") as out:
        stream = out.add_stream(codec, rate=25)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        if codec == "libx265":
            stream.options = {"x265-params": "log-level=error"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def strip_first_pts(path: Path, count: int) -> Path:
    """Remove the timestamps from the first ``count`` video PES headers of the MPEG-TS file ``path`` (their
    flags say "no PTS", the timestamp bytes become stuffing), as some capture devices write them."""
    data = bytearray(path.read_bytes())
    stripped = 0
    for start in range(0, len(data) - 188 + 1, 188):
        if stripped == count:
            break
        if not data[start + 1] & 0x40:  # not the start of a PES packet
            continue
        pes = start + 4 + (1 + data[start + 4] if data[start + 3] & 0x20 else 0)
        if data[pes:pes + 4] != b"\0\0\1\xe0":
            continue
        data[pes + 7] &= 0x3F
        data[pes + 9:pes + 9 + data[pes + 8]] = b"\xff" * data[pes + 8]
        stripped += 1
    path.write_bytes(bytes(data))
    return path
