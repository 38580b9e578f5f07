"""Planning a batch: the rows of a manifest (or the command line's videos) become numbered, validated
:class:`Job` objects. A row without ``trajectory`` (or ``seed``) expands to every default trajectory (seed);
a row without ``output`` is named by the ``--name`` pattern in ``-o DIR``. Every job is checked before
anything runs (inputs open, the trajectory resolves, no output overwrites an input or another job's
output) and all problems are reported at once."""

from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Sequence, TextIO

from ..cameras import CameraOptions, TimeControl, chunk_plan
from ..cameras.formats.moves import is_inline
from ..choices import DEFAULT_NAME, VIDEO_SUFFIXES, check_size
from ..errors import InputError, InspatioError, ManifestError, UsageError
from ..files import LOOP, OutputClaims, is_stream, link_loop, real_path
from ..render.plan import planned_outputs
from ..scene import padded_length, source_camera, trajectory_frames
from ..text import read_prompt_file
from ..video import probe, with_fps
from ..video.multiview import Views, open_views, source_info
from .jobs import Job, JobDefaults, check_seed
from .keys import ALL_KEYS, CAMERA_KEYS, TIME_KEYS
from .manifest import InvalidJobs, Problem, Row, read_manifest

NAME_FIELDS = ("video", "trajectory", "seed", "index")


@dataclass
class _Inputs:
    """What validation reads or computes once per distinct input, however many jobs name it: resolved paths,
    probes, trajectory files, prompt files and output lengths (a trajectory resolved against a video)."""

    paths: dict[Path, Path] = field(default_factory=dict)
    probes: dict[Path, Any] = field(default_factory=dict)
    sources: dict[tuple, Any] = field(default_factory=dict)
    prompts: dict[Path, str] = field(default_factory=dict)
    lengths: dict[tuple, Any] = field(default_factory=dict)

    def real(self, path: Path) -> Path:
        """``path`` resolved (:func:`~inspatio_cli.files.real_path`), asked of the file system once per path
        as written."""
        if path not in self.paths:
            self.paths[path] = real_path(path)
        return self.paths[path]

    def probe(self, video: Path):
        return _once(self.probes, self.real(video), lambda: probe(video))

    def trajectory(self, reference: str, camera: CameraOptions):
        return _once(self.sources, _source_key(reference, camera), lambda: camera.load(reference))

    def frames(self, video: Path | Views, reference: str, camera: CameraOptions, hw: tuple[int, int],
               image: tuple[int | None, float | None] = (None, None)) -> int:
        """The output length of trajectory ``reference`` resolved against ``video``'s frame count and rate
        with ``camera``'s time edits at the canvas ``hw`` (H, W); ``image``: the ``frames`` and ``fps`` of
        an image source (:func:`~inspatio_cli.scene.source_camera`; both refused for a video); ``video`` may
        be views."""
        info = source_info(video, image[1]) if isinstance(video, Views) else with_fps(self.probe(video), image[1])
        source = self.trajectory(reference, camera)
        place = video.paths if isinstance(video, Views) else self.real(video)
        key = (place, _source_key(reference, camera), camera.time, hw, image)

        def length() -> int:
            timed = source_camera(info, source, camera, image[0])
            return len(source.resolve(trajectory_frames(info), timed.time, fps=info.fps, size=hw))

        return _once(self.lengths, key, length)


def _source_key(reference: str, camera: CameraOptions) -> tuple:
    """What a loaded trajectory depends on: the reference and the options that read it."""
    return (reference, camera.fmt, camera.convention, camera.direction, camera.scale, camera.anchor,
            camera.rotation_only, camera.resample, camera.align_to, camera.relative_to_source)


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


NAME_SAMPLE = {"video": "clip", "trajectory": "orbit_left", "seed": 0, "index": 1}
"""Values of each ``--name`` field's type, to try a pattern's format specs on before any work."""
NAME_MAX = 255
"""The longest file name (in bytes) the usual file systems take."""


