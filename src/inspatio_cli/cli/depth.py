"""``inspatio depth VIDEO -o scene.depth.safetensors``: run Depth-Anything-3 once, reuse the file everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..depth.catalog import DEFAULT_MODEL, DEPTH_MODELS, depth_model
from ..choices import FIT_MODES, MODEL_SIZE
from ..devices import DEPTH_DTYPE_NAMES, check_device, check_dtype
from ..files import check_outputs
from .app import JsonOpt, OverwriteOpt, QuietOpt, SkipBadFramesOpt, app, parse_size, reporter
from .models import WeightsDirOpt

_MODELS_HELP = "; ".join(f"{m.name}: {m.licence}, {'metric' if m.metric else 'relative'}"
                         for m in DEPTH_MODELS.values())


@app.command()
def depth(
    video: Annotated[Path, typer.Argument(help="Source video.", show_default=False)],
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Depth file to write (.depth.safetensors, or .gz to compress; default: "
        "<video stem>.depth.safetensors next to the video, which preview and rerender pick up).")] = None,
    model: Annotated[str, typer.Option(
        "--model", help=f"Depth model ({_MODELS_HELP}). CC BY-NC 4.0 weights are for non-commercial use "
        "only; base-metric is the Apache-2.0 choice with metric depth.")] = DEFAULT_MODEL,
    weights: Annotated[Optional[list[Path]], typer.Option(
        "--weights", metavar="PATH", help="Weight file or Hugging Face folder instead of the registry; "
        "repeat for two-checkpoint models (any-view first, then metric).")] = None,
    weights_dir: WeightsDirOpt = None,
    window: Annotated[Optional[int], typer.Option(
        "--window", metavar="N", help="Frames per DA3 call; longer videos run in overlapping windows "
        "(default: what fits in memory, at most 256).")] = None,
    fit: Annotated[str, typer.Option("--fit", help=f"How frames map onto the model canvas: "
                                     f"{', '.join(FIT_MODES)} (use the same for preview/rerender).")] = "stretch",
    size: Annotated[str, typer.Option("--size", metavar="HxW", help="Model canvas.")] = "x".join(map(str, MODEL_SIZE)),
    device: Annotated[str, typer.Option("--device", help="auto (the GPU if any), cpu, cuda, cuda:1, ...",
                                        callback=lambda name: check_device(name))] = "auto",
    dtype: Annotated[str, typer.Option("--dtype", help=f"auto (bf16 autocast on GPUs, as upstream), "
                                       f"{', '.join(DEPTH_DTYPE_NAMES)}.",
                                       callback=lambda name: check_dtype(name, allowed=DEPTH_DTYPE_NAMES))
                     ] = "auto",
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompute even if this video was done before "
                                           "with the same settings, and do not store the result.")] = False,
    skip_bad_frames: SkipBadFramesOpt = False,
    overwrite: OverwriteOpt = False,
    json_mode: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Estimate per-frame depth, intrinsics and camera poses of VIDEO (Depth-Anything-3) and save them.

    Results are cached by video content and settings: running again, or previewing another trajectory
    without a depth file, reuses them.
    """
    rep = reporter(json_mode, quiet)
    depth_model(model)  # an unknown --model is refused before PyTorch loads
    target = output if output is not None else video.with_name(f"{video.stem}.depth.safetensors")
    inputs = {video: "the source video", **{path: "a weights file" for path in weights or ()}}
    check_outputs([(target, "the depth file")], inputs, overwrite=overwrite)
    from ..depth.estimate import get_depth

    result = get_depth(video, model=model, weights=weights, weights_dir=weights_dir, fit=fit, size=parse_size(size),
                       window=window, dtype=dtype, device=device, cache=not no_cache,
                       skip_bad_frames=skip_bad_frames, reporter=rep)
    result.save(target)
    summary = {"output": str(target), **result.describe()}
    rep.event("result", **summary)
    rep.info(f"wrote {target}: {result.num_frames} frames at {result.size[0]}x{result.size[1]}, depth "
             f"{summary['depth_min']:.3g}..{summary['depth_max']:.3g} ({result.meta.get('units', '?')}), "
             f"model {result.meta.get('model')} ({result.meta.get('licence')})")
