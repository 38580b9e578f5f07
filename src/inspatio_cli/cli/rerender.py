"""``inspatio rerender VIDEO... -t TRAJ [-t TRAJ...] -o OUT``: the full pipeline (depth, warp, generator).

One video and one trajectory write the file ``OUT``; several (videos x trajectories x seeds) write their
cross product into the folder ``OUT``, named by ``--name``, with the models loaded once (the same planner
and runner as ``inspatio batch``). The options shared with ``inspatio batch`` are in :mod:`.options`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..choices import check_size
from ..render.needs import check_core_weights
from .app import JsonOpt, OverwriteOpt, QuietOpt, app, reporter
from .options import RenderOptions, TrajectoriesOpt, ViewsOpt, render_options
from .trajectory import camera_options

if TYPE_CHECKING:
    from ..cameras import CameraOptions


@app.command()
@render_options
@camera_options
def rerender(
    videos: Annotated[list[Path], typer.Argument(help="Source video(s) or still images (png, jpg, webp).",
                                                 show_default=False)],
    trajectories: TrajectoriesOpt,
    output: Annotated[str, typer.Option("--output", "-o", help="Video to write (.mp4, .mov or .mkv; the sidecar "
                                        "OUT.json is written next to it), or a folder (ending in '/', existing, "
                                        "or without suffix) for several outputs.", show_default=False)],
    camera: CameraOptions,
    options: RenderOptions,
    views: ViewsOpt = False,
    depth: Annotated[Optional[Path], typer.Option("--depth", help="Depth cache file of the (single) video "
                                                  "(default: <video stem>.depth.safetensors next to the video, "
                                                  "else the depth model's cached estimate).")] = None,
    overwrite: OverwriteOpt = False,
    json_mode: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Rerender VIDEO along a new camera trajectory with InSpatio-World (depth -> warp -> generator).

    A still image is a video of one frame shown at every output frame (--frames, --fps); with --views, the
    sources are 3-4 photos of one scene (or a folder of them), warped together.
    Streams chunk by chunk: memory does not grow with the video. Writes OUT and its sidecar OUT.json
    (settings, weights, timings, warnings); --json prints progress events and the same object on stdout.
    Several videos, trajectories (-t) or seeds render their cross product into the folder OUT with the
    models loaded once and each video's depth computed once; a failing one is reported and the others go on
    (exit code 1 if any failed). For manifests, resume and sharding see 'inspatio batch'.
    """
    if not trajectories:
        raise typer.BadParameter("give at least one trajectory", param_hint="'--trajectory' / '-t'")
    canvas = check_size(options.size)
    check_core_weights(videos, options.decoder, depth, options.weights_dir, options.model)
    from ..batch import plan_inputs, run_jobs

    defaults = options.job_defaults(trajectories, camera, depth, canvas)
    renderer = options.renderer()
    jobs = plan_inputs(videos, defaults, output, options.name, overwrite=overwrite, views=views)
    several = len(jobs) > 1
    summary = run_jobs(jobs, renderer, force=True,  # plan_inputs refused existing outputs unless --overwrite
                       isolate=several, job_events=several, forward_events=True,
                       reporter=reporter(json_mode, quiet))
    if summary.failed:
        raise typer.Exit(1)