def _name_pattern(name: str | None, seeds: Iterable[int]) -> str:
    """The ``--name`` pattern (default :data:`~inspatio_cli.choices.DEFAULT_NAME`, with ``__{seed}`` for
    several seeds), checked before any work: only the fields of :data:`NAME_FIELDS`, no nested fields in a
    format spec, and every spec valid for its field's type and short enough to make a file name
    (:class:`UsageError`, exit 2, otherwise)."""
    pattern = name or DEFAULT_NAME + ("__{seed}" if len(set(seeds)) > 1 else "")

    def refuse(problem: str) -> UsageError:
        return UsageError(f"--name {pattern!r}: {problem} (fields: "
                          f"{', '.join('{' + f + '}' for f in NAME_FIELDS)}, e.g. {{seed:03d}})")

    try:
        parts = list(string.Formatter().parse(pattern))
    except ValueError as exc:
        raise refuse(str(exc)) from None
    for _, item, spec, conversion in parts:
        if item is None:
            continue
        if item not in NAME_FIELDS:
            raise refuse(f"unknown field {{{item}}}")
        if "{" in (spec or ""):
            raise refuse(f"a nested field in the format of {{{item}}}")
        if any(len(number) > 3 for number in re.findall(r"\d+", spec or "")):
            raise refuse(f"the width or precision of {{{item}}} is too large")
        if conversion not in (None, "s", "r", "a"):
            raise refuse(f"unknown conversion !{conversion} of {{{item}}} (use !s, !r or !a)")
    try:
        sample = pattern.format(**NAME_SAMPLE)
    except (ValueError, TypeError) as exc:
        raise refuse(" ".join(str(exc).split())) from None
    if len(os.fsencode(sample)) > NAME_MAX:
        raise refuse(f"makes names longer than {NAME_MAX} bytes")
    return pattern


def _trajectory_name(trajectory: str) -> str:
    """``{trajectory}`` in an output name: a file's or preset's stem; an inline path (``moves:...``) with
    every run of characters a file name should not hold (``:``, ``*``, ``,``, ...) made one ``-``."""
    if is_inline(trajectory):
        return re.sub(r"[^A-Za-z0-9._+-]+", "-", trajectory).strip("-")
    return Path(trajectory).stem


def _output_name(pattern: str, video: Path, trajectory: str, seed: int, number: int) -> str:
    name = pattern.format(video=video.stem, trajectory=_trajectory_name(trajectory), seed=seed, index=number)
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
        missing = [k for k in ("video",) if k not in values and "views" not in values]
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
    if defaults.depth is not None and len({str(d.values.get("video", d.values.get("views"))) for d in drafts}) > 1:
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


def plan_manifest(source: str | Path, defaults: JobDefaults, *, output: str | Path | None = None,
                  name: str | None = None, stdin: BinaryIO | TextIO | None = None) -> list[Job]:
    """The validated jobs of the manifest ``source`` (a file, or ``-`` for standard input / ``stdin``):
    :func:`read_manifest` then :func:`plan_jobs`, exactly as ``inspatio batch`` plans them, so a job's
    :attr:`Job.number` and output are the same in every process that plans the same manifest.
    :class:`InvalidJobs` lists every problem with its line."""
    manifest = read_manifest(source, stdin=stdin)
    return plan_jobs(manifest.rows, defaults, base=manifest.base, output=output, name=name,
                     manifest=manifest.path, problems=manifest.problems)


def _job(number: int, draft: _Draft, defaults: JobDefaults, inputs: _Inputs, base: Path | None,
         output: str | Path | None, pattern: str, single_output: bool, several: bool) -> Job:
    values = draft.values
    if "video" in values and "views" in values:
        raise UsageError("give either video or views, not both")
    views = open_views([_under(base, v) for v in values["views"]]) if "views" in values else None
    video = views.paths[0] if views is not None else _under(base, values["video"])
    trajectory = _trajectory_reference(draft.trajectory, base) if "trajectory" in values else draft.trajectory
    check_seed(draft.seed)
    camera = replace(defaults.camera, **{("fmt" if k == "format" else k): values[k] for k in CAMERA_KEYS
                                         if k in values})
    if "align_to" in values:
        camera = replace(camera, align_to=str(_under(base, values["align_to"])))
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
        key = inputs.real(Path(prompt_file))
        if key not in inputs.prompts:
            inputs.prompts[key] = read_prompt_file(prompt_file)
        if is_stream(prompt_file):  # a pipe is read once: its jobs take the text
            prompt, prompt_file = inputs.prompts[key], None
    depth = _under(base, values["depth"]) if "depth" in values else defaults.depth
    if depth is not None and not Path(depth).is_file():
        raise InputError(LOOP if link_loop(depth) else "no such depth file", depth)
    image = (values.get("frames", defaults.frames), values.get("fps", defaults.fps))
    frames = inputs.frames(views or video, trajectory, camera, hw, image)
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
               condition, frames, len(chunk_plan(padded_length(frames))), *image,
               model=values.get("model", defaults.model), views=None if views is None else views.paths)


