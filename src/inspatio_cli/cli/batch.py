"""``inspatio batch MANIFEST``: many rerenders from a JSONL/CSV manifest or a list of videos, with resume,
sharding, failure isolation and ``--dry-run``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..progress import Reporter
from ..weights.hub import human_size
from .app import JsonOpt, QuietOpt, Reported, app, print_error, reporter
from .options import RenderOptions, TrajectoriesOpt, render_options
from .trajectory import camera_options

if TYPE_CHECKING:
    from ..batch import Job
    from ..cameras import CameraOptions
    from ..render.rerender import Rerenderer

RUN_PANEL = "Batch options"
RAY_PANEL = "Many GPUs and machines (Ray)"


@app.command()
@render_options
@camera_options
def batch(
    manifest: Annotated[str, typer.Argument(help="Jobs: a .jsonl or .csv manifest, or a list of video paths one "
                                            "per line (with -t); '-' reads it from stdin.", show_default=False)],
    camera: CameraOptions,
    options: RenderOptions,
    trajectories: TrajectoriesOpt = None,
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", metavar="DIR", help="Folder for outputs the manifest does not name (and for its "
        "relative output paths).")] = None,
    shard: Annotated[Optional[str], typer.Option(
        "--shard", metavar="K/N|auto", help="Run only jobs K, K+N, K+2N, ... of the validated list: N processes "
        "with K=1..N split the manifest with no coordination. 'auto': K/N from SLURM (SLURM_PROCID/SLURM_NTASKS "
        "or an array), torchrun (RANK/WORLD_SIZE) or a Kubernetes indexed Job (JOB_COMPLETION_INDEX, with "
        "INSPATIO_SHARDS set to its completions).", rich_help_panel=RUN_PANEL)] = None,
    force: Annotated[bool, typer.Option("--force", help="Redo jobs that are already finished (output and sidecar "
                                        "with the same settings) and replace existing outputs (without it they "
                                        "are refused before any work).", rich_help_panel=RUN_PANEL)] = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop at the first failed job (default: report it "
                                            "and go on).", rich_help_panel=RUN_PANEL)] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate everything and print the jobs with frame "
                                          "counts and a time/memory estimate; load no model.",
                                          rich_help_panel=RUN_PANEL)] = False,
    ray: Annotated[Optional[str], typer.Option(
        "--ray", metavar="ADDRESS", help="Render on a Ray cluster (the 'ray' extra): 'local' starts one on this "
        "machine, 'auto' joins the running one, or a cluster address. Workers pull jobs one at a time, each "
        "with its models loaded once.", rich_help_panel=RAY_PANEL)] = None,
    workers: Annotated[Optional[int], typer.Option(
        "--workers", metavar="N", help="Ray workers (default: one per GPU of the cluster, else one).",
        rich_help_panel=RAY_PANEL)] = None,
    gpus_per_worker: Annotated[Optional[float], typer.Option(
        "--gpus-per-worker", metavar="G", help="GPUs each Ray worker holds (default: 1 on a cluster with GPUs, "
        "else 0).", rich_help_panel=RAY_PANEL)] = None,
    json_mode: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Rerender every job of MANIFEST with the models loaded once.

    JSONL keys or CSV columns: video, trajectory, output, prompt or prompt_file, seed, and per-job options
    (depth fit size crf audio skip_bad_frames save_condition and the trajectory/time options). A job without
    trajectory or seed takes every -t / --seed; without output, -o DIR and --name.

    Everything is checked first: all problems are listed with their line numbers (exit 3). Finished jobs
    (output plus a sidecar with the same settings) are skipped unless --force; a failing job is reported
    and the others go on (exit 1 if any failed). --json: one event per line on stdout.

    With --ray the jobs are checked and planned the same way, then rendered by a pool of Ray workers
    that pull them one at a time; a job whose worker dies is retried on another.
    """
    from ..batch import InvalidJobs, check_pending, parse_shard, plan_manifest, run_jobs, select_shard
    from ..batch.cluster import ray_pool, run_on_ray
    out = reporter(json_mode, quiet)
    defaults = options.job_defaults(trajectories, camera)
    selected = parse_shard(shard) if shard is not None else None
    pool = ray_pool(ray, workers, gpus_per_worker)
    renderer = options.renderer() if pool is None or dry_run else None
    try:
        jobs = plan_manifest(manifest, defaults, output=output, name=options.name)
    except InvalidJobs as exc:
        where = manifest if manifest != "-" else "<stdin>"
        for problem in exc.problems:
            print_error(f"{where}:{problem.line}: {problem.error.one_line()}")
        out.event("invalid", problems=[{"line": p.line, "error": p.error.one_line()} for p in exc.problems])
        summary = f"{where}: {len(exc.problems)} problem(s); nothing was run"
        print_error(summary)
        raise Reported(summary, exc.exit_code) from None
    mine = select_shard(jobs, selected)
    if dry_run:
        pending = _show_plan(jobs, mine, renderer, force, out)
        check_pending(pending, renderer, force=force)
        return
    if pool is not None:
        summary = run_on_ray(mine, options.renderer_args(), pool, force=force, fail_fast=fail_fast,
                             total=len(jobs), shard=selected, reporter=out)
    else:
        summary = run_jobs(mine, renderer, force=force, fail_fast=fail_fast, total=len(jobs), shard=selected,
                           reporter=out)
    if summary.failed:
        raise Reported(f"{len(summary.failed)} job(s) failed", 1)


