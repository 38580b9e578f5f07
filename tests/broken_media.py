"""A corpus of broken and edge-case videos, generated at test time (never committed).

:func:`build_corpus` writes every file into a folder and returns one :class:`Case` per file: damaged
containers (truncated at several offsets, bytes overwritten in the middle, a zeroed header), odd streams (0
and 1 frames, 4k, 16x16, odd sizes, variable frame rate, rotation, 10-bit, other codecs, audio only) and
misnamed files. ``expect`` says what must happen: ``works`` (every command that reads it succeeds),
``fails`` (refused with one clear line) or ``either`` (damage whose outcome depends on the codec; it
must still be one of the two). Files are small (a few kB to a few hundred kB) so the corpus builds in
seconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np

from media import make_audio_only, make_clip, pattern

FRAMES = 12
SIZE = (48, 64)


@dataclass(frozen=True)
class Case:
    """One corpus file: ``name`` (also its id in test reports), ``path``, what it is and ``expect``."""

    name: str
    path: Path
    what: str
    expect: str


def gradient(frames: int, height: int, width: int) -> np.ndarray:
    """uint8 (T, H, W, 3) frames that are cheap to make at 4k: gradients with a per-frame shift."""
    y = np.arange(height, dtype=np.int64)[:, None]
    x = np.arange(width, dtype=np.int64)[None, :]
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        out[t, ..., 0] = (x * 255 // max(1, width - 1)).astype(np.uint8)
        out[t, ..., 1] = (y * 255 // max(1, height - 1)).astype(np.uint8)
        out[t, ..., 2] = ((x + y + 16 * t) % 256).astype(np.uint8)
    return out


def _cut(source: Path, target: Path, fraction: float) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[:int(len(data) * fraction)])
    return target


def _overwrite(source: Path, target: Path, at: float, length: int, fill: bytes | None = None, seed: int = 0) -> Path:
    """``source`` with ``length`` bytes at fraction ``at`` of the file replaced (random bytes, or ``fill``)."""
    data = bytearray(source.read_bytes())
    start = int(len(data) * at)
    length = min(length, len(data) - start)
    noise = np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8).tobytes()
    data[start:start + length] = (fill * length)[:length] if fill is not None else noise
    target.write_bytes(bytes(data))
    return target


def _copy(source: Path, target: Path) -> Path:
    target.write_bytes(source.read_bytes())
    return target


def _no_frames(target: Path) -> Path:
    """A container whose header declares an H.264 stream but that holds no frame."""
    with av.open(str(target), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.height, stream.width = SIZE
        stream.pix_fmt = "yuv420p"
        out.start_encoding()
    return target


def _image(target: Path) -> Path:
    """A single PNG picture (read by FFmpeg's image demuxer as a one-frame video)."""
    with av.open(str(target), "w", format="image2") as out:
        stream = out.add_stream("png")
        stream.height, stream.width = SIZE
        stream.pix_fmt = "rgb24"
        frame = av.VideoFrame.from_ndarray(pattern(1, *SIZE)[0], format="rgb24")
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return target


def build_corpus(folder: Path) -> list[Case]:
    """Write the corpus into ``folder`` (created) and describe it; see the module docstring."""
    folder.mkdir(parents=True, exist_ok=True)
    clip = pattern(FRAMES, *SIZE)
    good = make_clip(folder / "good.mp4", clip, 25)
    fast = make_clip(folder / "faststart.mp4", clip, 25, container_options={"movflags": "faststart"})
    mkv = make_clip(folder / "good.mkv", clip, 25)
    cases: list[tuple[str, str, str, Callable[[Path], Path]]] = [
        ("good.mp4", "a healthy 12-frame H.264 clip", "works", lambda p: good),
        ("faststart.mp4", "index at the front", "works", lambda p: fast),
        ("good.mkv", "Matroska", "works", lambda p: mkv),
    ]
    for fraction in (0.02, 0.3, 0.6, 0.9, 0.99):
        cases.append((f"truncated-{fraction:g}.mp4", f"MP4 cut at {fraction:.0%} (index at the end: lost)", "either",
                      lambda p, f=fraction: _cut(good, p, f)))
    for fraction in (0.3, 0.6, 0.95):
        cases += [
            (f"truncated-faststart-{fraction:g}.mp4", f"faststart MP4 cut at {fraction:.0%}", "either",
             lambda p, f=fraction: _cut(fast, p, f)),
            (f"truncated-{fraction:g}.mkv", f"Matroska cut at {fraction:.0%}", "either",
             lambda p, f=fraction: _cut(mkv, p, f)),
        ]
    cases += [
        ("noise-middle.mp4", "400 random bytes in the middle", "either", lambda p: _overwrite(good, p, 0.5, 400)),
        ("zeros-middle.mp4", "2000 zero bytes at a third", "either", lambda p: _overwrite(good, p, 0.33, 2000, b"\0")),
        ("noise-middle.mkv", "400 random bytes in the middle of a Matroska file", "either",
         lambda p: _overwrite(mkv, p, 0.5, 400, seed=1)),
        ("zeroed-header.mp4", "the first 64 bytes zeroed", "either", lambda p: _overwrite(good, p, 0.0, 64, b"\0")),
        ("zero-frames.mp4", "an MP4 header without frames", "fails", _no_frames),
        ("zero-frames.mkv", "a Matroska header without frames", "fails", _no_frames),
        ("one-frame.mp4", "a single frame", "works", lambda p: make_clip(p, clip[:1], 25)),
        ("4k.mp4", "3840x2160, 2 frames", "works", lambda p: make_clip(p, gradient(2, 2160, 3840), 25)),
        ("16x16.mp4", "16x16 pixels", "works", lambda p: make_clip(p, pattern(6, 16, 16), 25)),
        ("odd-33x47.mp4", "odd size, 4:4:4", "works", lambda p: make_clip(p, pattern(6, 33, 47), 25, pix_fmt="yuv444p")),
        ("portrait-rotated-90.mp4", "display matrix rotates by 90 degrees", "works",
         lambda p: make_clip(p, clip, 25, rotation=90)),
        ("rotated-270.mp4", "display matrix rotates by 270 degrees", "works", lambda p: make_clip(p, clip, 25, rotation=270)),
        ("vfr.mp4", "variable frame rate (gaps in the timestamps)", "works",
         lambda p: make_clip(p, clip[:10], 25, pts=[0, 1, 2, 5, 6, 9, 10, 11, 15, 16], time_base=Fraction(1, 25))),
        ("10bit.mp4", "H.264 High 10 (yuv420p10le)", "works", lambda p: make_clip(p, clip, 25, pix_fmt="yuv420p10le")),
        ("10bit-hevc.mkv", "HEVC Main 10", "works",
         lambda p: make_clip(p, clip, 25, codec="libx265", pix_fmt="yuv420p10le",
                             codec_options={"x265-params": "log-level=error"})),
        ("ntsc-29.97.mp4", "30000/1001 fps", "works", lambda p: make_clip(p, clip, Fraction(30000, 1001))),
        ("mpeg4.avi", "MPEG-4 part 2 in AVI", "works", lambda p: make_clip(p, clip, 25, codec="mpeg4")),
        ("mjpeg.mkv", "Motion JPEG, full-range yuvj420p", "works",
         lambda p: make_clip(p, clip, 25, codec="mjpeg", pix_fmt="yuvj420p")),
        ("vp9.webm", "VP9 in WebM", "works", lambda p: make_clip(p, clip[:6], 25, codec="libvpx-vp9")),
        ("ffv1-gray.mkv", "lossless grey-scale FFV1", "works", lambda p: make_clip(p, clip[:6], 25, codec="ffv1",
                                                                                  pix_fmt="gray")),
        ("with-audio.mp4", "video with a longer AAC track", "works", lambda p: make_clip(p, clip, 25, audio_seconds=2.0)),
        ("picture.png", "a still PNG picture", "works", lambda p: _image(p)),
        ("audio-only.m4a", "AAC only, no video stream", "fails", lambda p: make_audio_only(p)),
        ("mp4-named.avi", "an MP4 with the wrong extension", "works", lambda p: _copy(good, p)),
        ("mkv-named.mp4", "a Matroska file named .mp4", "works", lambda p: _copy(mkv, p)),
        ("text-named.mp4", "a text file named .mp4", "fails", lambda p: p.write_text("not a video\n" * 50) and p),
        ("random-bytes.mp4", "64 kB of random bytes", "fails",
         lambda p: p.write_bytes(np.random.default_rng(2).integers(0, 256, 1 << 16, dtype=np.uint8).tobytes()) and p),
        ("empty.mp4", "0 bytes", "fails", lambda p: p.write_bytes(b"") or p),
        ("folder.mp4", "a directory", "fails", lambda p: p.mkdir() or p),
        ("dangling-link.mp4", "a symbolic link to nothing", "fails", lambda p: os.symlink(folder / "gone.mp4", p) or p),
    ]
    out = []
    for name, what, expect, make in cases:
        path = folder / name
        made = make(path)
        out.append(Case(name, made if made.name == name else path, what, expect))
    return out
