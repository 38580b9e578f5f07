"""A render's plan: everything known about one job before any model runs, computed once.

:func:`make_plan` probes the video, parses and resolves the trajectory (time edits included), finds the
depth (a file, the video's sidecar, or an estimate), plans the fit onto the canvas, settles the prompt
(text, or ``None`` for an automatic caption), lists the weight files the render needs and resolves the
settings with their fingerprint. :class:`~.rerender.Rerenderer` builds one plan per render and hands its
probe and resolved trajectory on to :func:`~inspatio_cli.scene.open_scene`, so a render probes its video
and resolves its trajectory once; its ``settings``, ``fingerprint``, ``required_weights`` and
``check_weights`` are this module's facts. Files are fingerprinted once per plan
(:meth:`RenderPlan.file_fingerprint`).

The fingerprint identifies a render by content, not by path: the video's and the depth file's
:func:`~inspatio_cli.files.fingerprint_file`, the resolved trajectory's digest (:func:`trajectory_digest`:
its poses, time map and intrinsics, so a trajectory file edited under the same name, or other intrinsics,
give another fingerprint), the ``--align-to`` cameras file's fingerprint, the camera options, prompt, seed,
the model (``--model``: which generator and which render rules), decoder, precision, canvas, fit, CRF, audio
and the generator and autoencoder weights' fingerprints.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from .. import caption as captioning
from ..cameras import CameraOptions, Trajectory, TrajectorySource
from ..choices import check_size
from ..errors import UsageError
from ..files import check_outputs, fingerprint_file
from ..scene import depth_weights_needed, source_camera, source_sidecar, trajectory_frames
from ..text import check_prompt_text, find_cached_embedding, read_prompt_file
from ..video import Fit, VideoInfo
from ..video.multiview import Views, source_files, source_info
from ..views import RenderRules, render_rules
from ..weights import catalog, hub
from .condition_videos import condition_outputs
from .needs import DEFAULT_GENERATOR, TEXT_WEIGHTS, autoencoder_weights, generator_weights, render_weights

TEXT_DTYPE = torch.bfloat16
"""The text encoder always runs in bfloat16, as the official pipeline does (its embeddings are cached)."""


@dataclass(frozen=True)
class ModelSetup:
    """What the renderer contributes to a plan: where the weights are (``weights_dir``, default
    ``$INSPATIO_WEIGHTS_DIR`` or the Hugging Face cache), the ``decoder`` (``wan``/``tae``), the generator's
    precision name ``dtype`` and the registry names of the models it already ``held`` in memory (their
    files are not required)."""

    weights_dir: str | Path | None
    decoder: str
    dtype: str
    held: frozenset[str] = frozenset()


@dataclass(frozen=True)
class DepthSource:
    """Where a render's depth comes from: ``kind`` ``file`` (``--depth``), ``sidecar`` (next to the video)
    or ``estimate`` (the depth stage's cached estimate, made by the depth model if missing); ``path`` for
    the first two."""

    kind: str
    path: Path | None = None


class FileFingerprints:
    """:func:`~inspatio_cli.files.fingerprint_file`, remembered by resolved path: call it with a path (or
    :class:`~inspatio_cli.video.multiview.Views`: their :meth:`~inspatio_cli.video.multiview.Views.fingerprint`)."""

    def __init__(self) -> None:
        self.known: dict[Path, str] = {}

    def __call__(self, path: str | Path | Views) -> str:
        if isinstance(path, Views):
            return path.fingerprint()
        key = Path(path).resolve()
        if key not in self.known:
            self.known[key] = fingerprint_file(path)
        return self.known[key]


@dataclass(frozen=True)
class RenderPlan:
    """One render, planned (see the module docstring).

    ``info``: the video's probe; ``trajectory``: resolved for it on the canvas (per output frame pose, time
    map, intrinsics); ``camera``: the trajectory and time options; ``depth``: its source; ``canvas``: the
    fit of the source frames onto the canvas ``size`` (H, W); ``prompt``: the prompt text, ``None`` when it
    will be a caption of the video; ``settings``: the resolved settings (the sidecar's ``settings``) and
    ``fingerprint`` their 16-hex-digit identity; ``weights``: registry names of the files to load;
    ``rules``: the model's render rules (``--model``), handed to the scene.
    """

    video: Path | Views
    info: VideoInfo
    trajectory: Trajectory
    camera: CameraOptions
    depth: DepthSource
    canvas: Fit
    prompt: str | None
    settings: dict[str, Any]
    fingerprint: str
    weights: tuple[str, ...]
    rules: RenderRules
    file_fingerprint: FileFingerprints = field(default_factory=FileFingerprints, compare=False, repr=False)
    """:func:`~inspatio_cli.files.fingerprint_file` of a path, computed once per file for this plan."""

    @property
    def size(self) -> tuple[int, int]:
        """The canvas (H, W)."""
        return self.canvas.dst_hw


def can_caption(weights_dir: str | Path | None) -> bool:
    """Whether a render without a prompt gets an automatic caption: that needs the optional caption extra
    and the captioner's weights; without either the run goes on with the empty prompt (and a warning
    saying how to enable captions)."""
    return (captioning.captioning_available()
            and hub.locate(catalog.entry("captioner"), weights_dir) is not None)


def text_files_present(weights_dir: str | Path | None) -> bool:
    """Whether the text encoder and its tokenizer are on disk."""
    return all(hub.locate(catalog.entry(name), weights_dir) is not None for name in TEXT_WEIGHTS)


def prompt_text(prompt: str | None, prompt_file: str | Path | None, weights_dir: str | Path | None) -> str | None:
    """The raw prompt of a render when it is known before running anything (``prompt``, or the text of
    ``prompt_file``; ``""`` when there is neither and the video cannot be captioned), ``None`` when it
    will be a caption. :class:`UsageError` when both are given, :class:`PromptError` for bad text."""
    if prompt is not None and prompt_file is not None:
        raise UsageError("give either --prompt or --prompt-file, not both")
    if prompt_file is not None:
        return read_prompt_file(prompt_file)
    if prompt is not None:
        return check_prompt_text(prompt)
    return None if can_caption(weights_dir) else ""


def required_weights(setup: ModelSetup, video: str | Path | Views, *, depth: str | Path | None, text: str | None,
                     fit: str, size: tuple[int, int], info: VideoInfo | None = None,
                     model: str = DEFAULT_GENERATOR) -> list[str]:
    """Registry names of every weight file a render of ``video`` needs with the prompt ``text`` (``None``:
    a caption): ``model``'s generator and the autoencoder unless held (:class:`ModelSetup`), the text encoder and
    tokenizer unless the prompt's embedding is cached and they are absent, the depth model unless the depth
    comes from ``depth``, a sidecar or the estimate cache for ``fit`` and the canvas ``size`` (H, W).
    ``info``: the video's probe, when the caller has it."""
    text_needed = (text is None or text_files_present(setup.weights_dir)
                   or find_cached_embedding(text, TEXT_DTYPE) is None)
    return (render_weights(setup.decoder, model=model, held=setup.held, text=text_needed, depth=False)
            + depth_weights_needed(video, depth, fit=fit, size=size, info=info))


