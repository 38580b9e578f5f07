"""Time control, the "4D" half of the tool: which source frame each output frame shows.

Edits work on the source timeline and never overlap:

* ``Freeze(frame, count)``: ``count`` extra copies of source ``frame`` right after it (the official
  ``freeze_frame``/``freeze_repeat``; ``frame=None`` means the middle frame ``T//2``, as there);
* ``Slow(start, end, factor)``: source frames ``start..end`` (inclusive) shown ``factor`` times slower
  (``round((end-start+1)*factor)`` output frames; a factor below 1 speeds up);
* ``Reverse(start, end)``: source frames ``start..end`` (inclusive) played backwards.

The camera keeps moving through every output frame: trajectories are sampled at the length of the final
time map. The output never changes length silently; to lengthen short clips ask for ``extend``:

* ``pingpong`` / ``loop`` / ``hold``: extend the edited time map to ``min_frames`` by bouncing, looping
  or holding the last frame (never shortened);
* ``official``: the official "adaptive frame" rule (REFERENCE.md 6.4, trajectory.md section 7) with its
  exact semantics: bounce to at least 121 frames or subsample to the angular-speed bound, replaying the
  camera path with the frames. Only for 3-line orbit trajectories; kept for parity, not recommended.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..choices import EXTEND_MODES, MAX_OUTPUT_FRAMES
from ..errors import UsageError

OFFICIAL_MIN_FRAMES = 121
OFFICIAL_MIN_DEG_PER_FRAME = 0.3
OFFICIAL_MAX_DEG_PER_FRAME = 0.8


@dataclass(frozen=True)
class Freeze:
    frame: int | None
    count: int


@dataclass(frozen=True)
class Slow:
    start: int
    end: int
    factor: float


@dataclass(frozen=True)
class Reverse:
    start: int
    end: int


def _fields(text: str, option: str, names: tuple[str, ...]) -> list[str]:
    """Split ``A:B[:C]`` into exactly ``len(names)`` non-empty fields or raise a usage error."""
    parts = [p.strip() for p in text.split(":")]
    if len(parts) != len(names) or not all(parts):
        raise UsageError(f"{option} {text!r}: expected {':'.join(names)}")
    return parts


def _to_int(text: str, option: str, whole: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{option} {whole!r}: {text!r} is not a whole number") from None


def parse_freeze(text: str) -> Freeze:
    """``FRAME:COUNT`` (``FRAME`` may be ``mid``) -> :class:`Freeze`."""
    frame, count = _fields(text, "--freeze", ("FRAME", "COUNT"))
    return Freeze(None if frame == "mid" else _to_int(frame, "--freeze", text), _to_int(count, "--freeze", text))


def parse_slow(text: str) -> Slow:
    """``START:END:FACTOR`` -> :class:`Slow`."""
    start, end, factor = _fields(text, "--slow", ("START", "END", "FACTOR"))
    try:
        value = float(factor)
    except ValueError:
        raise UsageError(f"--slow {text!r}: {factor!r} is not a number") from None
    return Slow(_to_int(start, "--slow", text), _to_int(end, "--slow", text), value)


def parse_reverse(text: str) -> Reverse:
    """``START:END`` -> :class:`Reverse`."""
    start, end = _fields(text, "--reverse", ("START", "END"))
    return Reverse(_to_int(start, "--reverse", text), _to_int(end, "--reverse", text))


def bounce_indices(n: int, length: int) -> np.ndarray:
    """``length`` indices into ``n`` frames going 0..n-1, n-2..0, 1..n-1, ... (period ``2(n-1)``);
    a single frame is held."""
    if n == 1:
        return np.zeros(length, dtype=np.int64)
    period = 2 * (n - 1)
    p = np.arange(length, dtype=np.int64) % period
    return np.where(p < n, p, period - p)


def official_adaptive_indices(total_deg: float, m: int) -> np.ndarray:
    """The official adaptive-frame index list over ``m`` aligned frames (trajectory.md section 7.3).

    ``total_deg`` = max of the summed absolute pitch and yaw keyframe steps (raw keys). Bounce to
    ``max(ceil(total/0.8)+1, 121)`` frames when ``m`` is shorter, subsample with
    ``trunc(linspace(0, m-1, floor(total/0.3)+1))`` when ``m`` exceeds that, else the identity.
    """
    if total_deg > 1e-3:
        min_needed = max(2, math.ceil(total_deg / OFFICIAL_MAX_DEG_PER_FRAME) + 1)
        max_needed = max(2, math.floor(total_deg / OFFICIAL_MIN_DEG_PER_FRAME) + 1)
    else:
        min_needed = max_needed = m
    target = max(min_needed, OFFICIAL_MIN_FRAMES)
    if m < target:
        return bounce_indices(m, target)
    if m > max_needed:
        return np.linspace(0, m - 1, max_needed).astype(np.int64)
    return np.arange(m, dtype=np.int64)


@dataclass(frozen=True)
class TimeControl:
    """Time edits plus an explicit extension policy; see the module docstring."""

    freezes: tuple[Freeze, ...] = ()
    slows: tuple[Slow, ...] = ()
    reverses: tuple[Reverse, ...] = ()
    extend: str = "none"
    min_frames: int = 0

    def __post_init__(self) -> None:
        if self.extend not in EXTEND_MODES:
            raise UsageError(f"--extend {self.extend!r}: expected one of {', '.join(EXTEND_MODES)}")
        if self.min_frames < 0:
            raise UsageError(f"--min-frames must be >= 0, got {self.min_frames}")
        if self.min_frames > MAX_OUTPUT_FRAMES:
            raise UsageError(f"--min-frames {self.min_frames}: at most {MAX_OUTPUT_FRAMES} output frames")
        if self.min_frames and self.extend in ("none", "official"):
            raise UsageError(f"--min-frames needs --extend pingpong|loop|hold (got --extend {self.extend})")
        if not self.min_frames and self.extend in ("pingpong", "loop", "hold"):
            raise UsageError(f"--extend {self.extend} needs --min-frames N (the number of output frames to reach)")
        for f in self.freezes:
            if f.count < 0:
                raise UsageError(f"--freeze count must be >= 0, got {f.count}")
        for s in self.slows:
            if not (s.factor > 0 and math.isfinite(s.factor)):
                raise UsageError(f"--slow factor must be a positive number, got {s.factor}")

    @classmethod
    def from_options(cls, freeze: list[str] | None = None, slow: list[str] | None = None,
                     reverse: list[str] | None = None, extend: str = "none", min_frames: int = 0) -> "TimeControl":
        """Build from the command-line strings (``FRAME:COUNT``, ``START:END:FACTOR``, ``START:END``)."""
        return cls(tuple(parse_freeze(t) for t in freeze or ()), tuple(parse_slow(t) for t in slow or ()),
                   tuple(parse_reverse(t) for t in reverse or ()), extend, min_frames)

    def describe(self) -> dict:
        """The settings as plain JSON-friendly values (for reports and ``--json``)."""
        return {"freeze": [f"{'mid' if f.frame is None else f.frame}:{f.count}" for f in self.freezes],
                "slow": [f"{s.start}:{s.end}:{s.factor:g}" for s in self.slows],
                "reverse": [f"{r.start}:{r.end}" for r in self.reverses],
                "extend": self.extend, "min_frames": self.min_frames}

    def _segments(self, n: int) -> list[tuple[int, int, np.ndarray, str]]:
        """Each edit as ``(start, end, indices, label)`` on the source timeline, validated for ``n`` (their
        output frames together at most :data:`MAX_OUTPUT_FRAMES`, checked before each is made)."""
        segments = []
        budget = MAX_OUTPUT_FRAMES

        def claim(frames: float, label: str) -> None:
            nonlocal budget
            budget -= frames
            if budget < 0:
                raise UsageError(f"{label}: the time edits would make more than {MAX_OUTPUT_FRAMES} output frames")

        for f in self.freezes:
            frame = n // 2 if f.frame is None else f.frame
            if not 0 <= frame < n:
                raise UsageError(f"--freeze {frame}:{f.count}: frame {frame} is outside the video (0..{n - 1})")
            claim(f.count + 1, f"--freeze {frame}:{f.count}")
            segments.append((frame, frame, np.full(f.count + 1, frame, dtype=np.int64), f"--freeze {frame}:{f.count}"))
        for s in self.slows:
            self._check_range(s.start, s.end, n, f"--slow {s.start}:{s.end}:{s.factor:g}")
            claim((s.end - s.start + 1) * s.factor, f"--slow {s.start}:{s.end}:{s.factor:g}")
            length = max(1, round((s.end - s.start + 1) * s.factor))
            idx = s.start + np.floor(np.arange(length) * (s.end - s.start + 1) / length).astype(np.int64)
            segments.append((s.start, s.end, idx, f"--slow {s.start}:{s.end}:{s.factor:g}"))
        for r in self.reverses:
            self._check_range(r.start, r.end, n, f"--reverse {r.start}:{r.end}")
            segments.append((r.start, r.end, np.arange(r.end, r.start - 1, -1, dtype=np.int64),
                             f"--reverse {r.start}:{r.end}"))
        segments.sort(key=lambda s: (s[0], s[1]))
        for a, b in zip(segments, segments[1:]):
            if b[0] <= a[1]:
                raise UsageError(f"{a[3]} and {b[3]} overlap; time edits must cover separate frames")
        return segments

    @staticmethod
    def _check_range(start: int, end: int, n: int, label: str) -> None:
        if not (0 <= start <= end < n):
            raise UsageError(f"{label}: needs 0 <= START <= END <= {n - 1} (the video has {n} frames)")

    def edited_map(self, num_source_frames: int) -> np.ndarray:
        """The time map after freeze/slow/reverse, before any extension: ``(M,)`` int64."""
        n = num_source_frames
        if n < 1:
            raise UsageError("the video has no frames")
        pieces, pos = [], 0
        for start, end, idx, _ in self._segments(n):
            pieces += [np.arange(pos, start, dtype=np.int64), idx]
            pos = end + 1
        pieces.append(np.arange(pos, n, dtype=np.int64))
        return np.concatenate(pieces)

    def extend_map(self, edited: np.ndarray) -> np.ndarray:
        """Apply ``pingpong``/``loop``/``hold`` up to ``min_frames`` (``none`` returns ``edited``)."""
        m = len(edited)
        if self.extend in ("none", "official") or m >= self.min_frames:
            return edited
        if self.extend == "pingpong":
            return edited[bounce_indices(m, self.min_frames)]
        if self.extend == "loop":
            return edited[np.arange(self.min_frames) % m]
        return np.concatenate([edited, np.full(self.min_frames - m, edited[-1], dtype=np.int64)])
