"""``batch``: many rerenders in one process: jobs, manifests, validation, sharding, resume, failure isolation.

A **job** is one :meth:`Rerenderer.render` call: a video, a trajectory, an output and the settings. Jobs
come from a manifest (:func:`read_manifest` + :func:`plan_jobs`) or from the command line's cross product
of videos x trajectories x seeds (``inspatio rerender a.mp4 b.mp4 -t x -t y -o out/``); both go through
:func:`plan_jobs`, which validates every job before anything runs and reports all problems at once.

Manifests (relative paths are relative to the manifest's folder, or the current folder for stdin):

* **JSONL** (``.jsonl``/``.ndjson``, or a first line starting with ``{``): one object per line;
* **CSV** (``.csv``, ``.tsv``, or a first line with a ``video`` column): a header row, then one row per line;
* **a plain list** of video paths, one per line (anything else), with the trajectories given by ``-t``.

Keys (:data:`JOB_KEYS` and the per-job overrides :data:`OPTION_KEYS`; anything else is an error): ``video``,
``trajectory``, ``output``, ``prompt``/``prompt_file``, ``seed``. A row without ``trajectory`` (or ``seed``)
expands to every ``-t`` (``--seed``) of the command line; a row without ``output`` is named by the
``--name`` pattern in ``-o DIR``. Blank lines and lines starting with ``#`` are skipped.

:func:`run_jobs` renders a validated list with one :class:`Rerenderer`, in phases so that the big models
never share memory and each is built once: finished jobs are skipped (output present and its sidecar's
settings fingerprint equal to the job's; ``force`` redoes them); every weight file of the remaining jobs
is checked; the depth of each video that needs an estimate is computed once (and cached, so its other
jobs read it); captions and prompt embeddings are made for all distinct prompts with one text encoder
load; then the generator and autoencoder are loaded and the jobs rendered in order. A failing job is
reported and the others go on (``fail_fast`` stops at the first). :func:`select_shard` takes every N-th
job, so N processes can split one manifest with no coordination.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import string
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Sequence, TextIO

import torch

from . import caption as captioning
from . import registry
from .cameras import CameraOptions, TimeControl, chunk_plan
from .choices import DEFAULT_NAME, FIT_MODES, VIDEO_SUFFIXES, check_size
from .errors import InputError, InspatioError, Interrupted, ManifestError, PromptError, UsageError, out_of_memory
from .files import TEMP_MARK
from .scene import depth_weights_needed, padded_length, resolve_depth
from .meter import StageMeter
from .progress import Reporter
from .render.rerender import SIDECAR_FORMAT, Rerenderer, RerenderResult
from .text import check_prompt_text, read_prompt_file, resolve_text_device
from .video import probe
from .weights import read_header

MANIFEST_KINDS = ("jsonl", "csv", "list")
NAME_FIELDS = ("video", "trajectory", "seed", "index")
MAX_CRF = 51
SEED_RANGE = (-(2 ** 63), 2 ** 64 - 1)
"""Seeds ``torch.Generator.manual_seed`` accepts."""


# --------------------------------------------------------------------------------------------------
# Values of manifest cells (CSV text or JSON values)


def _text(value: Any, from_text: bool) -> str:
    """A non-empty string (paths, names); CSV and list text is stripped."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty string")
    if "\0" in value:
        raise ValueError("contains a NUL character")
    return value.strip() if from_text else value


def _int(value: Any, from_text: bool) -> int:
    if from_text:
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError(f"expected an integer, got {value.strip()!r}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {json.dumps(value)[:40]}")
    return value


def _float(value: Any, from_text: bool) -> float:
    if from_text:
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError(f"expected a number, got {value.strip()!r}") from None
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {json.dumps(value)[:40]}")
    else:
        try:
            number = float(value)
        except OverflowError:
            raise ValueError("the number is too large") from None
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    return number


def _prompt(value: Any, from_text: bool) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    try:
        return check_prompt_text(value)
    except PromptError as exc:
        raise ValueError(exc.message) from None


def _bool(value: Any, from_text: bool) -> bool:
    if from_text:
        word = value.strip().lower()
        if word in ("true", "yes", "1"):
            return True
        if word in ("false", "no", "0"):
            return False
        raise ValueError(f"expected true or false, got {value.strip()!r}")
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {json.dumps(value)[:40]}")
    return value


def _size(value: Any, from_text: bool) -> tuple[int, int]:
    """``"HxW"`` or ``[H, W]``, both sides positive multiples of 16 (:func:`rerender.check_size`)."""
    hw = None
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                            for v in value):
        hw = value[0], value[1]
    elif isinstance(value, str):
        parts = value.strip().lower().split("x")
        if len(parts) == 2 and all(p.strip().isdigit() and p.strip().isascii() for p in parts):
            hw = int(parts[0]), int(parts[1])
    if hw is None:
        raise ValueError("expected HxW (e.g. 480x832)")
    try:
        return check_size(hw)
    except UsageError as exc:
        raise ValueError(exc.message) from None


def _crf(value: Any, from_text: bool) -> int:
    crf = _int(value, from_text)
    if not 0 <= crf <= MAX_CRF:
        raise ValueError(f"expected 0 (lossless) to {MAX_CRF}, got {crf}")
    return crf


def _strings(value: Any, from_text: bool) -> list[str]:
    """Repeatable options (``freeze``, ``slow``, ``reverse``): a JSON string or list of strings; in CSV,
    several values separated by spaces or ``;``."""
    if from_text:
        return value.replace(";", " ").split()
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError("expected a string or a list of strings")


def _fit(value: Any, from_text: bool) -> str:
    text = _text(value, from_text)
    if text not in FIT_MODES:
        raise ValueError(f"expected one of {', '.join(FIT_MODES)}, got {text!r}")
    return text


