"""``inspatio rerender VIDEO... -t TRAJ [-t TRAJ...] -o OUT``: the full pipeline (depth, warp, generator).

One video and one trajectory write the file ``OUT``; several (videos x trajectories x seeds) write their
cross product into the folder ``OUT``, named by ``--name``, with the models loaded once (the same planner
and runner as ``inspatio batch``). The options shared with ``inspatio batch`` are defined here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from .. import registry
from ..choices import DECODERS, DEFAULT_NAME, DTYPE_NAMES, FIT_MODES, MODEL_SIZE, check_size
from ..depth.catalog import DA3_CHECKPOINTS, DEFAULT_MODEL, depth_model
from ..depth.sidecar import find_sidecar
from ..devices import check_device, check_dtype
from .app import JsonOpt, QuietOpt, SkipBadFramesOpt, app, parse_size, reporter
from .models import WeightsDirOpt
from .trajectory import camera_options

if TYPE_CHECKING:
    from ..cameras import CameraOptions

MODEL_PANEL = "Model options"

TrajectoriesOpt = Annotated[Optional[list[str]], typer.Option(
    "--trajectory", "-t", help="A trajectory file or a preset name (see 'inspatio trajectory presets'); "
    "repeat for several.", show_default=False)]
SeedsOpt = Annotated[Optional[list[int]], typer.Option(
    "--seed", help="Noise seed (same seed and settings, same video); repeat for several. [default: 0]",
    show_default=False)]
NameOpt = Annotated[Optional[str], typer.Option(
    "--name", metavar="PATTERN", help=f"Output names in the -o folder: fields {{video}}, {{trajectory}}, "
    f"{{seed}}, {{index}} (default '{DEFAULT_NAME}', plus '__{{seed}}' with several seeds; .mp4 added).",
    show_default=False)]
PromptOpt = Annotated[Optional[str], typer.Option(
    "--prompt", help="Describe the video (default: a Florence-2 caption with the caption extra installed, "
    "else empty).")]
PromptFileOpt = Annotated[Optional[Path], typer.Option(
    "--prompt-file", metavar="FILE", help="Read the prompt from a UTF-8 file ('-': stdin).")]
DecoderOpt = Annotated[str, typer.Option(
    "--decoder", help=f"{' | '.join(DECODERS)}: the Wan2.1 VAE, or TAEHV (faster, less memory; encodes and "
    "decodes, as the official --use_tae).", rich_help_panel=MODEL_PANEL)]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1, ...", rich_help_panel=MODEL_PANEL,
                                        callback=lambda name: check_device(name))]
DtypeOpt = Annotated[str, typer.Option(
    "--dtype", help=f"auto (bf16 on GPUs, fp32 on the CPU), {', '.join(DTYPE_NAMES)}.", rich_help_panel=MODEL_PANEL,
    callback=lambda name: check_dtype(name))]
TextDeviceOpt = Annotated[str, typer.Option(
    "--text-device", help="Where the text encoder runs: auto (the GPU when it has room), cpu, cuda, ...",
    rich_help_panel=MODEL_PANEL, callback=lambda name: check_device(name, "--text-device"))]
CompileOpt = Annotated[bool, typer.Option(
    "--compile", help="torch.compile the generator (slow first chunk, faster afterwards).",
    rich_help_panel=MODEL_PANEL)]
FitOpt = Annotated[str, typer.Option("--fit", help=f"How frames map onto the canvas: {', '.join(FIT_MODES)}.")]
SizeOpt = Annotated[str, typer.Option(
    "--size", metavar="HxW", help="Canvas, multiples of 16 (the model was trained at 480x832).")]
SaveConditionOpt = Annotated[Optional[Path], typer.Option(
    "--save-condition", metavar="DIR", help="Also write DIR/warped.mp4 and a lossless DIR/mask.mp4 (the "
    "generator's condition); with several outputs, in DIR/<output name>/.")]
NoAudioOpt = Annotated[bool, typer.Option(
    "--no-audio", help="Do not copy the source audio (it is copied when every source frame is shown once, in order).")]
CrfOpt = Annotated[int, typer.Option("--crf", help="H.264 quality of the output, 0 (lossless) to 51.")]
DEFAULT_SIZE = "x".join(map(str, MODEL_SIZE))


def check_core_weights(videos: list[Path], decoder: str, depth: Path | None, weights_dir: Path | None) -> None:
    """Fail in a fraction of a second, before PyTorch is even imported, when the files every rerender needs
    (the generator and the autoencoder) are missing, listing with them the text encoder and the depth model
    when those are missing too (they are not needed when the prompt's embedding, or the depth, is cached).
    The exact check runs later, before any model is built."""
    if decoder not in DECODERS:
        return
    core = ["generator", "vae" if decoder == "wan" else "tae"]
    if all(registry.locate(registry.entry(n), weights_dir) is not None for n in core):
        return
    others = ["text-encoder", "tokenizer"]
    if depth is None and any(find_sidecar(video) is None for video in videos):
        others += [DA3_CHECKPOINTS[c].group for c in depth_model(DEFAULT_MODEL).checkpoints]
    others = [n for n in others if registry.locate(registry.entry(n), weights_dir) is None]
    note = " (the text encoder is not needed for a cached prompt, nor the depth model for a cached depth)"
    registry.resolve(core + others, weights_dir, purpose="for rerender" + (note if others else ""))


@app.command()
@camera_options
def rerender(
    videos: Annotated[list[Path], typer.Argument(help="Source video(s).", show_default=False)],
    trajectories: TrajectoriesOpt,
    output: Annotated[str, typer.Option("--output", "-o", help="Video to write (.mp4, .mov or .mkv; the sidecar "
                                        "OUT.json is written next to it), or a folder (ending in '/', existing, "
                                        "or without suffix) for several outputs.", show_default=False)],
    camera: CameraOptions,
    prompt: PromptOpt = None,
    prompt_file: PromptFileOpt = None,
    depth: Annotated[Optional[Path], typer.Option("--depth", help="Depth cache file of the (single) video "
                                                  "(default: <video stem>.depth.safetensors next to the video, "
                                                  "else the depth model's cached estimate).")] = None,
    seeds: SeedsOpt = None,
    name: NameOpt = None,
    decoder: DecoderOpt = "wan",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    text_device: TextDeviceOpt = "auto",
    compile_dit: CompileOpt = False,
    weights_dir: WeightsDirOpt = None,
    fit: FitOpt = "stretch",
    size: SizeOpt = DEFAULT_SIZE,
    save_condition: SaveConditionOpt = None,
    no_audio: NoAudioOpt = False,
    crf: CrfOpt = 18,
    skip_bad_frames: SkipBadFramesOpt = False,
    json_mode: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Rerender VIDEO along a new camera trajectory with InSpatio-World (depth -> warp -> generator).

    Streams chunk by chunk: memory does not grow with the video. Writes OUT and its sidecar OUT.json
    (settings, weights, timings, warnings); --json prints progress events and the same object on stdout.
    Several videos, trajectories (-t) or seeds render their cross product into the folder OUT with the
    models loaded once and each video's depth computed once; a failing one is reported and the others go on
    (exit code 1 if any failed). For manifests, resume and sharding see 'inspatio batch'.
    """
    if not trajectories:
        raise typer.BadParameter("give at least one trajectory", param_hint="'--trajectory' / '-t'")
    canvas = check_size(parse_size(size))
    check_core_weights(videos, decoder, depth, weights_dir)
    from ..batch import JobDefaults, plan_inputs, run_jobs
    from ..render.rerender import Rerenderer

    defaults = JobDefaults(tuple(trajectories), tuple(seeds or (0,)), prompt, prompt_file, camera, depth, fit,
                           canvas, crf, not no_audio, skip_bad_frames, save_condition)
    renderer = Rerenderer(weights_dir, device=device, dtype=dtype, decoder=decoder, text_device=text_device,
                          compile=compile_dit)
    jobs = plan_inputs(videos, defaults, output, name)
    several = len(jobs) > 1
    summary = run_jobs(jobs, renderer, force=True, isolate=several, job_events=several, forward_events=True,
                       reporter=reporter(json_mode, quiet))
    if summary.failed:
        raise typer.Exit(1)
