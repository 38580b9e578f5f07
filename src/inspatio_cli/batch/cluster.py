"""Running a validated job list on a Ray cluster (``inspatio batch --ray``): one pool of
:class:`.worker.Worker` actors, one per GPU (or per CPU slot), each holding one :class:`Rerenderer`, pulling
jobs one at a time from the driver, so no worker waits on a straggler's share.

The jobs are validated and planned on the driver exactly as for a local batch (:func:`.plan.plan_jobs`);
the rest happens on the workers, whose devices may differ from the driver's: the first worker skips the
finished jobs (their fingerprints are a worker's, as in the sidecars), checks the weights, estimates each
video's depth and embeds every prompt once, into the caches every worker reads (:func:`.run.prepare_jobs`:
the big models never share a GPU and none is built twice); then every worker renders jobs through the same
atomic writers. A job whose worker dies is retried on another (``retries`` times, then reported failed)
and the dead worker replaced. Ctrl-C (or SIGTERM) cancels the running jobs at their next chunk (their
writers remove their temporary files) and stops the workers: nothing is left under a final name, and the
next run resumes.

The output folders, the weights and the caches (``INSPATIO_CACHE_DIR``) must be visible to every worker at
the same paths (one machine, or a shared file system); job paths are made absolute on the driver, and the
driver's ``INSPATIO_*`` variables are given to the workers. Ray is imported only here, on first use.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import InspatioError, RuntimeFailure, UsageError
from ..progress import Reporter
from .jobs import Job
from .run import BatchSummary, Outcome, summarize
from .worker import Worker

RAY_EXTRA = 'pip install "inspatio-cli[ray]"'
CANCEL_SECONDS = 30.0
"""How long an interrupted batch waits for its running jobs to unwind before it stops the workers."""
POLL_SECONDS = 0.2
"""How often the driver relays the workers' events while it waits for results."""


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a Ray batch runs. ``address``: ``local`` (start a cluster on this machine, with
    its CPUs and GPUs), ``auto`` (join the running cluster) or a cluster address (``ray://host:10001``);
    a Ray session already initialised in this process is used as it is. ``workers``: the pool size
    (default: one per GPU of the cluster, else one); ``gpus_per_worker``: GPUs each worker holds (default
    1 where the cluster has GPUs, else 0); ``retries``: how often a job whose worker died is run again."""

    address: str = "local"
    workers: int | None = None
    gpus_per_worker: float | None = None
    retries: int = 2

    def checked(self) -> "RayOptions":
        """These options, or :class:`UsageError` for a pool that cannot exist."""
        if self.workers is not None and self.workers < 1:
            raise UsageError(f"--workers must be at least 1, got {self.workers}")
        if self.gpus_per_worker is not None and self.gpus_per_worker < 0:
            raise UsageError(f"--gpus-per-worker must be 0 or more, got {self.gpus_per_worker}")
        if self.retries < 0:
            raise UsageError(f"retries must be 0 or more, got {self.retries}")
        return self


def ray_pool(address: str | None, workers: int | None = None,
             gpus_per_worker: float | None = None) -> RayOptions | None:
    """The checked options of ``--ray ADDRESS --workers N --gpus-per-worker G`` with Ray importable (None
    without ``--ray``); :class:`UsageError` otherwise, also for a pool size without an address."""
    if address is None:
        if workers is not None or gpus_per_worker is not None:
            raise UsageError("--workers and --gpus-per-worker need --ray")
        return None
    import_ray()
    return RayOptions(address, workers, gpus_per_worker).checked()


def import_ray() -> Any:
    """The ``ray`` module, or :class:`UsageError` naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs the optional 'ray' extra", hint=RAY_EXTRA) from None
    return ray


def run_on_ray(jobs: Sequence[Job], renderer_args: dict[str, Any], options: RayOptions = RayOptions(), *,
               force: bool = False, fail_fast: bool = False, total: int | None = None,
               shard: tuple[int, int] | None = None, reporter: Reporter | None = None) -> BatchSummary:
    """Render ``jobs`` (validated by :func:`.plan.plan_jobs`) on a pool of Ray workers, each built with
    :class:`Rerenderer`\\ ``(**renderer_args)``; the arguments and the summary are :func:`.run.run_jobs`'s.
    The events are a local batch's (``job_skipped``, ``job_started`` with the ``worker`` that runs it,
    ``chunk_done``, ``job_done``, ``job_failed``, ``warning``, ``summary``) plus ``job_retried`` when a
    worker died under a job; human mode shows one progress display. :class:`UsageError` without Ray."""
    ray = import_ray()
    options = options.checked()
    reporter = reporter or Reporter("silent")
    total = total or len(jobs)
    started = time.perf_counter()
    own_cluster = not ray.is_initialized()
    if own_cluster:
        ray.init(**_init_args(options))
    try:
        pool = Pool(ray, renderer_args, options, reporter, jobs, total)
        try:
            outcomes = pool.run(force, fail_fast)
        finally:
            pool.close()
    finally:
        if own_cluster:
            ray.shutdown()
    return summarize(jobs, outcomes, time.perf_counter() - started, total, shard, reporter)


def _init_args(options: RayOptions) -> dict[str, Any]:
    """``ray.init`` arguments: a local cluster with at least a CPU slot per worker, or the given address;
    the workers' own output stays in Ray's logs (their events come through the queue)."""
    common = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if options.address == "local":
        return dict(common, num_cpus=max(os.cpu_count() or 1, options.workers or 1))
    return dict(common, address=options.address)


def _absolute(job: Job) -> Job:
    """``job`` with absolute paths (a worker's current folder is not the driver's); a trajectory is a path
    only when it names a file, else a preset."""
    def whole(path: Path | None) -> Path | None:
        return None if path is None else path.absolute()

    trajectory = str(Path(job.trajectory).absolute()) if Path(job.trajectory).is_file() else job.trajectory
    return replace(job, video=job.video.absolute(), trajectory=trajectory, output=job.output.absolute(),
                   prompt_file=whole(job.prompt_file), depth=whole(job.depth),
                   save_condition=whole(job.save_condition),
                   views=None if job.views is None else tuple(path.absolute() for path in job.views))


class Pool:
    """The workers of one Ray batch, the queue of their events and the driver's display."""

    def __init__(self, ray: Any, renderer_args: dict[str, Any], options: RayOptions, reporter: Reporter,
                 jobs: Sequence[Job], total: int):
        from ray.util.queue import Queue

        self.ray, self.options, self.reporter, self.total = ray, options, reporter, total
        self.planned = {job.number: job for job in jobs}
        self.renderer_args = {**renderer_args, "weights_dir": None if renderer_args.get("weights_dir") is None
                              else str(Path(renderer_args["weights_dir"]).absolute())}
        gpus = ray.cluster_resources().get("GPU", 0)
        self.gpus = options.gpus_per_worker if options.gpus_per_worker is not None else (1 if gpus else 0)
        size = options.workers or (int(gpus // self.gpus) if self.gpus else 1)
        if size < 1:
            raise UsageError(f"the cluster has {gpus:g} GPU(s): too few for one worker of {self.gpus:g}")
        self.events = Queue(actor_options={"num_cpus": 0})
        env = {k: v for k, v in os.environ.items() if k.startswith("INSPATIO_")}
        self.actor = ray.remote(Worker)
        self.actor_options = dict(num_cpus=1, num_gpus=self.gpus, max_restarts=0, runtime_env={"env_vars": env})
        self.tag, self.started = uuid.uuid4().hex[:8], 0
        self.running: dict[Any, tuple[tuple[str, Any], Job | None]] = {}
        self.workers = [self.start() for _ in range(size)]
        self.display = Display(reporter)

    def start(self) -> tuple[str, Any]:
        """A new worker: (name, actor handle)."""
        self.started += 1
        name = f"inspatio-{self.tag}-{self.started}"
        actor = self.actor.options(name=name, **self.actor_options)
        return name, actor.remote(self.renderer_args, self.events, name)

    def run(self, force: bool, fail_fast: bool) -> dict[int, Outcome]:
        """Prepare the jobs on the first worker, then hand them out one at a time until every one has an
        outcome (or, with ``fail_fast``, until the first failure: the rest are not run). The outcomes, by
        job number, hold the jobs as planned (paths as the driver wrote them)."""
        jobs = [_absolute(job) for job in self.planned.values()]
        try:
            with self.display:
                outcomes = self.prepare(jobs, force)
                self.display.jobs(sum(job.number not in outcomes for job in jobs))
                self.dispatch(deque(job for job in jobs if job.number not in outcomes), outcomes, fail_fast)
                return {n: replace(o, job=self.planned[n]) for n, o in outcomes.items()}
        except BaseException:
            self.cancel()
            raise

    def prepare(self, jobs: list[Job], force: bool) -> dict[int, Outcome]:
        name, actor = self.workers[0]
        ref = actor.prepare.remote(jobs, force, self.total)
        self.running = {ref: (self.workers[0], None)}
        self.wait()
        del self.running[ref]
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, InspatioError):
                raise exc.cause from None
            raise RuntimeFailure(f"worker {name} failed while preparing the jobs: {exc.cause!r}") from None
        except self.ray.exceptions.RayActorError:
            raise RuntimeFailure(f"worker {name} died while preparing the jobs") from None

    def dispatch(self, todo: deque[Job], outcomes: dict[int, Outcome], fail_fast: bool) -> None:
        """Give each idle worker the next job; collect results, retry the jobs of dead workers."""
        idle = list(self.workers)
        tries: dict[int, int] = {}
        stopped = False
        while (todo and not stopped) or self.running:
            while idle and todo and not stopped:
                worker, job = idle.pop(0), todo.popleft()
                self.running[worker[1].render.remote(job, self.total)] = (worker, job)
            for ref in self.wait():
                worker, job = self.running.pop(ref)
                try:
                    outcome = self.ray.get(ref)
                except self.ray.exceptions.RayActorError:
                    self.workers.remove(worker)
                    tries[job.number] = tries.get(job.number, 0) + 1
                    retry = tries[job.number] <= self.options.retries
                    if retry:
                        self.retry(worker[0], job, tries[job.number])
                        todo.appendleft(job)
                    if todo:
                        self.workers.append(self.start())
                        idle.append(self.workers[-1])
                    if retry:
                        continue
                    outcome = self.failed(job, f"its worker died {tries[job.number]} time(s)")
                except self.ray.exceptions.RayTaskError as exc:
                    outcome = self.failed(job, f"internal error: {exc.cause!r}")
                    idle.append(worker)
                else:
                    idle.append(worker)
                outcomes[job.number] = outcome
                stopped = stopped or (fail_fast and outcome.status == "failed")

    def wait(self) -> list[Any]:
        """The finished of the running calls (at least one, or none when nothing runs), relaying the
        workers' events while waiting (and those the finished calls sent before they returned)."""
        ready: list[Any] = []
        while self.running and not ready:
            ready, _ = self.ray.wait(list(self.running), num_returns=1, timeout=POLL_SECONDS)
            self.relay()
        return ready

    def relay(self) -> None:
        """Report every event the workers have queued, on the driver's reporter and display."""
        for worker, kind, name, data in self.events.get_nowait_batch(self.events.qsize()):
            if kind == "info":
                self.reporter.info(name)
            elif kind == "error":
                self.reporter.error(name)
            else:
                if "line" in data:  # a job's facts: as planned, like a local batch's
                    data = {**data, **self.planned[data["job"]].describe()}
                if name == "job_started":
                    data = {**data, "worker": worker}
                elif name == "warning":
                    self.reporter.info(f"warning: job {data.get('job')}: {data.get('message')}")
                self.reporter.event(name, **data)
                self.display.event(name, data)

    def retry(self, worker: str, job: Job, attempt: int) -> None:
        message = f"worker {worker} died during the job; retrying it on another ({attempt}/{self.options.retries})"
        self.reporter.event("job_retried", **self.planned[job.number].describe(), worker=worker, attempt=attempt,
                            error=message)
        self.reporter.info(f"[{job.number}/{self.total}] {message}")
        self.display.event("job_retried", {"job": job.number})

    def failed(self, job: Job, message: str) -> Outcome:
        """A job the pool could not render: reported as a local batch reports a failure (exit code 5)."""
        planned = self.planned[job.number]
        self.reporter.error(f"job {job.number} ({planned.output}): {message}")
        self.reporter.event("job_failed", **planned.describe(), error=message, exit_code=RuntimeFailure.exit_code,
                            error_type=RuntimeFailure.__name__)
        self.display.event("job_failed", {"job": job.number})
        return Outcome(job, "failed", error=message, exit_code=RuntimeFailure.exit_code)

    def cancel(self) -> None:
        """Interrupt the running jobs and wait up to :data:`CANCEL_SECONDS` for them. Ray does not interrupt
        a running actor call, so the event queue goes: a worker's next event (at the latest its next chunk)
        raises :class:`Interrupted` in its render, whose writers unwind and remove their temporary files."""
        self.events.shutdown(force=True)
        running = list(self.running)
        if running:
            self.ray.wait(running, num_returns=len(running), timeout=CANCEL_SECONDS)

    def close(self) -> None:
        """Stop the workers and the event queue."""
        for _, actor in self.workers:
            self.ray.kill(actor)
        self.events.shutdown()


class Display:
    """The driver's one progress display (human mode on a terminal): the jobs done, and a bar of chunks
    for each job running on a worker, from the workers' events."""

    def __init__(self, reporter: Reporter):
        self.progress = None
        if reporter.mode == "human" and reporter.shows_progress:
            self.progress = Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(), console=reporter.console)
        self.overall: Any = None
        self.bars: dict[int, Any] = {}

    def __enter__(self) -> "Display":
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self.progress is not None:
            self.progress.stop()

    def jobs(self, count: int) -> None:
        if self.progress is not None:
            self.overall = self.progress.add_task("jobs", total=count)

    def event(self, name: str, data: dict[str, Any]) -> None:
        if self.progress is None:
            return
        number = data.get("job")
        if name == "job_started":
            self.bars[number] = self.progress.add_task(f"job {number} ({data.get('worker')})",
                                                       total=data.get("chunks"))
        elif name == "chunk_done" and number in self.bars:
            self.progress.update(self.bars[number], completed=data.get("chunk"))
        elif name in ("job_done", "job_failed", "job_retried"):
            if number in self.bars:
                self.progress.remove_task(self.bars.pop(number))
            if name != "job_retried" and self.overall is not None:
                self.progress.advance(self.overall)