JOB_KEYS: dict[str, Callable[[Any, bool], Any]] = {
    "video": _text, "trajectory": _text, "output": _text, "prompt": _prompt, "prompt_file": _text, "seed": _int,
}
"""What a job is: its inputs, output, prompt and seed."""
RENDER_KEYS: dict[str, Callable[[Any, bool], Any]] = {
    "depth": _text, "fit": _fit, "size": _size, "crf": _crf, "audio": _bool, "skip_bad_frames": _bool,
    "save_condition": _text,
}
CAMERA_KEYS: dict[str, Callable[[Any, bool], Any]] = {
    "format": _text, "convention": _text, "direction": _text, "scale": _float, "anchor": _text,
    "rotation_only": _bool, "resample": _bool, "relative_to_source": _bool,
}
TIME_KEYS: dict[str, Callable[[Any, bool], Any]] = {
    "freeze": _strings, "slow": _strings, "reverse": _strings, "extend": _text, "min_frames": _int,
}
OPTION_KEYS = {**RENDER_KEYS, **CAMERA_KEYS, **TIME_KEYS}
"""Per-job overrides of the rerender options (the same names as the command-line flags, ``-`` or ``_``):
``depth fit size crf audio skip_bad_frames save_condition`` and the trajectory/time options ``format
convention direction scale anchor rotation_only resample relative_to_source freeze slow reverse extend
min_frames``."""
ALL_KEYS = {**JOB_KEYS, **OPTION_KEYS}
BATCH_WIDE_KEYS = ("decoder", "device", "dtype", "text_device", "compile", "weights_dir")
"""Options that choose the models, so they apply to the whole batch (command line only)."""


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def _unknown_key(name: str, word: str = "key") -> str:
    if _key(name) in BATCH_WIDE_KEYS:
        return (f"{word} {name!r}: this option applies to the whole batch (the models are loaded once); give it "
                "on the command line")
    return f"unknown {word} {name!r} (allowed: {', '.join(ALL_KEYS)})"


# --------------------------------------------------------------------------------------------------
# Problems found while reading and validating


@dataclass(frozen=True)
class Problem:
    """One invalid line (or command-line input): where (``line``, None for the command line) and the
    error found there."""

    line: int | None
    error: InspatioError

    def text(self) -> str:
        return self.error.one_line() if self.line is None else f"line {self.line}: {self.error.one_line()}"


class InvalidJobs(ManifestError):
    """Every problem of a manifest (or of the command line's inputs) at once; ``problems`` lists them in
    line order. Exit code 3, like every :class:`ManifestError`."""

    def __init__(self, problems: Sequence[Problem], path: str | os.PathLike[str] | None = None):
        self.problems = sorted(problems, key=lambda p: (p.line or 0))
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the jobs (nothing was run): "
                         + "; ".join(p.text() for p in self.problems), path)


# --------------------------------------------------------------------------------------------------
# Manifests


@dataclass(frozen=True)
class Row:
    """One manifest line: its 1-based ``line`` (None for a command-line input), the values by key
    (unconverted) and whether they are CSV or list text (``from_text``) or JSON / Python values."""

    line: int | None
    values: dict[str, Any]
    from_text: bool


@dataclass
class Manifest:
    """A read manifest: where it came from (``path``; None for stdin), its ``kind``, the folder its
    relative paths are relative to (``base``), the rows and the problems found while reading."""

    path: Path | None
    kind: str
    base: Path
    rows: list[Row]
    problems: list[Problem] = field(default_factory=list)