def trajectory_digest(trajectory: Trajectory) -> str:
    """16 hex digits of the resolved trajectory's content: its poses ``rel_c2w``, time map and intrinsics
    ``K`` (when it has its own), byte for byte. With the output length and the canvas (which ``K`` is in
    pixels of), both in the settings, equal digests mean equal per-frame targets."""
    digest = hashlib.sha256()
    for tensor in (trajectory.rel_c2w, trajectory.time_map, trajectory.K):
        if tensor is not None:
            digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:16]


def fingerprint_of(settings: dict[str, Any]) -> str:
    """16 hex digits identifying ``settings`` (paths left out: moving a file keeps the fingerprint). A
    video's frame rate is part of its content; an image's is a setting, so it is hashed with the image. The
    default model is left out, so renders made before ``--model`` existed keep their fingerprint."""
    identity = {k: v for k, v in settings.items() if k not in ("video", "trajectory", "depth")
                and (k, v) != ("model", DEFAULT_GENERATOR)}
    source = settings["video"]
    identity["video"] = source["fingerprint"] if source["kind"] == "video" else [source["fingerprint"], source["fps"]]
    identity["trajectory"] = settings["trajectory"]["digest"]
    identity["depth"] = settings["depth"].get("fingerprint", settings["depth"].get("estimate"))
    if "align_to" in settings["trajectory"]:
        identity["align_to"] = settings["trajectory"]["align_to"]["fingerprint"]
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def render_inputs(video: str | Path | Views, trajectory: str | Path | TrajectorySource, *,
                  depth: str | Path | None = None, prompt_file: str | Path | None = None) -> dict[Path, str]:
    """The files a render (or preview) reads, by what they are: no output may replace one of them."""
    inputs = {path: "a source view" if isinstance(video, Views) else "the source video" for path in source_files(video)}
    if isinstance(trajectory, (str, Path)) and Path(trajectory).is_file():
        inputs[Path(trajectory)] = "the trajectory file"
    if depth is not None:
        inputs[Path(depth)] = "the depth file"
    if prompt_file is not None:
        inputs[Path(prompt_file)] = "the prompt file"
    return inputs


