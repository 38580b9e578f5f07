"""What a batch job is: :class:`JobDefaults` (the command line's values, used by every job that does not set
its own), :class:`Job` (one validated render, the arguments of :meth:`Rerenderer.render`) and the shards
of a job list (:func:`select_shard`), so N processes can split one manifest with no coordination."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..cameras import CameraOptions
from ..choices import FIT_MODES, check_size
from ..errors import UsageError
from ..files import is_stream
from ..render.needs import DEFAULT_GENERATOR, generator_weights
from ..text import check_prompt_text, read_prompt_file
from ..video.multiview import Views, open_views
from .keys import MAX_CRF

SEED_RANGE = (-(2 ** 63), 2 ** 64 - 1)
"""Seeds ``torch.Generator.manual_seed`` accepts."""


@dataclass(frozen=True)
class JobDefaults:
    """The command line's values, used by every job that does not set its own: ``trajectories`` and
    ``seeds`` expand jobs that give none (cross product); the other fields are :meth:`Rerenderer.render`'s
    arguments. ``save_condition`` is the folder itself for a single job, else ``DIR/<output stem>``;
    ``frames``/``fps``: the output length and frame rate of an image source (``--frames``, ``--fps``);
    ``model``: ``world`` or ``world-1.5`` (``--model``)."""

    trajectories: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0,)
    prompt: str | None = None
    prompt_file: str | Path | None = None
    camera: CameraOptions = field(default_factory=CameraOptions)
    depth: str | Path | None = None
    fit: str = "stretch"
    size: tuple[int, int] | None = None
    crf: int = 18
    audio: bool = True
    skip_bad_frames: bool = False
    save_condition: str | Path | None = None
    frames: int | None = None
    fps: float | None = None
    model: str = DEFAULT_GENERATOR

    def checked(self) -> "JobDefaults":
        """The defaults with their prompt file read (once: it may be standard input or another pipe, whose
        text then replaces it), after checking every value; :class:`UsageError` / :class:`PromptError`
        otherwise."""
        if self.prompt is not None and self.prompt_file is not None:
            raise UsageError("give either --prompt or --prompt-file, not both")
        if self.fit not in FIT_MODES:
            raise UsageError(f"--fit {self.fit!r}: expected one of {', '.join(FIT_MODES)}")
        check_size(self.size)
        generator_weights(self.model)
        if not 0 <= self.crf <= MAX_CRF:
            raise UsageError(f"--crf must be from 0 (lossless) to {MAX_CRF}, got {self.crf}")
        for seed in self.seeds:
            check_seed(seed)
        if self.prompt is not None:
            check_prompt_text(self.prompt)
        if self.prompt_file is not None and is_stream(self.prompt_file):
            return replace(self, prompt=read_prompt_file(self.prompt_file), prompt_file=None)
        if self.prompt_file is not None:
            read_prompt_file(self.prompt_file)
        return self


def check_seed(seed: int) -> None:
    """:class:`UsageError` for a seed outside :data:`SEED_RANGE`."""
    if not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise UsageError(f"seed {seed} is out of range (-2**63 to 2**64-1)")


@dataclass(frozen=True)
class Job:
    """One validated render. ``number``: 1-based position in the whole job list (stable across shards and
    runs); ``line``: the manifest line (None for command-line jobs); ``frames``/``chunks``: the output
    length and generator chunks, from the resolved trajectory; ``image_frames``/``fps``: the ``frames`` and
    ``fps`` arguments of :meth:`Rerenderer.render` (an image source's length and rate, as asked); ``model``:
    ``world`` or ``world-1.5``; ``views``: the photos of a views source (then ``video`` is the first, which
    names the job; :attr:`source` is what renders); the rest are
    :meth:`Rerenderer.render`'s arguments (``prompt`` holds the text of a prompt file read from standard
    input)."""

    number: int
    line: int | None
    video: Path
    trajectory: str
    output: Path
    seed: int
    prompt: str | None
    prompt_file: Path | None
    camera: CameraOptions
    depth: Path | None
    fit: str
    size: tuple[int, int] | None
    crf: int
    audio: bool
    skip_bad_frames: bool
    save_condition: Path | None
    frames: int
    chunks: int
    image_frames: int | None = None
    fps: float | None = None
    model: str = DEFAULT_GENERATOR
    views: tuple[Path, ...] | None = None

    @property
    def source(self) -> Path | Views:
        """What the job renders: :attr:`video`, or the :class:`~inspatio_cli.video.multiview.Views` of :attr:`views`."""
        return self.video if self.views is None else open_views(self.views)

    @property
    def sidecar(self) -> Path:
        return self.output.with_suffix(".json")

    @property
    def canvas(self) -> tuple[int, int]:
        return check_size(self.size)

    def settings_args(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`Rerenderer.settings` / :meth:`Rerenderer.fingerprint`."""
        return dict(depth=self.depth, prompt=self.prompt, prompt_file=self.prompt_file, seed=self.seed,
                    camera=self.camera, fit=self.fit, size=self.size, crf=self.crf, audio=self.audio,
                    frames=self.image_frames, fps=self.fps, model=self.model)

    def render_args(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`Rerenderer.render`."""
        return dict(self.settings_args(), save_condition=self.save_condition, skip_bad_frames=self.skip_bad_frames)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly facts for events and the dry-run listing."""
        return {"job": self.number, "line": self.line, "video": str(self.video), "trajectory": self.trajectory,
                "output": str(self.output), "seed": self.seed, "frames": self.frames, "chunks": self.chunks}


SHARD_SHARES = "INSPATIO_SHARDS"
"""The environment variable that gives the number of shards where the launcher sets only an index
(a Kubernetes indexed Job's ``JOB_COMPLETION_INDEX``: set it to the Job's ``completions``)."""


def parse_shard(text: str, environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``K/N`` (1 <= K <= N) -> (K, N), or ``auto``: K/N from the launcher's environment (``environ``,
    default :data:`os.environ`; see :func:`shard_from_environment`); :class:`UsageError` otherwise."""
    if text == "auto":
        return shard_from_environment(os.environ if environ is None else environ)
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must be K/N (e.g. 2/4), got {text!r}") from None
    if not 1 <= k <= n:
        raise UsageError(f"--shard {text}: K must be from 1 to N")
    return k, n


def shard_from_environment(environ: Mapping[str, str]) -> tuple[int, int]:
    """(K, N) of this process from the variables its launcher sets, so that a static split needs no shell
    arithmetic: a SLURM job array (``SLURM_ARRAY_TASK_ID`` from ``SLURM_ARRAY_TASK_MIN``, step 1, of
    ``SLURM_ARRAY_TASK_COUNT``), SLURM tasks (``SLURM_PROCID`` of ``SLURM_NTASKS``), torchrun
    (``RANK`` of ``WORLD_SIZE``), or a Kubernetes indexed Job (``JOB_COMPLETION_INDEX`` of
    :data:`SHARD_SHARES`, which the user sets to the Job's completions). Indexes are 0-based, K is 1-based.
    :class:`UsageError` when none is set, a value is not a number or the index is out of range."""
    def number(name: str) -> int:
        try:
            return int(environ[name])
        except ValueError:
            raise UsageError(f"--shard auto: {name}={environ[name]!r} is not a whole number") from None

    def shard(index_name: str, count_name: str, first: int = 0) -> tuple[int, int]:
        index, count = number(index_name) - first, number(count_name)
        if not 0 <= index < count:
            raise UsageError(f"--shard auto: {index_name}={environ[index_name]} is outside 0..{count - 1} "
                             f"({count_name}={environ[count_name]})")
        return index + 1, count

    if "SLURM_ARRAY_TASK_COUNT" in environ and environ.get("SLURM_NTASKS", "1") == "1":
        if environ.get("SLURM_ARRAY_TASK_STEP", "1") != "1":
            raise UsageError("--shard auto: a SLURM array with a step other than 1; give --shard K/N")
        return shard("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", number("SLURM_ARRAY_TASK_MIN")
                     if "SLURM_ARRAY_TASK_MIN" in environ else 0)
    for index_name, count_name in (("SLURM_PROCID", "SLURM_NTASKS"), ("RANK", "WORLD_SIZE")):
        if index_name in environ and count_name in environ:
            return shard(index_name, count_name)
    if "JOB_COMPLETION_INDEX" in environ:
        if SHARD_SHARES not in environ:
            raise UsageError(f"--shard auto: JOB_COMPLETION_INDEX is set but not the number of shards; set "
                             f"{SHARD_SHARES} to the Job's completions")
        return shard("JOB_COMPLETION_INDEX", SHARD_SHARES)
    raise UsageError("--shard auto: no launcher variables found (SLURM_PROCID/SLURM_NTASKS, a SLURM array, "
                     f"RANK/WORLD_SIZE, or JOB_COMPLETION_INDEX with {SHARD_SHARES}); give --shard K/N")


def select_shard(jobs: Sequence[Job], shard: tuple[int, int] | None) -> list[Job]:
    """Shard K of N: jobs number K, K+N, K+2N, ... of the validated list. The N shards together hold
    every job exactly once, whatever the order in which they run."""
    if shard is None:
        return list(jobs)
    k, n = shard
    return [job for job in jobs if (job.number - 1) % n == k - 1]