def _detect_kind(name: str, lines: list[str]) -> str:
    suffix = Path(name).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    first = next((ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")), "")
    if first.startswith("{"):
        return "jsonl"
    cells = [_key(c) for c in next(csv.reader([first], delimiter="\t" if "\t" in first else ","), [])]
    return "csv" if "video" in cells else "list"


def read_manifest(source: str | Path, *, stdin: BinaryIO | TextIO | None = None) -> Manifest:
    """Read a manifest file (``-``: standard input, or the stream ``stdin`` when given) without validating
    the jobs: JSONL, CSV or a plain list of videos (see the module docstring). Lines that cannot be read
    (bad JSON, a non-object, a CSV row of the wrong width, an unknown key) are collected in ``problems``
    with their line numbers; a file that cannot be read at all raises :class:`ManifestError`."""
    if str(source) == "-":
        data = (stdin if stdin is not None else sys.stdin.buffer).read()
        path, base = None, Path()
    else:
        path = Path(source)
        try:
            data = path.read_bytes()
        except IsADirectoryError:
            raise ManifestError("is a folder, not a manifest file", path) from None
        except OSError as exc:
            raise ManifestError(f"cannot read the manifest ({exc.strerror or exc})", path) from None
        base = path.parent
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            raise ManifestError(f"line {line}: not UTF-8 text (byte {exc.start})", path or "<stdin>") from None
    lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")  # not splitlines(): JSON strings may
    # hold U+2028 and other characters it breaks lines at
    kind = _detect_kind("" if path is None else path.name, lines)
    manifest = Manifest(path, kind, base, [])
    reader = {"jsonl": _read_jsonl, "csv": _read_csv, "list": _read_list}[kind]
    reader(manifest, lines, "\t" if path is not None and path.suffix.lower() == ".tsv" else None)
    return manifest


def _skip(line: str) -> bool:
    return not line.strip() or line.lstrip().startswith("#")


def _bad(manifest: Manifest, line: int, message: str) -> None:
    manifest.problems.append(Problem(line, ManifestError(message)))


def _keep(manifest: Manifest, line: int, values: dict[str, Any], from_text: bool) -> None:
    """Add a row after checking its keys: unknown or repeated keys are problems, and the row's other values
    are still checked (nothing runs while the manifest has a problem, so every one is found at once)."""
    normal: dict[str, Any] = {}
    for name, value in values.items():
        key = _key(name)
        if key not in ALL_KEYS:
            _bad(manifest, line, _unknown_key(name))
        elif key in normal:
            _bad(manifest, line, f"{key!r} is given twice")
        else:
            normal[key] = value
    manifest.rows.append(Row(line, normal, from_text))


def _read_jsonl(manifest: Manifest, lines: list[str], delimiter: str | None) -> None:
    for number, line in enumerate(lines, 1):
        if _skip(line):
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError) as exc:
            reason = "too deeply nested" if isinstance(exc, RecursionError) else str(exc).split(":")[0]
            _bad(manifest, number, f"not valid JSON ({reason})")
            continue
        if not isinstance(value, dict):
            _bad(manifest, number, f"expected a JSON object per line, got {type(value).__name__}")
            continue
        _keep(manifest, number, {k: v for k, v in value.items() if v is not None}, False)


def _read_csv(manifest: Manifest, lines: list[str], delimiter: str | None) -> None:
    records = [n for n, ln in enumerate(lines, 1) if not _skip(ln)]
    if not records:
        return
    first = lines[records[0] - 1]
    delimiter = delimiter or ("\t" if "\t" in first and "," not in first else ",")
    reader = csv.reader(io.StringIO("\n".join(lines[n - 1] for n in records)), delimiter=delimiter, strict=True)
    rows: list[tuple[int, list[str]]] = []
    start = 0  # index in records of the line where the next row begins (a quoted cell may span lines)
    try:
        for cells in reader:
            rows.append((records[start], cells))
            start = reader.line_num
    except csv.Error as exc:
        _bad(manifest, records[min(start, len(records) - 1)], f"not valid CSV ({exc})")
        return
    (header_line, header), body = rows[0], rows[1:]
    names = [_key(h) for h in header]
    for name in (h for h, n in zip(header, names) if n not in ALL_KEYS):
        _bad(manifest, header_line, _unknown_key(name, "column"))
    twice = sorted({n for n in names if names.count(n) > 1})
    for name in twice:
        _bad(manifest, header_line, f"column {name!r} appears twice in the header")
    if "video" not in names:
        _bad(manifest, header_line, "missing column 'video' in the header")
    if twice or "video" not in names:
        return  # the rows cannot be read: which cell is which is unclear
    known = [i for i, n in enumerate(names) if n in ALL_KEYS]  # an unknown column is reported once, above
    for number, cells in body:
        if len(cells) != len(names):
            _bad(manifest, number, f"{len(cells)} cells, but the header has {len(names)} columns")
            continue
        _keep(manifest, number, {names[i]: cells[i] for i in known if cells[i].strip()}, True)


def _read_list(manifest: Manifest, lines: list[str], delimiter: str | None) -> None:
    for number, line in enumerate(lines, 1):
        if not _skip(line):
            manifest.rows.append(Row(number, {"video": line.strip()}, True))


# --------------------------------------------------------------------------------------------------
# Jobs


@dataclass(frozen=True)
class JobDefaults:
    """The command line's values, used by every job that does not set its own: ``trajectories`` and
    ``seeds`` expand jobs that give none (cross product); the other fields are :meth:`Rerenderer.render`'s
    arguments. ``save_condition`` is the folder itself for a single job, else ``DIR/<output stem>``."""

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

    def checked(self) -> "JobDefaults":
        """The defaults with their prompt file read (once: it may be standard input), after checking
        every value; :class:`UsageError` / :class:`PromptError` otherwise."""
        if self.prompt is not None and self.prompt_file is not None:
            raise UsageError("give either --prompt or --prompt-file, not both")
        if self.fit not in FIT_MODES:
            raise UsageError(f"--fit {self.fit!r}: expected one of {', '.join(FIT_MODES)}")
        check_size(self.size)
        if not 0 <= self.crf <= MAX_CRF:
            raise UsageError(f"--crf must be from 0 (lossless) to {MAX_CRF}, got {self.crf}")
        for seed in self.seeds:
            _check_seed(seed)
        if self.prompt is not None:
            check_prompt_text(self.prompt)
        if str(self.prompt_file) == "-":
            return replace(self, prompt=read_prompt_file("-"), prompt_file=None)
        if self.prompt_file is not None:
            read_prompt_file(self.prompt_file)
        return self


def _check_seed(seed: int) -> None:
    if not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise UsageError(f"seed {seed} is out of range (-2**63 to 2**64-1)")


@dataclass(frozen=True)
class Job:
    """One validated render. ``number``: 1-based position in the whole job list (stable across shards and
    runs); ``line``: the manifest line (None for command-line jobs); ``frames``/``chunks``: the output
    length and generator chunks, from the resolved trajectory; the rest are :meth:`Rerenderer.render`'s
    arguments (``prompt`` holds the text of a prompt file read from standard input)."""

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

    @property
    def sidecar(self) -> Path:
        return self.output.with_suffix(".json")

    @property
    def canvas(self) -> tuple[int, int]:
        return check_size(self.size)

    def settings_args(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`Rerenderer.settings` / :meth:`Rerenderer.fingerprint`."""
        return dict(depth=self.depth, prompt=self.prompt, prompt_file=self.prompt_file, seed=self.seed,
                    camera=self.camera, fit=self.fit, size=self.size, crf=self.crf, audio=self.audio)

    def render_args(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`Rerenderer.render`."""
        return dict(self.settings_args(), save_condition=self.save_condition, skip_bad_frames=self.skip_bad_frames)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly facts for events and the dry-run listing."""
        return {"job": self.number, "line": self.line, "video": str(self.video), "trajectory": self.trajectory,
                "output": str(self.output), "seed": self.seed, "frames": self.frames, "chunks": self.chunks}


@dataclass
class _Inputs:
    """What validation reads once per distinct input: probes, trajectory files, prompt files."""

    probes: dict[Path, Any] = field(default_factory=dict)
    sources: dict[tuple, Any] = field(default_factory=dict)
    prompts: dict[Path, str] = field(default_factory=dict)

    def probe(self, video: Path):
        return _once(self.probes, video.resolve(), lambda: probe(video))

    def trajectory(self, reference: str, camera: CameraOptions):
        key = (reference, camera.fmt, camera.convention, camera.direction, camera.scale, camera.anchor,
               camera.rotation_only, camera.resample)
        return _once(self.sources, key, lambda: camera.load(reference))


def _once(store: dict, key: Any, read: Callable[[], Any]) -> Any:
    """``read()`` the first time ``key`` is asked for, its result (or its :class:`InspatioError`, raised
    again) remembered in ``store`` for the other jobs that name the same input."""
    if key not in store:
        try:
            store[key] = read()
        except InspatioError as exc:
            store[key] = exc
    found = store[key]
    if isinstance(found, InspatioError):
        raise found
    return found


def _under(base: Path | None, value: str) -> Path:
    """A manifest path: ``~`` expanded, relative to ``base``."""
    path = Path(value)
    if value.startswith("~"):
        try:
            path = path.expanduser()
        except RuntimeError:  # ~name of an unknown user: kept as written (then "no such file")
            pass
    return path if base is None or path.is_absolute() else base / path


def _trajectory_reference(value: str, base: Path | None) -> str:
    """A manifest's trajectory: a file relative to ``base``, else (a bare name) a preset name."""
    if base is None:
        return value
    path = _under(base, value)
    return str(path) if path.exists() or "/" in value or os.sep in value else value


def _name_pattern(name: str | None, seeds: Iterable[int]) -> str:
    pattern = name or DEFAULT_NAME + ("__{seed}" if len(set(seeds)) > 1 else "")
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None]
    except ValueError as exc:
        raise UsageError(f"--name {pattern!r}: {exc}") from None
    for item in fields:
        if item not in NAME_FIELDS:
            raise UsageError(f"--name {pattern!r}: unknown field {{{item}}} (use "
                             f"{', '.join('{' + f + '}' for f in NAME_FIELDS)})")
    return pattern


def _output_name(pattern: str, video: Path, trajectory: str, seed: int, number: int) -> str:
    name = pattern.format(video=video.stem, trajectory=Path(trajectory).stem, seed=seed, index=number)
    return name if Path(name).suffix.lower() in VIDEO_SUFFIXES else name + ".mp4"


@dataclass
class _Draft:
    """A job before validation: the merged values, where it came from and its expansion values."""

    line: int | None
    values: dict[str, Any]
    trajectory: str
    seed: int


def _expand(rows: Sequence[Row], defaults: JobDefaults, problems: list[Problem]) -> list[_Draft]:
    """Convert each row's values and expand it over the default trajectories and seeds it does not set."""
    drafts = []
    for row in rows:
        values: dict[str, Any] = {}
        for key, value in row.values.items():
            try:
                values[key] = ALL_KEYS[key](value, row.from_text)
            except ValueError as exc:
                problems.append(Problem(row.line, ManifestError(f"{key}: {exc}")))
        if len(values) != len(row.values):
            continue
        missing = [k for k in ("video",) if k not in values]
        if "trajectory" not in values and not defaults.trajectories:
            missing.append("trajectory")
        if missing:
            problems.append(Problem(row.line, ManifestError(
                f"missing {' and '.join(repr(m) for m in missing)}"
                + (" (a column, or -t on the command line)" if "trajectory" in missing else ""))))
            continue
        trajectories = [values["trajectory"]] if "trajectory" in values else list(defaults.trajectories)
        seeds = [values["seed"]] if "seed" in values else list(defaults.seeds)
        drafts += [_Draft(row.line, values, t, s) for t in trajectories for s in seeds]
    return drafts


def plan_jobs(rows: Sequence[Row], defaults: JobDefaults, *, base: Path | None = None,
              output: str | Path | None = None, name: str | None = None, manifest: Path | None = None,
              problems: Sequence[Problem] = (), single_output: bool = False) -> list[Job]:
    """Validate and number the jobs of ``rows`` (manifest rows, or one row per command-line video).

    ``defaults``: the command line's values (checked first: their errors are raised directly); ``base``:
    the folder relative manifest paths are relative to (None: command-line values, used as given);
    ``output``: the folder of outputs named by the ``name`` pattern (and of relative manifest outputs), or
    with ``single_output`` the output file of the only job; ``manifest``: the manifest file (never
    overwritten); ``problems``: those found while reading.

    Checks, for every job: the video opens, the trajectory parses and resolves against the video's frame
    count with the time edits, the options are valid, the prompt file reads, the depth file exists, the
    output is a video file that overwrites no input (nor its sidecar), and no two jobs share an output.
    All problems are raised together as :class:`InvalidJobs` (exit 3) before anything runs; for
    command-line inputs a single problem is raised as its own error (so ``inspatio rerender`` reports a
    bad video or trajectory as before).
    """
    defaults = defaults.checked()
    found = list(problems)
    drafts = _expand(rows, defaults, found)
    if defaults.depth is not None and len({d.values["video"] for d in drafts}) > 1:
        raise UsageError("--depth gives the depth of one video; with several videos put each one's depth "
                         "next to it (<stem>.depth.safetensors) or in the manifest's depth column")
    pattern = _name_pattern(name, [d.seed for d in drafts])
    if single_output and len(drafts) > 1:
        raise UsageError(f"{len(drafts)} outputs: -o must be a folder (the outputs are named by --name)", output)
    if not drafts and not found:
        raise ManifestError("there are no jobs", manifest)
    inputs = _Inputs()
    jobs = []
    for number, draft in enumerate(drafts, 1):
        try:
            jobs.append(_job(number, draft, defaults, inputs, base, output, pattern, single_output,
                             several=len(drafts) > 1))
        except InspatioError as exc:
            found.append(Problem(draft.line, exc))
        except OSError as exc:  # a name the file system refuses (too long, ...)
            found.append(Problem(draft.line, InputError(f"unusable path ({exc.strerror or exc})", exc.filename)))
    found += _conflicts(jobs, inputs, manifest)
    if found:
        if base is None and len(found) == 1:
            raise found[0].error
        raise InvalidJobs(found, manifest)
    return jobs


def _job(number: int, draft: _Draft, defaults: JobDefaults, inputs: _Inputs, base: Path | None,
         output: str | Path | None, pattern: str, single_output: bool, several: bool) -> Job:
    values = draft.values
    video = _under(base, values["video"])
    trajectory = _trajectory_reference(draft.trajectory, base) if "trajectory" in values else draft.trajectory
    _check_seed(draft.seed)
    camera = replace(defaults.camera, **{("fmt" if k == "format" else k): values[k] for k in CAMERA_KEYS
                                         if k in values})
    time_values = {k: values[k] for k in TIME_KEYS if k in values}
    if time_values:
        camera = replace(camera, time=TimeControl.from_options(**{**camera.time.describe(), **time_values}))
    fit = values.get("fit", defaults.fit)
    size = values.get("size", defaults.size)
    hw = check_size(size)
    crf = values.get("crf", defaults.crf)
    prompt, prompt_file = defaults.prompt, defaults.prompt_file
    if "prompt" in values or "prompt_file" in values:
        if "prompt" in values and "prompt_file" in values:
            raise UsageError("give either prompt or prompt_file, not both")
        prompt = values.get("prompt")
        prompt_file = _under(base, values["prompt_file"]) if "prompt_file" in values else None
    if prompt_file is not None:
        key = Path(prompt_file).resolve()
        if key not in inputs.prompts:
            inputs.prompts[key] = read_prompt_file(prompt_file)
    depth = _under(base, values["depth"]) if "depth" in values else defaults.depth
    if depth is not None and not Path(depth).is_file():
        raise InputError("no such depth file", depth)
    info = inputs.probe(video)
    source = inputs.trajectory(trajectory, camera)
    frames = len(source.resolve(info.frame_count, camera.time, fps=info.fps, size=hw))
    if "output" in values:
        target = _under(Path(output) if output is not None else base, values["output"])
    elif output is None:
        raise UsageError("no output: add an 'output' column or give -o DIR")
    elif single_output:
        target = Path(output)
    else:
        target = Path(output) / _output_name(pattern, video, trajectory, draft.seed, number)
    if target.suffix.lower() not in VIDEO_SUFFIXES:
        raise UsageError(f"the output must be a video file ({', '.join(VIDEO_SUFFIXES)})", target)
    target.exists()  # raises OSError for a name the file system refuses, reported as a problem by plan_jobs
    if "save_condition" in values:
        condition = _under(base, values["save_condition"])
        condition.exists()  # as for the output
    elif defaults.save_condition is not None:
        condition = Path(defaults.save_condition) / target.stem if several else Path(defaults.save_condition)
    else:
        condition = None
    return Job(number, draft.line, video, trajectory, target, draft.seed, prompt,
               None if prompt_file is None else Path(prompt_file), camera,
               None if depth is None else Path(depth), fit, size, crf, values.get("audio", defaults.audio),
               values.get("skip_bad_frames", defaults.skip_bad_frames),
               condition, frames, len(chunk_plan(padded_length(frames))))


def _conflicts(jobs: Sequence[Job], inputs: _Inputs, manifest: Path | None) -> list[Problem]:
    """Outputs (or their sidecars, or condition folders) shared by two jobs, and outputs that would
    overwrite an input of any job or the manifest."""
    sources: dict[Path, str] = {p: "a source video" for p in inputs.probes}
    sources.update({p: "a prompt file" for p in inputs.prompts})
    for job in jobs:
        if Path(job.trajectory).is_file():
            sources[Path(job.trajectory).resolve()] = "a trajectory file"
        if job.depth is not None:
            sources[job.depth.resolve()] = "a depth file"
    if manifest is not None:
        sources[manifest.resolve()] = "the manifest"
    problems: list[Problem] = []
    claimed: dict[Path, Job] = {}
    for job in jobs:
        before = len(problems)
        owned = [(job.output.resolve(), "output"), (job.sidecar.resolve(), "sidecar")]
        if job.save_condition is not None:
            owned.append((job.save_condition.resolve(), "condition folder"))
        for path, what in owned:
            if len(problems) > before:
                break  # one problem per job: a clashing output also clashes by its sidecar
            if path in sources:
                problems.append(Problem(job.line, UsageError(f"the {what} would overwrite {sources[path]}",
                                                             job.output)))
            elif path in claimed:
                other = claimed[path]
                where = f"line {other.line}" if other.line is not None else f"job {other.number}"
                problems.append(Problem(job.line, InputError(f"the {what} is also job {other.number}'s "
                                                             f"({where}); give each job its own output",
                                                             job.output)))
            else:
                claimed[path] = job
    return problems


def output_is_folder(output: str | Path) -> bool:
    """Whether ``-o`` names a folder: it ends with a path separator, is an existing folder or has no suffix."""
    text = str(output)
    return text.endswith(("/", os.sep)) or Path(text).is_dir() or not Path(text).suffix


def plan_inputs(videos: Sequence[str | Path], defaults: JobDefaults, output: str | Path,
                name: str | None = None) -> list[Job]:
    """The command line's jobs: every video x ``defaults.trajectories`` x ``defaults.seeds``, validated by
    :func:`plan_jobs`. ``output`` is the output file of a single job, or (see :func:`output_is_folder`) the
    folder of outputs named by the ``name`` pattern (default ``{video}__{trajectory}[__{seed}].mp4``)."""
    rows = [Row(None, {"video": str(v)}, False) for v in videos]
    return plan_jobs(rows, defaults, output=output, name=name, single_output=not output_is_folder(output))


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` (1 <= K <= N) -> (K, N); :class:`UsageError` otherwise."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must be K/N (e.g. 2/4), got {text!r}") from None
    if not 1 <= k <= n:
        raise UsageError(f"--shard {text}: K must be from 1 to N")
    return k, n


def select_shard(jobs: Sequence[Job], shard: tuple[int, int] | None) -> list[Job]:
    """Shard K of N: jobs number K, K+N, K+2N, ... of the validated list. The N shards together hold
    every job exactly once, whatever the order in which they run."""
    if shard is None:
        return list(jobs)
    k, n = shard
    return [job for job in jobs if (job.number - 1) % n == k - 1]


# --------------------------------------------------------------------------------------------------
# Resume and estimates


def read_sidecar(job: Job) -> dict[str, Any] | None:
    """The sidecar object of ``job``'s output, or None when missing or unreadable."""
    try:
        data = json.loads(job.sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == SIDECAR_FORMAT else None


def is_finished(job: Job, renderer: Rerenderer) -> bool:
    """Whether ``job`` need not run again: its output exists and its sidecar records the settings
    fingerprint this job would have (same video, trajectory, depth, prompt, seed, options and weights)."""
    if not job.output.is_file():
        return False
    recorded = read_sidecar(job)
    return recorded is not None and recorded.get("fingerprint") == renderer.fingerprint(
        job.video, job.trajectory, **job.settings_args())


@dataclass
class Estimate:
    """What a list of jobs will cost. ``seconds``: from the rate measured by finished renders with the
    same device type, decoder and precision (their sidecars next to the outputs), scaled by pixels; None
    when there is no such measurement yet. Memory: the weights each phase holds (``weights``: bytes by
    phase, each freed before the next) and the peak measured by those renders (``measured_peak``)."""

    jobs: int
    frames: int
    chunks: int
    seconds: float | None
    rate: float | None
    measured_from: int
    weights: dict[str, int]
    measured_peak: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"jobs": self.jobs, "frames": self.frames, "chunks": self.chunks,
                "seconds": None if self.seconds is None else round(self.seconds, 1),
                "frames_per_second": None if self.rate is None else round(self.rate, 3),
                "measured_from": self.measured_from, "weights_bytes": self.weights,
                "measured_peak_bytes": self.measured_peak}


def _sidecars_near(jobs: Sequence[Job], limit: int = 200) -> list[dict[str, Any]]:
    """Render sidecars in the jobs' output folders (at most ``limit`` files read)."""
    found = []
    for folder in sorted({job.output.parent for job in jobs}):
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
            if len(found) >= limit or TEMP_MARK in path.name:
                break
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and data.get("format") == SIDECAR_FORMAT:
                found.append(data)
    return found


def _resident_bytes(path: Path, dtype: torch.dtype | None) -> int:
    """Bytes a weight file occupies once loaded: parameters x ``dtype``'s size for a ``.safetensors`` file
    (read from its header), else the file's size."""
    if path.suffix == ".safetensors" and dtype is not None:
        count = sum(math.prod(shape) for shape, _ in read_header(path).values())
        return count * torch.empty((), dtype=dtype).element_size()
    return path.stat().st_size


def estimate(jobs: Sequence[Job], renderer: Rerenderer, *, near: Sequence[Job] = ()) -> Estimate:
    """Time and memory for rendering ``jobs`` with ``renderer`` (see :class:`Estimate`), measured by the
    sidecars in the output folders of ``jobs`` and ``near`` (e.g. the finished jobs); loads no model."""
    pixels = sum(job.frames * job.canvas[0] * job.canvas[1] for job in jobs)
    done_pixels = spent = 0.0
    peaks = []
    for data in _sidecars_near([*jobs, *near]):
        settings, memory = data.get("settings", {}), data.get("peak_memory", {})
        same = (settings.get("decoder") == renderer.decoder and settings.get("dtype") == renderer.dtype_name
                and str(memory.get("device", "")).split(":")[0] == renderer.device.type)
        seconds = data.get("seconds", {})
        busy = seconds.get("total", 0.0) - seconds.get("load", 0.0)
        if not same or busy <= 0:
            continue
        size = settings.get("size", [0, 0])
        done_pixels += data.get("frames", 0) * size[0] * size[1]
        spent += busy
        stages = memory.get("stages") or {}
        peaks.append(max(stages.values()) if stages else memory.get("process_peak_rss", 0))
    pixel_rate = done_pixels / spent if spent > 0 and done_pixels > 0 else None
    seconds = None if pixel_rate is None else pixels / pixel_rate
    weights: dict[str, int] = {}
    for phase, names, dtype in (("render", ("generator", renderer.autoencoder_weights), renderer.dtype),
                                ("text", ("text-encoder",), None)):
        paths = [registry.locate(registry.entry(n), renderer.weights_dir) for n in names]
        weights[phase] = sum(_resident_bytes(p, dtype) for p in paths if p is not None)
    needed = {n for job in jobs for n in depth_weights_needed(job.video, job.depth, fit=job.fit, size=job.canvas)}
    depth_paths = [registry.locate(registry.entry(n), renderer.weights_dir) for n in sorted(needed)]
    weights["depth"] = sum(p.stat().st_size for p in depth_paths if p is not None)
    frames = sum(job.frames for job in jobs)
    rate = frames / seconds if seconds else None
    return Estimate(len(jobs), frames, sum(job.chunks for job in jobs), seconds, rate, len(peaks), weights,
                    max(peaks) if peaks else None)


# --------------------------------------------------------------------------------------------------
# Running


@dataclass
class Outcome:
    """What happened to one job: ``status`` is ``done``, ``skipped`` (already finished), ``failed`` or
    ``not_run`` (after ``fail_fast`` stopped the batch); ``error`` the failure's one-line message and
    ``exit_code`` its code."""

    job: Job
    status: str
    seconds: float = 0.0
    result: RerenderResult | None = None
    error: str | None = None
    exit_code: int = 0


@dataclass
class BatchSummary:
    """Outcomes of :func:`run_jobs` in job order, with the total wall time."""

    outcomes: list[Outcome]
    seconds: float
    total: int
    shard: tuple[int, int] | None = None

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def as_dict(self) -> dict[str, Any]:
        """The ``summary`` event: counts by status, frames rendered, seconds, the shard and the failures."""
        return {"jobs": len(self.outcomes), "total_jobs": self.total,
                "shard": None if self.shard is None else f"{self.shard[0]}/{self.shard[1]}",
                **{s: self.count(s) for s in ("done", "skipped", "failed", "not_run")},
                "frames": sum(o.result.frames for o in self.outcomes if o.result is not None),
                "seconds": round(self.seconds, 3),
                "failures": [{"job": o.job.number, "output": str(o.job.output), "error": o.error}
                             for o in self.failed]}


class _JobReporter(Reporter):
    """The reporter a render sees: prints like ``parent``; its events are either forwarded (tagged with
    the job number when ``tag``) or, for batches, reduced to ``chunk_done`` and ``warning`` events."""

    def __init__(self, parent: Reporter, job: Job | None, forward: bool, tag: bool):
        super().__init__(parent.mode, parent.console, parent.stdout)
        self.parent, self.job, self.forward, self.tag = parent, job, forward, tag

    def event(self, kind: str, **data: Any) -> None:
        number = None if self.job is None else self.job.number
        if self.forward:
            self.parent.event(kind, **({"job": number} if self.tag and number is not None else {}), **data)
        elif kind == "progress" and data.get("stage") == "rerender" and "chunk" in data:
            self.parent.event("chunk_done", job=number, chunk=data["chunk"], chunks=data["chunks"],
                              frames_done=data["done"], frames=data["total"])
        elif kind == "warning":
            self.parent.event("warning", job=number, **data)


class _Run:
    """State of one :func:`run_jobs` call."""

    def __init__(self, jobs: Sequence[Job], reporter: Reporter, *, isolate: bool, fail_fast: bool,
                 job_events: bool, forward_events: bool, total: int):
        self.jobs, self.reporter = list(jobs), reporter
        self.isolate, self.fail_fast, self.job_events, self.forward = isolate, fail_fast, job_events, forward_events
        self.total = total
        self.outcomes: dict[int, Outcome] = {}
        self.stopped = False

    def for_job(self, job: Job | None) -> _JobReporter:
        return _JobReporter(self.reporter, job, self.forward, self.job_events)

    def tell(self, kind: str, job: Job, text: str, **data: Any) -> None:
        if self.job_events:
            self.reporter.event(kind, **job.describe(), **data)
            self.reporter.info(f"[{job.number}/{self.total}] {text}")

    def pending(self) -> list[Job]:
        return [job for job in self.jobs if job.number not in self.outcomes and not self.stopped]

    def fail(self, job: Job, exc: BaseException, started: float) -> None:
        """Record a failure (one line on stderr, a ``job_failed`` event); re-raise it when not isolating."""
        if isinstance(exc, Interrupted) or not self.isolate:
            raise exc
        error = exc if isinstance(exc, InspatioError) else out_of_memory(exc)
        if error is not None:
            message, code = error.one_line(), error.exit_code
        else:
            message, code = f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}", 1
        self.outcomes[job.number] = Outcome(job, "failed", time.perf_counter() - started, error=message,
                                            exit_code=code)
        self.reporter.error(f"job {job.number} ({job.output}): {message}")
        if self.job_events:
            self.reporter.event("job_failed", **job.describe(), error=message, exit_code=code,
                                error_type=type(exc).__name__)
        self.stopped = self.fail_fast

    def attempt(self, jobs: Sequence[Job], work: Callable[[], Any]) -> Any:
        """Run ``work`` on behalf of ``jobs`` (a depth or caption shared by them); on failure every one of
        them fails with the same error. Returns ``work``'s value, or None after a failure."""
        started = time.perf_counter()
        try:
            return work()
        except Exception as exc:  # noqa: BLE001 - isolated: reported per job, the batch goes on
            for job in jobs:
                self.fail(job, exc, started)
            return None


def run_jobs(jobs: Sequence[Job], renderer: Rerenderer, *, force: bool = False, fail_fast: bool = False,
             isolate: bool = True, job_events: bool = True, forward_events: bool = False,
             total: int | None = None, shard: tuple[int, int] | None = None,
             reporter: Reporter | None = None) -> BatchSummary:
    """Render ``jobs`` (validated by :func:`plan_jobs`, possibly one shard) with ``renderer``; see the module
    docstring for the phases.

    ``force``: redo finished jobs; ``fail_fast``: stop after the first failure (the rest are ``not_run``);
    ``isolate=False``: re-raise a job's error instead of reporting it (a single ``inspatio rerender``);
    ``job_events``: emit ``job_started``/``chunk_done``/``job_done``/``job_failed``/``job_skipped``/
    ``summary`` events and one human line per job; ``forward_events``: pass the renders' own events (progress,
    result objects: ``inspatio rerender``) through, tagged with the job number when ``job_events`` is on,
    instead of reducing them to ``chunk_done`` and ``warning`` events; ``total``/``shard``: the whole list's
    size and the shard, for numbering and the summary. Missing weights (any job's) raise
    :class:`WeightsError` before any work; an interruption (Ctrl-C, SIGTERM) stops the batch.
    """
    reporter = reporter or Reporter("silent")
    run = _Run(jobs, reporter, isolate=isolate, fail_fast=fail_fast, job_events=job_events,
               forward_events=forward_events, total=total or len(jobs))
    started = time.perf_counter()
    own_reporter = renderer.reporter
    try:
        for job in jobs:
            if not force and is_finished(job, renderer):
                run.outcomes[job.number] = Outcome(job, "skipped")
                run.tell("job_skipped", job, f"skipped {job.output}: finished with the same settings",
                         reason="finished")
        todo = run.pending()
        renderer.setup = StageMeter(renderer.device)
        if todo:
            check_weights(todo, renderer)
            with renderer.setup("depth"):
                _prepare_depth(run, renderer)
            with renderer.setup("prompts"):
                _prepare_prompts(run, renderer)
            if run.pending():
                renderer.reporter = run.for_job(None)
                with renderer.setup("load"):
                    renderer.load_models()
        for job in run.pending():
            if run.stopped:
                break
            _render(run, job, renderer)
    finally:
        renderer.reporter = own_reporter
    for job in jobs:
        run.outcomes.setdefault(job.number, Outcome(job, "not_run"))
    summary = BatchSummary([run.outcomes[j.number] for j in jobs], time.perf_counter() - started, run.total, shard)
    if job_events:
        reporter.event("summary", **summary.as_dict())
        reporter.info(f"{summary.count('done')} rendered, {summary.count('skipped')} skipped, "
                      f"{summary.count('failed')} failed, {summary.count('not_run')} not run "
                      f"in {summary.seconds:.1f} s")
    return summary


def check_weights(jobs: Sequence[Job], renderer: Rerenderer) -> None:
    """Every weight file any of ``jobs`` needs, checked at once (one :class:`WeightsError` lists them all)."""
    names: dict[str, None] = {}
    for job in jobs:
        names.update(dict.fromkeys(renderer.required_weights(job.video, depth=job.depth, prompt=job.prompt,
                                                             prompt_file=job.prompt_file, fit=job.fit,
                                                             size=job.size)))
    registry.resolve(list(names), renderer.weights_dir, purpose="for this batch")


def _prepare_depth(run: _Run, renderer: Rerenderer) -> None:
    """Estimate (and cache) the depth of each video that needs it, once for all of its jobs."""
    groups: dict[tuple, list[Job]] = {}
    for job in run.pending():
        if depth_weights_needed(job.video, job.depth, fit=job.fit, size=job.canvas):
            groups.setdefault((job.video.resolve(), job.fit, job.canvas), []).append(job)
    for index, group in enumerate(groups.values(), 1):
        first = group[0]
        run.reporter.info(f"depth {index}/{len(groups)}: {first.video}")
        run.attempt(group, lambda: resolve_depth(first.video, None, fit=first.fit, size=first.canvas,
                                                 weights_dir=renderer.weights_dir, device=str(renderer.device),
                                                 skip_bad_frames=first.skip_bad_frames,
                                                 reporter=run.for_job(first)))


def _prepare_prompts(run: _Run, renderer: Rerenderer) -> None:
    """Caption the videos of jobs without a prompt (when the caption extra is installed) with one
    captioner, then embed every distinct prompt with one text encoder load, before the generator."""
    texts: dict[int, str] = {}
    uncaptioned: dict[Path, list[Job]] = {}
    for job in run.pending():
        if job.prompt is not None or job.prompt_file is not None:
            texts[job.number] = job.prompt if job.prompt is not None else read_prompt_file(job.prompt_file)
        elif renderer.can_caption():
            uncaptioned.setdefault(job.video.resolve(), []).append(job)
        else:
            texts[job.number] = ""
    if uncaptioned:
        reporter = run.for_job(None)
        with captioning.Captioner(weights_dir=renderer.weights_dir, reporter=reporter,
                                  device=resolve_text_device(renderer.text_device_name, reporter)) as captioner:
            for group in uncaptioned.values():
                found = run.attempt(group, lambda: captioner.caption(group[0].video))
                for job in group if found is not None else ():
                    texts[job.number] = found.text
    distinct = sorted({texts[job.number] for job in run.pending() if job.number in texts})
    if distinct:
        renderer.reporter = run.for_job(None)
        renderer.embed_prompts(distinct)


def _render(run: _Run, job: Job, renderer: Rerenderer) -> None:
    started = time.perf_counter()
    run.tell("job_started", job, f"{job.video} x {job.trajectory} -> {job.output} ({job.frames} frames)")
    renderer.reporter = run.for_job(job)
    try:
        result = renderer.render(job.video, job.trajectory, job.output, **job.render_args())
    except Exception as exc:  # noqa: BLE001 - isolated: reported, the batch goes on
        run.fail(job, exc, started)
        return
    seconds = time.perf_counter() - started
    run.outcomes[job.number] = Outcome(job, "done", seconds, result)
    run.tell("job_done", job, f"done {job.output} ({result.frames} frames in {seconds:.1f} s)",
             sidecar=str(result.sidecar), seconds=round(seconds, 3),
             frames_per_second=round(result.frames_per_second, 4), warnings=len(result.warnings))


__all__ = ["ALL_KEYS", "BATCH_WIDE_KEYS", "BatchSummary", "DEFAULT_NAME", "Estimate", "InvalidJobs", "JOB_KEYS",
           "Job", "JobDefaults", "MANIFEST_KINDS", "Manifest", "OPTION_KEYS", "Outcome", "Problem", "Row",
           "check_weights", "estimate", "is_finished", "output_is_folder", "parse_shard", "plan_inputs", "plan_jobs",
           "read_manifest", "read_sidecar", "run_jobs", "select_shard"]
