"""Running a validated job list with one :class:`Rerenderer`, in phases so that the big models never share
memory and each is built once: finished jobs are skipped (``force`` redoes them); every weight file of the
remaining jobs is checked; the depth of each video that needs an estimate is computed once (and cached, so
its other jobs read it); captions and prompt embeddings are made for all distinct prompts with one text
encoder load; then the generator and autoencoder are loaded and the jobs rendered in order. A failing job
is reported and the others go on (``fail_fast`` stops at the first)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .. import caption as captioning
from ..weights import hub
from ..errors import InspatioError, Interrupted, out_of_memory, pending_interrupt
from ..files import real_path
from ..meter import StageMeter
from ..progress import Reporter
from ..render.needs import DEFAULT_GENERATOR
from ..render.rerender import Rerenderer, RerenderResult
from ..scene import depth_weights_needed, resolve_depth
from ..text import read_prompt_file, resolve_text_device
from .jobs import Job
from .resume import refuse_foreign_outputs, split_finished


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
        interrupted = pending_interrupt()
        if interrupted is not None:  # the signal's exception, turned into another on its way up
            raise interrupted from exc
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

    ``force``: redo finished jobs and replace existing outputs (without it, an existing output of a job left
    to do is refused before any work unless it is the job's own earlier render:
    :func:`.resume.refuse_foreign_outputs`); ``fail_fast``: stop after the
    first failure (the rest are ``not_run``);
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
        renderer.setup = StageMeter(renderer.device)
        _prepare(run, renderer, force)
        if run.pending():
            _load(run, renderer)
        for job in run.pending():
            if run.stopped:
                break
            _render(run, job, renderer)
    finally:
        renderer.reporter = own_reporter
    return summarize(jobs, run.outcomes, time.perf_counter() - started, run.total, shard,
                     reporter if job_events else None)


def summarize(jobs: Sequence[Job], outcomes: dict[int, Outcome], seconds: float, total: int,
              shard: tuple[int, int] | None, reporter: Reporter | None) -> BatchSummary:
    """The :class:`BatchSummary` of ``jobs`` from their ``outcomes`` by job number (a job without one was
    not run), reported as the ``summary`` event and one line when ``reporter`` is given."""
    summary = BatchSummary([outcomes.get(j.number) or Outcome(j, "not_run") for j in jobs], seconds, total, shard)
    if reporter is not None:
        reporter.event("summary", **summary.as_dict())
        reporter.info(f"{summary.count('done')} rendered, {summary.count('skipped')} skipped, "
                      f"{summary.count('failed')} failed, {summary.count('not_run')} not run "
                      f"in {summary.seconds:.1f} s")
    return summary


def prepare_jobs(jobs: Sequence[Job], renderer: Rerenderer, reporter: Reporter, *, force: bool = False,
                 total: int | None = None) -> dict[int, Outcome]:
    """The work :func:`run_jobs` does before its renders, for a pool of renderers that share the output
    folders and caches (the Ray path runs it on one worker): finished jobs skipped, weights checked, depth
    estimated once per video and every prompt embedded with one text encoder load. Returns the outcomes
    known so far (``skipped`` and ``failed``) by job number; the other jobs are ready to render."""
    run = _Run(jobs, reporter, isolate=True, fail_fast=False, job_events=True, forward_events=False,
               total=total or len(jobs))
    _prepare(run, renderer, force)
    return run.outcomes


def render_job(job: Job, renderer: Rerenderer, reporter: Reporter, *, total: int) -> Outcome:
    """Render one prepared job (:func:`prepare_jobs`) as :func:`run_jobs` renders each of its jobs, the
    models loaded on the first call; its events (``job_started``, ``chunk_done``, ``job_done`` or
    ``job_failed``) go to ``reporter``, a failure is returned as a ``failed`` outcome."""
    run = _Run([job], reporter, isolate=True, fail_fast=False, job_events=True, forward_events=False, total=total)
    if len(renderer.models.held(renderer.decoder)) < 2:
        _load(run, renderer)
    _render(run, job, renderer)
    return run.outcomes[job.number]


def _prepare(run: _Run, renderer: Rerenderer, force: bool) -> None:
    """Skip the finished jobs (unless ``force``), check the weights of the others and refuse existing files
    among their outputs that are not their own earlier renders (unless ``force``), then estimate their depth
    and embed their prompts."""
    for job in split_finished(run.jobs, renderer, force=force)[0]:
        run.outcomes[job.number] = Outcome(job, "skipped")
        run.tell("job_skipped", job, f"skipped {job.output}: finished with the same settings", reason="finished")
    todo = run.pending()
    if todo:
        check_pending(todo, renderer, force=force)
        with renderer.setup("depth"):
            _prepare_depth(run, renderer)
        with renderer.setup("prompts"):
            _prepare_prompts(run, renderer)


def _load(run: _Run, renderer: Rerenderer) -> None:
    """Load the first pending job's generator and the autoencoder (once per renderer: later calls find them
    held; a job of the other ``--model`` swaps the generator when it renders)."""
    renderer.reporter = run.for_job(None)
    pending = run.pending()
    with renderer.setup("load"):
        renderer.load_models(model=pending[0].model if pending else DEFAULT_GENERATOR)


def check_pending(jobs: Sequence[Job], renderer: Rerenderer, *, force: bool = False) -> None:
    """Before any work on ``jobs`` (the jobs left to do): every weight file they need (:func:`check_weights`)
    and, unless ``force``, no output replacing a file the batch did not make
    (:func:`.resume.refuse_foreign_outputs`). What a run and a dry run both check."""
    check_weights(jobs, renderer)
    if not force:
        refuse_foreign_outputs(jobs)


def check_weights(jobs: Sequence[Job], renderer: Rerenderer) -> None:
    """Every weight file any of ``jobs`` needs, checked at once (one :class:`WeightsError` lists them all)."""
    names: dict[str, None] = {}
    for job in jobs:
        names.update(dict.fromkeys(renderer.required_weights(job.source, depth=job.depth, prompt=job.prompt,
                                                             prompt_file=job.prompt_file, fit=job.fit,
                                                             size=job.size, model=job.model)))
    hub.resolve(list(names), renderer.weights_dir, purpose="for this batch")


def _prepare_depth(run: _Run, renderer: Rerenderer) -> None:
    """Estimate (and cache) the depth of each video that needs it, once for all of its jobs."""
    groups: dict[tuple, list[Job]] = {}
    for job in run.pending():
        if depth_weights_needed(job.source, job.depth, fit=job.fit, size=job.canvas):
            groups.setdefault((real_path(job.video), job.fit, job.canvas), []).append(job)
    for index, group in enumerate(groups.values(), 1):
        first = group[0]
        run.reporter.info(f"depth {index}/{len(groups)}: {first.video}")
        run.attempt(group, lambda: resolve_depth(first.source, None, fit=first.fit, size=first.canvas,
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
            uncaptioned.setdefault(real_path(job.video), []).append(job)
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
        result = renderer.render(job.source, job.trajectory, job.output, **job.render_args(),
                                 overwrite=True)  # the batch refused existing outputs when it planned them
    except Exception as exc:  # noqa: BLE001 - isolated: reported, the batch goes on
        run.fail(job, exc, started)
        return
    seconds = time.perf_counter() - started
    run.outcomes[job.number] = Outcome(job, "done", seconds, result)
    run.tell("job_done", job, f"done {job.output} ({result.frames} frames in {seconds:.1f} s)",
             sidecar=str(result.sidecar), seconds=round(seconds, 3),
             frames_per_second=round(result.frames_per_second, 4), warnings=len(result.warnings))