def _conflicts(jobs: Sequence[Job], inputs: _Inputs, manifest: Path | None) -> list[Problem]:
    """Outputs (videos, sidecars, condition videos) shared by two jobs, and outputs that would overwrite an
    input of any job or the manifest (by path, symbolic link or hard link: :class:`OutputClaims`)."""
    sources: dict[Path, str] = {p: "a source video" for p in inputs.probes}
    sources.update({p: "a prompt file" for p in inputs.prompts})
    trajectory_files: dict[str, bool] = {}
    for job in jobs:
        if job.trajectory not in trajectory_files:
            trajectory_files[job.trajectory] = Path(job.trajectory).is_file()
        if trajectory_files[job.trajectory]:
            sources[inputs.real(Path(job.trajectory))] = "a trajectory file"
        if job.depth is not None:
            sources[inputs.real(job.depth)] = "a depth file"
    if manifest is not None:
        sources[real_path(manifest)] = "the manifest"
    claims = OutputClaims(sources, overwrite=True)
    problems: list[Problem] = []
    for job in jobs:
        owner = f"job {job.number}'s ({f'line {job.line}' if job.line is not None else f'job {job.number}'})"
        for path, what in job_outputs(job):
            problem = claims.claim(path, what, owner)
            if problem is not None:  # one problem per job: a clashing output also clashes by its sidecar
                problems.append(Problem(job.line, problem))
                break
    return problems


def job_outputs(job: Job) -> list[tuple[Path, str]]:
    """Every file ``job`` writes, with what it is: the video, its sidecar and its condition videos."""
    return planned_outputs(job.output, sidecar=True, save_condition=job.save_condition)


def refuse_existing(jobs: Sequence[Job], flag: str) -> None:
    """Before any work: a :class:`UsageError` naming the first output of ``jobs`` that already exists and
    ``flag``, the option that allows replacing it (``--force`` for a batch, whose finished jobs are skipped
    before this check; ``--overwrite`` for ``inspatio rerender``)."""
    claims = OutputClaims({}, flag=flag)
    for job in jobs:
        for path, what in job_outputs(job):
            problem = claims.claim(path, what)
            if problem is not None:
                raise problem


def output_is_folder(output: str | Path) -> bool:
    """Whether ``-o`` names a folder: it ends with a path separator, is an existing folder or has no suffix."""
    text = str(output)
    return text.endswith(("/", os.sep)) or Path(text).is_dir() or not Path(text).suffix


def plan_inputs(videos: Sequence[str | Path], defaults: JobDefaults, output: str | Path,
                name: str | None = None, *, overwrite: bool = False, views: bool = False) -> list[Job]:
    """The command line's jobs: every video x ``defaults.trajectories`` x ``defaults.seeds``, validated by
    :func:`plan_jobs`. ``output`` is the output file of a single job, or (see :func:`output_is_folder`) the
    folder of outputs named by the ``name`` pattern (default ``{video}__{trajectory}[__{seed}].mp4``).
    Without ``overwrite``, an output that already exists is refused (:func:`refuse_existing`). ``views``:
    ``videos`` are the views of one scene (photos, or one folder), a single source."""
    rows = ([Row(None, {"views": [str(v) for v in videos]}, False)] if views else
            [Row(None, {"video": str(v)}, False) for v in videos])
    jobs = plan_jobs(rows, defaults, output=output, name=name, single_output=not output_is_folder(output))
    if not overwrite:
        refuse_existing(jobs, "--overwrite")
    return jobs
