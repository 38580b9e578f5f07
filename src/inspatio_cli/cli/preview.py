"""``inspatio preview VIDEO -t TRAJ -o preview.mp4``: the depth warp along a trajectory, no model weights
(VIDEO may be a still image)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..choices import COVERAGE_THRESHOLD, FIT_MODES, LAYOUTS, check_video_output
from ..devices import check_device
from .app import JsonOpt, OverwriteOpt, QuietOpt, SkipBadFramesOpt, app, reporter
from .options import FpsOpt, FramesOpt, ModelOpt, ViewsOpt
from .trajectory import camera_options

if TYPE_CHECKING:
    from ..cameras import CameraOptions


@app.command()
@camera_options
def preview(
    video: Annotated[list[Path], typer.Argument(help="Source video, or a still image (png, jpg, webp); with "
                                                "--views, the photos of one scene or their folder.",
                                                show_default=False)],
    trajectory: Annotated[str, typer.Option("--trajectory", "-t", help="A trajectory file or a preset name "
                                            "(see 'inspatio trajectory presets').", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Preview video to write (.mp4).",
                                         show_default=False)],
    camera: CameraOptions,
    depth: Annotated[Optional[Path], typer.Option("--depth", help="Depth cache file (default: "
                                                  "<video stem>.depth.safetensors next to the video).")] = None,
    layout: Annotated[str, typer.Option("--layout", help=f"{' | '.join(LAYOUTS)}: source | warped | mask side "
                                        "by side, one panel, or a 2x2 grid with the holes in red.")] = "side",
    save_condition: Annotated[Optional[Path], typer.Option("--save-condition", metavar="DIR",
                                                           help="Also write DIR/warped.mp4 and a lossless "
                                                                "DIR/mask.mp4 (the generator's condition).")] = None,
    fit: Annotated[str, typer.Option("--fit", help=f"Fit the video to the depth's size: {', '.join(FIT_MODES)}.")
                   ] = "stretch",
    threshold: Annotated[float, typer.Option("--coverage-warning", metavar="FRACTION",
                                             help="Warn about frames whose known fraction is below this.")
                         ] = COVERAGE_THRESHOLD,
    device: Annotated[str, typer.Option("--device", help="Where the warp runs: auto (the GPU if any), cpu, cuda, "
                                        "cuda:1, ...", callback=lambda name: check_device(name))] = "cpu",
    skip_bad_frames: SkipBadFramesOpt = False,
    frames: FramesOpt = None,
    fps: FpsOpt = None,
    model: ModelOpt = "world",
    views: ViewsOpt = False,
    overwrite: OverwriteOpt = False,
    json_mode: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Warp VIDEO (or a still image, or --views: the photos of one scene, merged) along a trajectory with its
    depth: source | warped | mask, and a coverage summary.

    No generator, no weights, no GPU. Low coverage = large holes the generator will have to invent.
    """
    if len(video) != 1 and not views:
        raise typer.BadParameter("give one source (several photos of one scene: --views)", param_hint="'VIDEO'")
    check_video_output(output, None if views else video[0])  # a bad output name is refused before PyTorch loads
    from ..render.preview import preview as run_preview
    from ..video.multiview import open_views

    run_preview(open_views(video) if views else video[0], trajectory, output, depth=depth, layout=layout, save_condition=save_condition,
                camera=camera, fit=fit, threshold=threshold, device=device, skip_bad_frames=skip_bad_frames,
                frames=frames, fps=fps, model=model, overwrite=overwrite, reporter=reporter(json_mode, quiet))