def _show_plan(jobs: list[Job], mine: list[Job], renderer: Rerenderer, force: bool, out: Reporter) -> list[Job]:
    """The dry run's listing: the jobs of this shard (finished or to render) and the estimate; returns the
    jobs to render."""
    from ..batch import estimate, is_finished

    pending = []
    listing = _Listing(("job", "line", "video", "trajectory", "seed", "frames", "chunks", "output", "status"),
                       out.mode == "human")
    for job in mine:
        finished = not force and is_finished(job, renderer)
        status = "finished (skipped)" if finished else "to render"
        if not finished:
            pending.append(job)
        out.event("job_planned", **job.describe(), status="finished" if finished else "pending")
        listing.add(job.number, "" if job.line is None else job.line, job.video, job.trajectory, job.seed,
                    job.frames, job.chunks, job.output, status)
    listing.flush()
    cost = estimate(pending, renderer, near=mine)
    out.event("plan", total_jobs=len(jobs), shard_jobs=len(mine), finished=len(mine) - len(pending),
              estimate=cost.as_dict())
    if out.mode != "human":
        return pending
    print(f"{len(mine)} of {len(jobs)} jobs in this shard: {len(pending)} to render, {len(mine) - len(pending)} "
          f"finished; {cost.frames} frames in {cost.chunks} generator chunks")
    if not pending:
        print("nothing to render")
    elif cost.seconds is None:
        print(f"time: not estimated: no finished render on {renderer.device.type} with decoder {renderer.decoder} "
              f"and {renderer.dtype_name} next to these outputs to measure the speed from (after the first job, "
              "a dry run estimates the rest)")
    else:
        print(f"time: about {_duration(cost.seconds)} at {cost.rate:.2f} frames/s (measured by "
              f"{cost.measured_from} finished render(s))")
    weights = cost.weights
    peak = ("" if cost.measured_peak is None else
            f"; measured peak {human_size(cost.measured_peak)} ({cost.measured_from} finished render(s))")
    print(f"memory: generator + autoencoder weights {human_size(weights['render'])} on {renderer.device}{peak}; "
          f"before them, one at a time: text encoder up to {human_size(weights['text'])} (new prompts only), "
          f"depth model {human_size(weights['depth'])} (videos without depth)")
    return pending


class _Listing:
    """The dry run's table of jobs on stdout, streamed: rows are printed a block at a time as they are
    planned (a batch of 100,000 jobs starts listing at once and costs time in proportion to its jobs), in
    columns as wide as the first block needs (a longer cell widens its own row only). Prints nothing
    unless ``shown``."""

    BLOCK = 1000

    def __init__(self, header: tuple[str, ...], shown: bool):
        self.header, self.shown = header, shown
        self.rows: list[tuple[str, ...]] = []
        self.widths: list[int] | None = None

    def add(self, *cells: object) -> None:
        if self.shown:
            self.rows.append(tuple(" ".join(str(c).split()) for c in cells))
            if len(self.rows) >= self.BLOCK:
                self.flush()

    def flush(self) -> None:
        """Print the rows added since the last flush (with the header, the first time)."""
        if not self.shown or not self.rows and self.widths is not None:
            return
        lines = []
        if self.widths is None:
            self.widths = [max(len(c) for c in column) for column in zip(self.header, *self.rows)]
            lines.append(self._line(self.header))
        lines += [self._line(row) for row in self.rows]
        self.rows = []
        print("\n".join(lines), flush=True)

    def _line(self, cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, self.widths)).rstrip()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours or minutes:
        return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"
    return f"{seconds:.1f} s"
