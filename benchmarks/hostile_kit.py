"""The hostile set's kit (``hostile.py``): shared fixtures, the per-case context and the run description that
every case builder (``hostile_media.py``, ``hostile_files.py``, ``hostile_damage.py``) returns.

A builder gets a :class:`Context` (the case's empty folder, the fixtures, a random generator seeded by the
set's seed and the case id) and returns the :class:`Run`: the command and what the runner needs to judge it.
Builders draw their variations (cut points, bytes, numbers, which command) from that generator, so the same
seed gives the same cases, and a case can be run again alone by its id.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


from broken_media import build_corpus
from conftest import write_tiny_weights
from media import make_clip, pattern
from test_preview_pipeline import ORBIT, planar_depth

H, W = 48, 80
NASTY_NUMBERS = ("nan", "inf", "-inf", "1e309", "-1e308", "1e-320", "0", "-0", "9" * 400, "0x10", "1_0", "\u0661",
                 "", "#", "null", "[]", "1,5", "1e", "--1", "\ufeff1")


class Fixtures:
    """Files every case may read (never write): 12- and 48-frame 48x80 clips with their depth, an orbit
    file, tiny random weights, and the project's broken-media corpus."""

    def __init__(self, root: Path):
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.clip = make_clip(root / "clip.mp4", pattern(12, H, W), fps=12)
        self.depth = planar_depth(12).save(root / "clip.depth.safetensors")
        self.long = make_clip(root / "long.mp4", pattern(48, H, W, seed=1), fps=12)
        self.long_depth = planar_depth(48).save(root / "long.depth.safetensors")
        self.orbit = root / "orbit.txt"
        self.orbit.write_text(ORBIT)
        self.weights = root / "weights"
        write_tiny_weights(self.weights)
        self.corpus = build_corpus(root / "corpus")
        for base, dirs, files in os.walk(root):
            for name in dirs + files:
                path = os.path.join(base, name)
                if not os.path.islink(path):
                    os.chmod(path, 0o755 if name in dirs else 0o644)


@dataclass
class Run:
    """One case's command and how to judge it.

    ``outputs``: files a success must leave (relative to the case folder); ``signals``: (seconds after the
    start, signal) to send; ``replaceable``: inputs the command may replace (it was told ``--overwrite``);
    ``batch``: exit 1 means "some jobs failed" and finished jobs may stay; ``either_signal``: two signals
    close together, either may be reported; ``fresh``: needs a new interpreter; ``permissions``: file
    permissions apply even to root (read-only folders); ``file_limit``: bytes any file may grow to (a full
    disk)."""

    what: str
    args: list[str]
    outputs: tuple[str, ...] = ()
    signals: list[tuple[float, signal.Signals]] = field(default_factory=list)
    stdin_file: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    replaceable: tuple[str, ...] = ()
    batch: bool = False
    either_signal: bool = False
    fresh: bool = False
    permissions: bool = False
    file_limit: int | None = None


@dataclass
class Context:
    """A case's folder (created), the fixtures and the case's random generator, with helpers for inputs."""

    dir: Path
    fx: Fixtures
    rng: random.Random

    def __post_init__(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    def copy(self, source: Path, name: str | None = None) -> str:
        name = name or source.name
        (self.dir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, self.dir / name)
        return name

    def write(self, name: str, data: bytes | str) -> str:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return name

    def clip(self, name: str = "clip.mp4", long: bool = False) -> str:
        """The 12-frame (or 48-frame) clip and its sidecar depth, copied in."""
        self.copy(self.fx.long if long else self.fx.clip, name)
        self.copy(self.fx.long_depth if long else self.fx.depth, Path(name).stem + ".depth.safetensors")
        return name

    def depth(self, name: str, frames: int, size: tuple[int, int] = (H, W)) -> str:
        planar_depth(frames, size).save(self.dir / name)
        return name

    def noise(self, size: int) -> bytes:
        return bytes(self.rng.getrandbits(8) for _ in range(size))

    def job(self, **extra) -> dict:
        """A batch job (a manifest line) on the copied-in clip along the orbit, with ``extra`` keys."""
        return {"video": "clip.mp4", "trajectory": str(self.fx.orbit), **extra}

    def render_args(self) -> list[str]:
        return ["--weights-dir", str(self.fx.weights), "--size", "48x80", "--device", "cpu", "--decoder", "tae",
                "--prompt", "a room"]

    def command(self, kind: str, video: str, trajectory: str = "", out: str = "out.mp4",
                extra: tuple[str, ...] = ()) -> list[str]:
        """``info``, ``preview`` or ``rerender`` (tiny models) of ``video`` along ``trajectory``."""
        trajectory = trajectory or str(self.fx.orbit)
        if kind == "info":
            return ["info", video, *extra]
        args = [kind, video, "-t", trajectory, "-o", out, *extra]
        return args + self.render_args() if kind == "rerender" else args


@dataclass(frozen=True)
class Case:
    """One case of the set: its id (``<class>-<nnn>``), class and builder."""

    id: str
    cls: str
    build: Callable[[Context], Run]


