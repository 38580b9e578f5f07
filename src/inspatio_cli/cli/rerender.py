"""``inspatio rerender VIDEO -t TRAJ -o OUT.mp4``: the full pipeline (depth, warp, generator) for one video."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..cameras import CameraOptions
from ..rerender import DECODERS, DTYPES, Rerenderer
from ..video import FIT_MODES, MODEL_SIZE
from .app import JsonOpt, QuietOpt, SkipBadFramesOpt, app, parse_size, reporter
from .models import WeightsDirOpt
from .trajectory import camera_options

MODEL_PANEL = "Model options"


@app.command()
@camera_options
def rerender(
    video: Annotated[Path, typer.Argument(help="Source video.", show_default=False)],
    trajectory: Annotated[str, typer.Option("--trajectory", "-t", help="A trajectory file or a preset name "
                                            "(see 'inspatio trajectory presets').", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Video to write (.mp4, .mov or .mkv); the "
                                         "sidecar OUT.json is written next to it.", show_default=False)],
    camera: CameraOptions,
    prompt: Annotated[Optional[str], typer.Option("--prompt", help="Describe the video (default: a Florence-2 "
                                                  "caption with the caption extra installed, else empty).")] = None,
    prompt_file: Annotated[Optional[Path], typer.Option("--prompt-file", metavar="FILE",
                                                        help="Read the prompt from a UTF-8 file ('-': stdin).")] = None,
    depth: Annotated[Optional[Path], typer.Option("--depth", help="Depth cache file (default: "
                                                  "<video stem>.depth.safetensors next to the video, else the "
                                                  "depth model's cached estimate).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Noise seed (same seed and settings, same video).")] = 0,
    decoder: Annotated[str, typer.Option("--decoder", help=f"{' | '.join(DECODERS)}: the Wan2.1 VAE, or TAEHV "
                                         "(faster, less memory; encodes and decodes, as the official --use_tae).",
                                         rich_help_panel=MODEL_PANEL)] = "wan",
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1, ...",
                                        rich_help_panel=MODEL_PANEL)] = "auto",
    dtype: Annotated[str, typer.Option("--dtype", help=f"auto (bf16 on GPUs, fp32 on the CPU), "
                                       f"{', '.join(DTYPES)}.", rich_help_panel=MODEL_PANEL)] = "auto",
    text_device: Annotated[str, typer.Option("--text-device", help="Where the text encoder runs: auto (the GPU "
                                             "when it has room), cpu, cuda, ...", rich_help_panel=MODEL_PANEL)
                           ] = "auto",
    compile_dit: Annotated[bool, typer.Option("--compile", help="torch.compile the generator (slow first "
                                              "chunk, faster afterwards).", rich_help_panel=MODEL_PANEL)] = False,
    weights_dir: WeightsDirOpt = None,
    fit: Annotated[str, typer.Option("--fit", help=f"How frames map onto the canvas: {', '.join(FIT_MODES)}.")
                   ] = "stretch",
    size: Annotated[str, typer.Option("--size", metavar="HxW", help="Canvas, multiples of 16 (the model was "
                                      "trained at 480x832).")] = "x".join(map(str, MODEL_SIZE)),
    save_condition: Annotated[Optional[Path], typer.Option("--save-condition", metavar="DIR",
                                                           help="Also write DIR/warped.mp4 and a lossless "
                                                                "DIR/mask.mp4 (the generator's condition).")] = None,
    no_audio: Annotated[bool, typer.Option("--no-audio", help="Do not copy the source audio (it is copied when "
                                           "every source frame is shown once, in order).")] = False,
    crf: Annotated[int, typer.Option("--crf", help="H.264 quality of the output, 0 (lossless) to 51.")] = 18,
    skip_bad_frames: SkipBadFramesOpt = False,
    json_mode: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Rerender VIDEO along a new camera trajectory with InSpatio-World (depth -> warp -> generator).

    Streams chunk by chunk: memory does not grow with the video. Writes OUT and its sidecar OUT.json
    (settings, weights, timings, warnings); --json prints progress events and the same object on stdout.
    """
    renderer = Rerenderer(weights_dir, device=device, dtype=dtype, decoder=decoder, text_device=text_device,
                          compile=compile_dit, reporter=reporter(json_mode, quiet))
    renderer.render(video, trajectory, output, depth=depth, prompt=prompt, prompt_file=prompt_file, seed=seed,
                    camera=camera, fit=fit, size=parse_size(size), crf=crf, audio=not no_audio,
                    save_condition=save_condition, skip_bad_frames=skip_bad_frames)
