"""``rerender``: the whole InSpatio-World pipeline, streaming chunk by chunk, as a reusable object.

:class:`Rerenderer` holds the settings that decide which models run (device, precision, autoencoder) and
keeps the generator and the autoencoder, built on first use, for any number of :meth:`Rerenderer.render`
calls. One render:

1. plans it once (:func:`.plan.make_plan`: probe, resolved trajectory, depth source, prompt, settings and
   their fingerprint, the weight files it needs) and checks every weight file before building anything;
2. prepares the scene (:func:`scene.open_scene` with the plan's probe and trajectory: depth from
   ``--depth``/sidecar/cache/estimate, per-frame cameras);
3. picks the prompt (``--prompt``/``--prompt-file``; without one, a Florence-2 caption of the video when the
   optional ``caption`` extra is installed, else the empty prompt with a warning) and gets its umT5
   embedding from the cache or the text encoder, which is freed before the generator is loaded;
4. streams: per generator chunk (9 frames for the first, then 12) it warps the frames, makes the latent
   condition (:class:`generate.condition.ChunkFeeder`: source and warped frames through two stream
   encoders, the mask folded into its 4 latent channels), runs one STAR chunk (context pass + 4 denoising
   steps), decodes it and appends the frames to the output: :class:`.stream.ChunkStepper`, which
   :meth:`Rerenderer.session` also steps, with the caller's cameras (:mod:`.session`).

Memory does not grow with the video: between chunks only the generator's KV buffer and previous chunk,
the autoencoders' per-layer caches and at most a chunk of latents are kept (the depth maps, read once,
are the exception).

Differences from the official script, all deliberate (DESIGN.md principle 5):

* **No frame is lost.** The official code drops the 1 to 10 frames that do not fill a last chunk. Here the
  time map is padded to :func:`scene.padded_length` frames by repeating its last frame (source frame and
  camera), and the decoded video is trimmed back: the output has exactly one frame per time-map entry.
* **Source frame rate**, with the source audio when every source frame is shown once in order
  (``audio=False`` / ``--no-audio`` drops it); the official output is always 24 fps without audio.
* **Exact mask.** The warped frames reach the encoder quantised to 8 bits, as the official render video
  stores them (:func:`video.to_uint8` levels, then ``u8/255*2-1``), without the H.264 noise; the mask
  goes to the generator exactly, not through the official lossy mask video.
* With ``decoder="tae"`` TAEHV encodes and decodes, as the official ``--use_tae`` does (its latents lag the
  Wan VAE's by 3 frames: a chunk is generated once the next warped chunk has been encoded).
* Noise comes from one ``torch.Generator`` seeded with ``seed`` on the generator's device
  (:class:`generate.SeededNoise`), so a chunk's noise depends only on the seed and the chunks before it.

A still image is rendered as a video of one frame shown at every output frame (:mod:`inspatio_cli.video.image`,
:func:`scene.source_camera`).

Outputs: the video (atomic: nothing under the final name until it is complete; Ctrl-C leaves nothing) and
a sidecar ``<output stem>.json`` (atomic) described in :meth:`RerenderResult.summary`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from .. import __version__
from ..cameras import CameraOptions, TrajectorySource, chunk_plan
from ..choices import DECODERS, check_size, check_video_output
from ..errors import UsageError, WeightsError, out_of_memory
from ..devices import resolve_device, resolve_dtype
from ..files import atomic_output
from ..generate.scheduler import FlowMatchScheduler
from ..meter import StageMeter
from ..models.dit import DTYPES, CausalWanDiT
from ..models.streaming import StreamingAutoencoder
from ..scene import Scene, open_scene, padded_length
from ..progress import Reporter
from ..text import read_prompt_file
from ..video import lost_frames_warning
from ..video.multiview import Views, source_files
from ..weights import hub
from .models import Models, load_models
from .needs import DEFAULT_GENERATOR, autoencoder_weights
from .plan import (ModelSetup, RenderPlan, can_caption, check_render_outputs, make_plan, prompt_text,
                   render_inputs, required_weights)
from .prompt import embed_prompts, prompt_record
from .session import Prepared, RenderSession, live_source
from .stream import ChunkStepper, StreamOptions, stream

SIDECAR_FORMAT = "inspatio-rerender/1"


@dataclass
class RerenderResult:
    """What one :meth:`Rerenderer.render` wrote and how it went; :meth:`summary` is the sidecar object."""

    output: Path
    sidecar: Path
    frames: int
    fps: float
    size: tuple[int, int]
    chunks: int
    padded_frames: int
    audio: bool
    seconds: dict[str, float]
    peak_memory: dict[str, Any]
    warnings: list[str]
    prompt: dict[str, Any]
    settings: dict[str, Any]
    fingerprint: str
    scene: dict[str, Any]
    weights: list[dict[str, Any]]
    coverage: dict[str, float]
    condition_dir: Path | None = None
    lost_frames: int = 0
    setup_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def frames_per_second(self) -> float:
        """Output frames per second of wall time, all stages included."""
        total = self.seconds.get("total", 0.0)
        return self.frames / total if total > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """The sidecar ``OUT.json`` (also the ``--json`` result): format, tool version, the ``model``, output
        facts, the source (``kind`` video, image or views, path, frames, fps), the inputs, the scene (sizes,
        depth origin, trajectory), resolved settings and their fingerprint, prompt (and caption), weight files with sizes
        and fingerprints, per-stage seconds, peak memory, warp coverage and warnings. ``setup_seconds`` is
        the work done before the render for all the jobs of a run at once (depth estimates, captions and
        prompt embeddings, model loading: see :func:`batch.run_jobs`)."""
        return {
            "format": SIDECAR_FORMAT, "version": __version__, "output": str(self.output),
            "model": self.settings["model"],
            "frames": self.frames, "fps": self.fps, "size": list(self.size), "chunks": self.chunks,
            "padded_frames": self.padded_frames, "audio": self.audio, "lost_frames": self.lost_frames,
            "condition_dir": None if self.condition_dir is None else str(self.condition_dir),
            "source": {**self.scene["source"], "frames": self.scene["source_frames"], "fps": self.scene["fps"]},
            "inputs": {"video": self.scene["video"], "trajectory": self.settings["trajectory"]["source"],
                       "depth": self.scene["depth"],
                       "prompt": self.prompt["text"] if self.prompt["source"] != "caption" else None},
            "scene": self.scene, "settings": self.settings, "fingerprint": self.fingerprint,
            "prompt": self.prompt, "weights": self.weights, "seconds": self.seconds,
            "setup_seconds": self.setup_seconds,
            "frames_per_second": round(self.frames_per_second, 4), "peak_memory": self.peak_memory,
            "coverage": self.coverage, "warnings": list(self.warnings),
        }


class Rerenderer:
    """Rerenders videos along camera trajectories with InSpatio-World; models load once, on first use.

    ``weights_dir``: a folder laid out like the official ``checkpoints/`` (default ``$INSPATIO_WEIGHTS_DIR``,
    else the Hugging Face cache; never the network). ``device``: ``auto|cpu|cuda|cuda:N`` for the depth
    model, warp, autoencoder and generator; ``dtype``: ``auto|bf16|fp16|fp32`` for the generator and the
    Wan VAE (``auto``: bf16 on CUDA, fp32 on the CPU; TAEHV runs in fp16 on CUDA, as officially);
    ``decoder``: ``wan`` (Wan2.1 VAE) or ``tae`` (TAEHV for encode and decode); ``text_device``: where the
    umT5 encoder (and the captioner) run, ``auto`` = the GPU when it has room, else the CPU;
    ``compile``: ``torch.compile`` the generator's blocks (eagerly, with a warning, where it cannot);
    ``track_memory``: on the CPU, measure live tensor bytes per stage (slow; for tests and benchmarks, see
    :mod:`.meter`); ``models``: a :class:`Models` to use or share (e.g. with injected models);
    ``reporter``: progress and messages (default silent).
    """

    def __init__(self, weights_dir: str | Path | None = None, *, device: str = "auto", dtype: str = "auto",
                 decoder: str = "wan", text_device: str = "auto", compile: bool = False,
                 track_memory: bool = False, models: Models | None = None, reporter: Reporter | None = None):
        if decoder not in DECODERS:
            raise UsageError(f"unknown decoder {decoder!r} (choose {' or '.join(DECODERS)})")
        self.weights_dir = weights_dir
        self.device = resolve_device(device)
        self.dtype_name = resolve_dtype(dtype, self.device)
        self.dtype = DTYPES[self.dtype_name]
        self.decoder = decoder
        self.text_device_name = text_device
        self.compile = compile
        self.track_memory = track_memory
        self.models = models or Models()
        self.reporter = reporter or Reporter("silent")
        # seconds of the work a run of jobs does once, before its renders (depth, prompts, load: see
        # batch.run_jobs); every sidecar of the run reports them as setup_seconds
        self.setup = StageMeter(self.device)
        # cleaned prompts this renderer has embedded: their cache hit and any truncation warning were
        # reported then (a batch embeds every prompt up front), so later lookups of them stay quiet
        self._embedded: set[str] = set()

    @property
    def autoencoder_weights(self) -> str:
        """Registry name of the autoencoder file: ``vae`` or ``tae``."""
        return autoencoder_weights(self.decoder)

    def can_caption(self) -> bool:
        """Whether a render without a prompt gets an automatic caption (:func:`.plan.can_caption`)."""
        return can_caption(self.weights_dir)

    def model_setup(self) -> ModelSetup:
        """This renderer's weights folder, decoder, precision and the models it holds, for a plan."""
        return ModelSetup(self.weights_dir, self.decoder, self.dtype_name, self.models.held(self.decoder))

    def plan(self, video: str | Path | Views, trajectory: str | Path | TrajectorySource, **options: Any) -> RenderPlan:
        """The plan of a render with these arguments (those of :meth:`settings`; :func:`.plan.make_plan`)."""
        return make_plan(self.model_setup(), video, trajectory, **options)

    def required_weights(self, video: str | Path | Views, *, depth: str | Path | None = None, prompt: str | None = None,
                         prompt_file: str | Path | None = None, fit: str = "stretch",
                         size: Sequence[int] | None = None, model: str = DEFAULT_GENERATOR) -> list[str]:
        """Registry names of every weight file a render with these arguments needs: ``model``'s generator
        and the autoencoder (unless already in :attr:`models`), the text encoder and tokenizer unless the
        prompt's embedding is cached, the depth model unless the depth comes from a file, sidecar or cache
        (:func:`.plan.required_weights`, without resolving a trajectory)."""
        return required_weights(self.model_setup(), video, depth=depth, fit=fit, size=check_size(size),
                                text=prompt_text(prompt, prompt_file, self.weights_dir), model=model)

    def check_weights(self, video: str | Path | Views, **options: Any) -> dict[str, Path]:
        """Local paths of :meth:`required_weights` (same arguments); one :class:`WeightsError` lists every
        missing file with its size and the download command. Touches no network and builds nothing."""
        return hub.resolve(self.required_weights(video, **options), self.weights_dir, purpose="for rerender")

    def settings(self, video: str | Path | Views, trajectory: str | Path | TrajectorySource, *,
                 depth: str | Path | None = None, prompt: str | None = None, prompt_file: str | Path | None = None,
                 seed: int = 0, camera: CameraOptions | None = None, fit: str = "stretch",
                 size: Sequence[int] | None = None, crf: int = 18, audio: bool = True, frames: int | None = None,
                 fps: float | None = None, model: str = DEFAULT_GENERATOR) -> dict[str, Any]:
        """The resolved settings of a render, identified by content rather than by path (see :mod:`.plan`).
        Cheap: probes the video and parses the trajectory, loads no model. :meth:`fingerprint` hashes it."""
        return self.plan(video, trajectory, depth=depth, prompt=prompt, prompt_file=prompt_file, seed=seed,
                         camera=camera, fit=fit, size=size, crf=crf, audio=audio, frames=frames, fps=fps,
                         model=model).settings

    def fingerprint(self, video: str | Path | Views, trajectory: str | Path | TrajectorySource, **options: Any) -> str:
        """The settings fingerprint a render with these arguments records in its sidecar (arguments as
        :meth:`settings`): a finished job whose sidecar holds the same value need not be redone."""
        return self.plan(video, trajectory, **options).fingerprint

    def embed_prompts(self, prompts: Sequence[str]) -> list[torch.Tensor]:
        """umT5 embeddings ``(1, 512, dim)`` of raw prompts through the cache, the text encoder loaded once
        for the missing ones and freed before returning (:func:`.prompt.embed_prompts`; a batch calls this
        first so the encoder never shares memory with the generator)."""
        return embed_prompts(prompts, weights_dir=self.weights_dir, text_device=self.text_device_name,
                             reporter=self.reporter, embedded=self._embedded)

    def load_models(self, paths: dict[str, Path] | None = None,
                    model: str = DEFAULT_GENERATOR) -> tuple[CausalWanDiT, StreamingAutoencoder]:
        """``model``'s generator and the autoencoder, loaded now unless already held (``paths``: from
        :meth:`check_weights`; default: resolved here; :func:`.models.load_models`)."""
        return load_models(self.models, paths, decoder=self.decoder, device=self.device, dtype=self.dtype,
                           weights_dir=self.weights_dir, reporter=self.reporter, model=model)

    def render(self, video: str | Path | Views, trajectory: str | Path | TrajectorySource, output: str | Path, *,
               depth: str | Path | None = None, prompt: str | None = None, prompt_file: str | Path | None = None,
               seed: int = 0, camera: CameraOptions | None = None, fit: str = "stretch",
               size: Sequence[int] | None = None, crf: int = 18, audio: bool = True,
               save_condition: str | Path | None = None, skip_bad_frames: bool = False, frames: int | None = None,
               fps: float | None = None, model: str = DEFAULT_GENERATOR, overwrite: bool = False) -> RerenderResult:
        """Rerender ``video`` (or a still image: png, jpg, webp, or the views of one scene,
        :func:`~inspatio_cli.video.multiview.open_views`; a caption is made of view 0) along ``trajectory``
        (a file, a preset name or a loaded source) into ``output`` (.mp4/.mov/.mkv) and its sidecar
        ``<output>.json``; see the module docstring.

        ``depth``: a depth cache file (default: the sidecar, else the cached estimate, else the depth
        model); ``prompt``/``prompt_file``: the text prompt (at most one; neither: caption or empty);
        ``seed``: the noise seed; ``camera``: trajectory conventions, ``relative_to_source`` and time
        edits; ``fit``: stretch|crop|pad onto the canvas ``size`` (H, W), default 480x832 (depth made on
        another canvas is resampled); ``crf``: H.264 quality; ``audio``: keep the source audio when the
        time map is the identity; ``save_condition``: a folder for the condition videos (``warped.mp4``,
        lossless ``mask.mp4``); ``skip_bad_frames``: source frames that do not decode are replaced by the
        previous good one (counted in ``lost_frames``, warned about) instead of stopping with an error;
        ``overwrite``: replace existing outputs. Before any work, an output (video, sidecar, condition
        videos) that is an input, another output of the render or (without ``overwrite``) an existing file
        is refused (:func:`.plan.check_render_outputs`).
        ``frames``/``fps``: for an image, the output length (default: a per-frame trajectory's pose count,
        else :data:`~inspatio_cli.video.DEFAULT_IMAGE_FRAMES`) and frame rate (default
        :data:`~inspatio_cli.video.DEFAULT_IMAGE_FPS`); every output frame shows the image.
        ``model``: ``world`` (InSpatio-World v1, the default) or ``world-1.5`` (the v1.5 generator with the
        v1.5 render rules, :data:`inspatio_cli.views.RENDER_RULES`).

        Raises :class:`WeightsError` (all missing files at once, before any work), :class:`UsageError`,
        :class:`InputError` subclasses for bad inputs, :class:`RuntimeFailure` when out of memory.
        """
        reporter = self.reporter
        first_warning = len(reporter.warnings)
        output = check_video_output(output, None if isinstance(video, Views) else video)
        check_render_outputs(output, render_inputs(video, trajectory, depth=depth, prompt_file=prompt_file),
                             sidecar=True, save_condition=save_condition, overwrite=overwrite)
        meter = StageMeter(self.device, self.track_memory)
        with meter("total"):
            ready = self._prepare(video, trajectory, meter, depth=depth, prompt=prompt, prompt_file=prompt_file,
                                  seed=seed, camera=camera, fit=fit, size=size, crf=crf, audio=audio,
                                  frames=frames, fps=fps, skip_bad_frames=skip_bad_frames, model=model)
            plan, scene, described, paths = ready.plan, ready.scene, ready.prompt, ready.paths
            generator, autoencoder, embedding = ready.generator, ready.autoencoder, ready.embedding
            with meter("depth range"):
                scene.log_depth_max(self.device, reporter=reporter)
            keep_audio = audio and scene.video.has_audio and scene.time_is_identity
            if audio and scene.video.has_audio and not keep_audio:
                reporter.info("the source audio is not kept: the time map does not show every frame once, in order")
            reporter.info(f"{scene.video.path}: {scene.video.frame_count} frames at {scene.video.fps:g} fps -> "
                          f"{scene.num_frames} frames at {scene.size[0]}x{scene.size[1]}, depth from "
                          f"{scene.depth_origin}, model {model}, decoder {self.decoder}, {self.dtype_name} on "
                          f"{self.device}")
            try:
                coverages, lost = stream(scene, output, generator, autoencoder, embedding, StreamOptions(
                    seed, crf, keep_audio, save_condition, skip_bad_frames, self.device, self.compile), meter, reporter)
            except (RuntimeError, MemoryError) as exc:
                failure = out_of_memory(exc, f"generating on {self.device}")
                if failure is None:
                    raise
                raise failure from None
            if lost:
                reporter.warn(lost_frames_warning(scene.video.path, lost, scene.video.frame_count))
        result = self._result(output, scene, plan, described, paths, meter, coverages, keep_audio,
                              save_condition, lost, reporter.warnings[first_warning:])
        with atomic_output(result.sidecar) as tmp:
            tmp.write_text(json.dumps(result.summary(), indent=2) + "\n")
        reporter.info(f"wrote {output} ({result.frames} frames, {result.fps:g} fps, "
                      f"{result.frames_per_second:.2f} frames/s) and {result.sidecar}")
        reporter.event("result", **result.summary())
        return result

    def session(self, video: str | Path, trajectory: str | Path | TrajectorySource | None = None, *,
                depth: str | Path | None = None, prompt: str | None = None, prompt_file: str | Path | None = None,
                seed: int = 0, camera: CameraOptions | None = None, fit: str = "stretch",
                size: Sequence[int] | None = None, skip_bad_frames: bool = False, frames: int | None = None,
                fps: float | None = None, model: str = DEFAULT_GENERATOR) -> RenderSession:
        """A :class:`~.session.RenderSession` on ``video`` (or an image), prepared as :meth:`render` prepares
        (same arguments), then made chunk by chunk, each step with the cameras its caller chooses; it steps
        :meth:`render`'s chunk loop, so stepped with ``trajectory``'s cameras it gives the render's frames bit
        for bit. ``trajectory``: sets the length, time map, default cameras and clip-wide z-buffer maximum;
        ``None``: a live session (output frame k shows source frame k, an image's for ``frames`` frames; every
        step gives its cameras; running z-buffer maximum, :mod:`.stream`), which needs the Wan VAE decoder."""
        if trajectory is None and self.decoder == "tae":
            raise UsageError("a live render session (no trajectory) needs the Wan VAE decoder: TAEHV encodes a "
                             "chunk only together with the next chunk's frames, whose cameras are not known yet")
        meter = StageMeter(self.device, self.track_memory)
        live = trajectory is None
        ready = self._prepare(video, live_source() if live else trajectory, meter, depth=depth, prompt=prompt,
                              prompt_file=prompt_file, seed=seed, camera=camera, fit=fit, size=size, crf=18,
                              audio=False, frames=frames, fps=fps, skip_bad_frames=skip_bad_frames, model=model)
        if not live:  # the clip-wide maximum of the trajectory's cameras (a live session keeps a running one)
            with meter("depth range"):
                ready.scene.log_depth_max(self.device, reporter=self.reporter)
        stepper = ChunkStepper(ready.scene, ready.generator, ready.autoencoder, ready.embedding, seed=seed,
                               device=self.device, compile=self.compile, skip_bad_frames=skip_bad_frames,
                               live=live, relative_to_source=ready.plan.camera.relative_to_source, meter=meter,
                               reporter=self.reporter)
        return RenderSession(stepper, ready.scene, ready.prompt, meter, live=live)

    def _prepare(self, video: str | Path, trajectory: str | Path | TrajectorySource, meter: StageMeter, *,
                 depth: str | Path | None, prompt: str | None, prompt_file: str | Path | None, seed: int,
                 camera: CameraOptions | None, fit: str, size: Sequence[int] | None, crf: int, audio: bool,
                 frames: int | None, fps: float | None, skip_bad_frames: bool, model: str) -> Prepared:
        """What a render or a session needs before its first chunk, each part timed on ``meter``: the plan
        and its weight files (checked first), the scene, the prompt record and embedding, the models."""
        reporter = self.reporter
        if prompt is not None and prompt_file is not None:
            raise UsageError("give either --prompt or --prompt-file, not both")
        from_file = prompt_file is not None
        if from_file:
            prompt = read_prompt_file(prompt_file)  # read once: the file may be standard input
        with meter("check"):
            plan = self.plan(video, trajectory, depth=depth, prompt=prompt, seed=seed, camera=camera, fit=fit,
                             size=size, crf=crf, audio=audio, frames=frames, fps=fps, model=model)
            paths = hub.resolve(plan.weights, self.weights_dir, purpose="for rerender")
        with meter("scene"):
            scene = open_scene(video, plan.trajectory, camera=plan.camera, depth=plan.depth.path, fit=fit,
                               size=plan.size, resample_depth=True, weights_dir=self.weights_dir,
                               device=str(self.device), skip_bad_frames=skip_bad_frames, info=plan.info,
                               video_fingerprint=plan.file_fingerprint(video), rules=plan.rules,
                               reporter=reporter)
        with meter("prompt"):
            described = prompt_record(source_files(video)[0], plan.prompt, given=prompt is not None, from_file=from_file,
                                      weights_dir=self.weights_dir, text_device=self.text_device_name,
                                      reporter=reporter)
            embedding = self.embed_prompts([described["text"]])[0]
        with meter("load"):
            generator, autoencoder = self.load_models(paths, model)
            paths = {**paths, **self.models.files}  # the files of the models held, loaded now or before
        if embedding.shape[-1] != generator.cfg.text_dim:
            raise WeightsError(f"the prompt embedding has {embedding.shape[-1]} dimensions but the generator "
                               f"expects {generator.cfg.text_dim}: the text encoder does not belong to it")
        return Prepared(plan, paths, scene, described, embedding, generator, autoencoder)

    def _result(self, output: Path, scene: Scene, plan: RenderPlan, prompt: dict[str, Any],
                paths: dict[str, Path], meter: StageMeter, coverages: list[float], audio: bool,
                save_condition: str | Path | None, lost_frames: int, warnings: list[str]) -> RerenderResult:
        figures = meter.report()
        weights = [{"name": name, "file": str(path), "size": path.stat().st_size,
                    "fingerprint": plan.file_fingerprint(path)} for name, path in sorted(paths.items())]
        resolved = {**plan.settings, "device": str(self.device), "text_device": self.text_device_name,
                    "compile": self.compile, "steps": [float(s) for s in self._steps()]}
        return RerenderResult(
            output=output, sidecar=output.with_suffix(".json"), frames=scene.num_frames, fps=float(scene.video.rate),
            size=scene.size, chunks=len(chunk_plan(padded_length(scene.num_frames))),
            padded_frames=padded_length(scene.num_frames) - scene.num_frames, audio=audio,
            seconds=figures["seconds"], peak_memory=figures["peak_memory"], warnings=list(warnings),
            prompt=prompt, settings=resolved, fingerprint=plan.fingerprint, scene=scene.describe(),
            weights=weights, coverage={"min": round(min(coverages), 6),
                                       "mean": round(sum(coverages) / len(coverages), 6)},
            condition_dir=None if save_condition is None else Path(save_condition), lost_frames=lost_frames,
            setup_seconds=self.setup.report()["seconds"])

    @staticmethod
    def _steps() -> list[float]:
        return FlowMatchScheduler().denoising_steps().tolist()

