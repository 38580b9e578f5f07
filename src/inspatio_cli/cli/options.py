"""The model and render options ``inspatio rerender`` and ``inspatio batch`` share, declared once.

:func:`render_options` adds them to a command and hands them over as one :class:`RenderOptions`
(``options`` parameter), which builds the command's :class:`~inspatio_cli.render.rerender.Rerenderer` and
:class:`~inspatio_cli.batch.JobDefaults`. Light to import: the rendering code is imported by its methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ..choices import (DECODERS, DEFAULT_IMAGE_FPS, DEFAULT_IMAGE_FRAMES, DEFAULT_NAME, DTYPE_NAMES, FIT_MODES,
                       MODEL_SIZE)
from ..devices import check_device, check_dtype
from ..render.needs import DEFAULT_GENERATOR, MODELS
from .app import SkipBadFramesOpt, option_group, parse_size
from .models import WeightsDirOpt

if TYPE_CHECKING:
    from ..batch import JobDefaults
    from ..cameras import CameraOptions
    from ..render.rerender import Rerenderer

MODEL_PANEL = "Model options"
DEFAULT_SIZE = "x".join(map(str, MODEL_SIZE))

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
FramesOpt = Annotated[Optional[int], typer.Option(
    "--frames", metavar="N", min=1, help=f"Image source: output frames (default: the trajectory's pose count for "
    f"per-frame files, else {DEFAULT_IMAGE_FRAMES}). Not for videos.", show_default=False)]
ModelOpt = Annotated[str, typer.Option(
    "--model", help=f"{' | '.join(MODELS)}: InSpatio-World v1, or v1.5 (its generator and render rules: per-frame "
    "soft z-buffer and intrinsics, depth validity, cover-crop of a video of another aspect).",
    rich_help_panel=MODEL_PANEL)]
ViewsOpt = Annotated[bool, typer.Option(
    "--views", help="The sources are the views of one scene: 3 or 4 photos of one size, or one folder of them "
    "(sorted by name); one joint depth, every view warped into each frame and merged (the v1.5 rules).")]
FpsOpt = Annotated[Optional[float], typer.Option(
    "--fps", metavar="F", help=f"Image source: output frame rate [default: {DEFAULT_IMAGE_FPS:g}]. A video keeps "
    "its own.", show_default=False)]

_RENDER_PARAMETERS: list[tuple[str, Any, Any]] = [
    ("seeds", SeedsOpt, None), ("name", NameOpt, None), ("prompt", PromptOpt, None),
    ("prompt_file", PromptFileOpt, None), ("decoder", DecoderOpt, "wan"), ("device", DeviceOpt, "auto"),
    ("dtype", DtypeOpt, "auto"), ("text_device", TextDeviceOpt, "auto"), ("compile_dit", CompileOpt, False),
    ("weights_dir", WeightsDirOpt, None), ("fit", FitOpt, "stretch"), ("size", SizeOpt, DEFAULT_SIZE),
    ("save_condition", SaveConditionOpt, None), ("no_audio", NoAudioOpt, False), ("crf", CrfOpt, 18),
    ("skip_bad_frames", SkipBadFramesOpt, False), ("frames", FramesOpt, None), ("fps", FpsOpt, None),
    ("model", ModelOpt, DEFAULT_GENERATOR),
]
"""The shared options: parameter name, annotated type (flag and help), default."""


@dataclass(frozen=True)
class RenderOptions:
    """The shared options' values: ``seeds`` (default ``(0,)``), the output ``name`` pattern, ``prompt`` /
    ``prompt_file``, the model choices (``decoder``, ``device``, ``dtype``, ``text_device``, ``compile``,
    ``weights_dir``) and the render settings (``fit``, the canvas ``size`` (H, W) as parsed, not yet
    checked, ``save_condition``, ``audio``, ``crf``, ``skip_bad_frames``), an image source's ``frames``
    and ``fps``, and the ``model`` (``--model``: the default of every job)."""

    seeds: tuple[int, ...]
    name: str | None
    prompt: str | None
    prompt_file: Path | None
    decoder: str
    device: str
    dtype: str
    text_device: str
    compile: bool
    weights_dir: Path | None
    fit: str
    size: tuple[int, int]
    save_condition: Path | None
    audio: bool
    crf: int
    skip_bad_frames: bool
    frames: int | None
    fps: float | None
    model: str

    def renderer_args(self) -> dict[str, Any]:
        """The keyword arguments of the command's :class:`Rerenderer`, as given (devices unresolved: a Ray
        worker resolves them where it runs)."""
        return dict(weights_dir=self.weights_dir, device=self.device, dtype=self.dtype, decoder=self.decoder,
                    text_device=self.text_device, compile=self.compile)

    def renderer(self) -> Rerenderer:
        """The command's renderer (imports PyTorch)."""
        from ..render.rerender import Rerenderer

        return Rerenderer(**self.renderer_args())

    def job_defaults(self, trajectories: list[str] | None, camera: CameraOptions, depth: Path | None = None,
                     size: tuple[int, int] | None = None) -> JobDefaults:
        """The jobs' defaults from these options, the ``-t`` ``trajectories``, ``camera`` and ``depth``
        (``size``: the canvas when the command has checked it, default :attr:`size`)."""
        from ..batch import JobDefaults

        return JobDefaults(tuple(trajectories or ()), self.seeds, self.prompt, self.prompt_file, camera, depth,
                           self.fit, size or self.size, self.crf, self.audio, self.skip_bad_frames,
                           self.save_condition, self.frames, self.fps, self.model)


def _build(seeds: list[int] | None, name: str | None, prompt: str | None, prompt_file: Path | None, decoder: str,
           device: str, dtype: str, text_device: str, compile_dit: bool, weights_dir: Path | None, fit: str,
           size: str, save_condition: Path | None, no_audio: bool, crf: int, skip_bad_frames: bool,
           frames: int | None, fps: float | None, model: str) -> RenderOptions:
    return RenderOptions(tuple(seeds or (0,)), name, prompt, prompt_file, decoder, device, dtype, text_device,
                         compile_dit, weights_dir, fit, parse_size(size), save_condition, not no_audio, crf,
                         skip_bad_frames, frames, fps, model)


render_options = option_group("options", _RENDER_PARAMETERS, _build)
"""Adds the shared model and render flags to a command (apply it above ``camera_options``) and passes them
as its ``options: RenderOptions`` parameter."""