def planned_outputs(output: Path, *, sidecar: bool, save_condition: str | Path | None) -> list[tuple[Path, str]]:
    """Every file a render (``sidecar``: its ``<output stem>.json``) or preview writes, with what it is."""
    outputs = [(output, "the output")]
    if sidecar:
        outputs.append((output.with_suffix(".json"), "the sidecar"))
    if save_condition is not None:
        outputs += condition_outputs(Path(save_condition))
    return outputs


def check_render_outputs(output: Path, inputs: dict[Path, str], *, sidecar: bool,
                         save_condition: str | Path | None, overwrite: bool) -> None:
    """Before any work: none of the run's :func:`planned_outputs` is an input, another of its outputs or
    (unless ``overwrite``) an existing file (:func:`~inspatio_cli.files.check_outputs`)."""
    check_outputs(planned_outputs(output, sidecar=sidecar, save_condition=save_condition), inputs,
                  overwrite=overwrite)


def make_plan(setup: ModelSetup, video: str | Path | Views, trajectory: str | Path | TrajectorySource, *,
              depth: str | Path | None = None, prompt: str | None = None, prompt_file: str | Path | None = None,
              seed: int = 0, camera: CameraOptions | None = None, fit: str = "stretch",
              size: Sequence[int] | None = None, crf: int = 18, audio: bool = True, frames: int | None = None,
              fps: float | None = None, model: str = DEFAULT_GENERATOR) -> RenderPlan:
    """The plan of a render of ``video`` (or a still image) along ``trajectory`` (a file, a preset name or a
    loaded source; ``video`` may be the :class:`~inspatio_cli.video.multiview.Views` of one scene) with
    :meth:`Rerenderer.render <.rerender.Rerenderer.render>`'s arguments (``frames`` and
    ``fps``: an image's output length and frame rate, :func:`~inspatio_cli.scene.source_camera`; ``model``:
    ``world`` or ``world-1.5``, the generator and its render rules, which may turn ``fit`` stretch into crop,
    :meth:`~inspatio_cli.views.RenderRules.fit_mode`). Probes the
    video once, parses and resolves the trajectory once, reads the prompt file if any (read it first when it
    is standard input, and pass its text as ``prompt``); loads no model and no pixels.

    Raises :class:`UsageError` for bad options (size, fit, both prompts), :class:`VideoError`,
    :class:`TrajectoryError` and :class:`PromptError` for bad inputs.
    """
    camera = camera or CameraOptions()
    hw = check_size(size)
    rules = render_rules(model)
    text = prompt_text(prompt, prompt_file, setup.weights_dir)
    info = source_info(video, fps)
    fit = rules.fit_mode(fit, (info.height, info.width), hw)
    canvas = Fit.make((info.height, info.width), hw, fit)
    source = trajectory if isinstance(trajectory, TrajectorySource) else camera.load(trajectory)
    camera = source_camera(info, source, camera, frames)
    resolved = source.resolve(trajectory_frames(info), camera.time, fps=info.fps, size=hw)
    sidecar = source_sidecar(video) if depth is None else None
    depth_source = (DepthSource("file", Path(depth)) if depth is not None else
                    DepthSource("sidecar", Path(sidecar)) if sidecar is not None else DepthSource("estimate"))
    weights = required_weights(setup, video, depth=depth_source.path, text=text, fit=fit, size=hw, info=info,
                               model=model)
    fingerprints = FileFingerprints()
    located = {name: hub.locate(catalog.entry(name), setup.weights_dir)
               for name in (generator_weights(model), autoencoder_weights(setup.decoder))}
    settings = {
        "video": {"path": info.path, "fingerprint": fingerprints(video), "kind": info.kind, "fps": info.fps,
                  **({"views": [str(p) for p in video.paths]} if isinstance(video, Views) else {})},
        "trajectory": {"source": str(trajectory) if not isinstance(trajectory, TrajectorySource) else
                       type(trajectory).__name__, "digest": trajectory_digest(resolved), "frames": len(resolved)},
        "camera": camera.describe(),
        "depth": ({"path": str(depth_source.path), "fingerprint": fingerprints(depth_source.path)}
                  if depth_source.path is not None else {"estimate": "default depth model, cached by video content"}),
        "prompt": text, "seed": int(seed), "model": model, "decoder": setup.decoder, "dtype": setup.dtype, "fit": fit,
        "size": list(hw), "crf": int(crf), "audio": bool(audio),
        "weights": {name: None if path is None else fingerprints(path) for name, path in located.items()},
    }
    if camera.align_to is not None:
        camera.load_cameras(info.frame_count)  # a bad cameras file fails here, before any depth or model work
        settings["trajectory"]["align_to"] = {"path": camera.align_to, "fingerprint": fingerprints(camera.align_to)}
    return RenderPlan(video if isinstance(video, Views) else Path(video), info, resolved, camera, depth_source,
                      canvas, text, settings, fingerprint_of(settings), tuple(weights), rules, fingerprints)
