"""``inspatio scene import|export``: bring your own cameras and depth (other tools' scenes <-> a depth file).

A group of its own rather than options of ``inspatio depth``: that command estimates depth from a video
(``inspatio depth VIDEO``), and turning it into a group would break that call; importing and exporting
convert files and need no video (but for COLMAP models).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..choices import FIT_MODES, MODEL_SIZE, SCENE_FORMATS
from ..depth.catalog import DEFAULT_MODEL, depth_model
from ..devices import check_device
from .app import JsonOpt, OverwriteOpt, QuietOpt, app, parse_size, reporter
from .models import WeightsDirOpt

scene_app = typer.Typer(help="Import other tools' scenes (cameras and depth) as a depth file, or export one.",
                        no_args_is_help=True)
app.add_typer(scene_app, name="scene")
_FORMATS = ", ".join(SCENE_FORMATS)


@scene_app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="Scene folder or .npz file.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Depth file to write (.depth.safetensors, or .gz).",
                                         show_default=False)],
    fmt: Annotated[Optional[str], typer.Option("--from", help=f"Source format: {_FORMATS} (default: detected).")
                   ] = None,
    video: Annotated[Optional[Path], typer.Option("--video", help="COLMAP only: the video whose depth the depth "
                                                  "model estimates (scaled to the model's points).")] = None,
    model: Annotated[str, typer.Option("--model", help="COLMAP only: the depth model (see 'inspatio depth -h').")
                     ] = DEFAULT_MODEL,
    weights_dir: WeightsDirOpt = None,
    fit: Annotated[str, typer.Option("--fit", help=f"COLMAP only: {', '.join(FIT_MODES)}.")] = "stretch",
    size: Annotated[str, typer.Option("--size", metavar="HxW", help="COLMAP only: the model canvas.")
                    ] = "x".join(map(str, MODEL_SIZE)),
    device: Annotated[str, typer.Option("--device", help="COLMAP only: auto, cpu, cuda, cuda:1, ...",
                                        callback=lambda name: check_device(name))] = "auto",
    overwrite: OverwriteOpt = False,
    json_mode: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Convert another tool's scene (v1.5 folder, community v1.5 folder, .npz, COLMAP model) into a depth file.

    Preview and rerender take the file with --depth.
    """
    rep = reporter(json_mode, quiet)
    options = {}
    if video is not None:
        depth_model(model)  # an unknown --model is refused before PyTorch loads
        options = dict(model=model, weights_dir=weights_dir, fit=fit, size=parse_size(size), device=device)
    from ..interchange import import_scene

    result = import_scene(source, output, fmt=fmt, video=video, overwrite=overwrite, reporter=rep, **options)
    rep.event("result", output=str(output), **result.describe())
    rep.info(f"wrote {output}: {result.num_frames} frames at {result.size[0]}x{result.size[1]} from "
             f"{result.meta['import_format']} ({result.meta['unknown_depth']} unknown depth pixels"
             + (f", depth scale {result.meta['import_scale']}" if "import_scale" in result.meta else "") + ")")


@scene_app.command("export")
def export(
    depth_file: Annotated[Path, typer.Argument(help="Depth file (.depth.safetensors).", show_default=False)],
    to: Annotated[str, typer.Option("--to", help=f"Format: {_FORMATS}.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write (the .npz file for npz).",
                                         show_default=False)],
    overwrite: OverwriteOpt = False,
    json_mode: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write a depth file's depth and cameras in another tool's scene format."""
    rep = reporter(json_mode, quiet)
    from ..interchange import export_scene

    written = export_scene(depth_file, to, output, overwrite=overwrite)
    rep.event("result", format=to, output=str(output), files=[str(p) for p in written])
    rep.info(f"wrote {len(written)} file(s) of a {to} scene to {output}")
