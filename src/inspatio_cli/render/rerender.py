"""``rerender``: the whole InSpatio-World pipeline, streaming chunk by chunk, as a reusable object.

:class:`Rerenderer` holds the settings that decide which models run (device, precision, autoencoder) and
keeps the generator and the autoencoder, built on first use, for any number of :meth:`Rerenderer.render`
calls. One render:

1. checks every weight file it will need (:meth:`Rerenderer.required_weights`) before building anything;
2. prepares the scene (:func:`pipeline.open_scene`: probe, depth from ``--depth``/sidecar/cache/estimate,
   trajectory and time edits, per-frame cameras);
3. picks the prompt (``--prompt``/``--prompt-file``; without one, a Florence-2 caption of the video when the
   optional ``caption`` extra is installed, else the empty prompt with a warning) and gets its umT5
   embedding from the cache or the text encoder, which is freed before the generator is loaded;
4. streams: per generator chunk (9 frames for the first, then 12) it warps the frames, encodes the source
   and the warped frames with two stream encoders, folds the mask into its 4 latent channels, runs one
   STAR chunk (context pass + 4 denoising steps), decodes it and appends the frames to the output.

Memory does not grow with the video: between chunks only the generator's KV buffer and previous chunk,
the autoencoders' per-layer caches and at most a chunk of latents are kept (the depth maps, read once,
are the exception).

Differences from the official script, all deliberate (DESIGN.md principle 5):

* **No frame is lost.** The official code drops the 1 to 10 frames that do not fill a last chunk. Here the
  time map is padded to :func:`pipeline.padded_length` frames by repeating its last frame (source frame and
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

Outputs: the video (atomic: nothing under the final name until it is complete; Ctrl-C leaves nothing) and
a sidecar ``<output stem>.json`` (atomic) described in :meth:`RerenderResult.summary`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

from .. import __version__, registry
from .. import caption as captioning
from ..cameras import CameraOptions, TrajectorySource, chunk_plan
from ..choices import DECODERS, check_size, check_video_output
from ..errors import UsageError, WeightsError, out_of_memory
from ..files import atomic_output, fingerprint_file
from ..depth import find_sidecar
from ..devices import resolve_device, resolve_dtype
from ..generate.scheduler import FlowMatchScheduler
from ..generate.star import FRAMES_PER_CHUNK, ChunkInput, StarSampler
from ..meter import StageMeter
from ..models import dit, tae, vae
from ..models.dit import DTYPES, CausalWanDiT
from ..models.streaming import StreamingAutoencoder
from ..scene import (ConditionWriter, Scene, WarpedChunk, depth_weights_needed, open_scene, padded_length,
                       warped_chunks)
from ..progress import Reporter
from ..text import (NO_PROMPT_WARNING, PromptEmbedder, check_prompt_text, clean_prompt, find_cached_embedding,
                   read_prompt_file, resolve_prompt, resolve_text_device)
from ..video import VideoWriter, lost_frames_warning, probe
from ..warp import coverage, mask_to_latent_channels

TEXT_DTYPE = torch.bfloat16
"""The text encoder always runs in bfloat16, as the official pipeline does (its embeddings are cached)."""
SIDECAR_FORMAT = "inspatio-rerender/1"


@dataclass
class Models:
    """The models a :class:`Rerenderer` keeps between renders (``None`` until first needed).

    ``builds`` counts how often each was loaded from its weights (``generator``, ``autoencoder``), so
    callers (batches, tests) can check that models are built once; ``files`` holds the weight files they
    were loaded from by registry name (every later render's sidecar lists them too). Models put here
    before the first render are used as they are and their weight files are not required. Share one
    holder only between renderers with the same device, precision and decoder.
    """

    generator: CausalWanDiT | None = None
    autoencoder: StreamingAutoencoder | None = None
    builds: dict[str, int] = field(default_factory=lambda: {"generator": 0, "autoencoder": 0})
    files: dict[str, Path] = field(default_factory=dict)


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
        """The sidecar ``OUT.json`` (also the ``--json`` result): format, tool version, output facts, the
        inputs, the scene (sizes, depth origin, trajectory), resolved settings and their fingerprint, prompt (and
        caption), weight files with sizes and fingerprints, per-stage seconds, peak memory, warp coverage
        and warnings. ``setup_seconds`` is the work done before the render for all the jobs of a run at once
        (depth estimates, captions and prompt embeddings, model loading: see :func:`batch.run_jobs`)."""
        return {
            "format": SIDECAR_FORMAT, "version": __version__, "output": str(self.output),
            "frames": self.frames, "fps": self.fps, "size": list(self.size), "chunks": self.chunks,
            "padded_frames": self.padded_frames, "audio": self.audio, "lost_frames": self.lost_frames,
            "condition_dir": None if self.condition_dir is None else str(self.condition_dir),
            "inputs": {"video": self.scene["video"], "trajectory": self.settings["trajectory"]["source"],
                       "depth": self.scene["depth"],
                       "prompt": self.prompt["text"] if self.prompt["source"] != "caption" else None},
            "scene": self.scene, "settings": self.settings, "fingerprint": self.fingerprint,
            "prompt": self.prompt, "weights": self.weights, "seconds": self.seconds,
            "setup_seconds": self.setup_seconds,
            "frames_per_second": round(self.frames_per_second, 4), "peak_memory": self.peak_memory,
            "coverage": self.coverage, "warnings": list(self.warnings),
        }


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _quantize(frames: torch.Tensor) -> torch.Tensor:
    """Frames in [-1, 1] on the 8-bit levels of the official render video: ``trunc((x+1)*127.5)`` (as
    :func:`video.to_uint8`), read back as ``u8/255*2-1``. Stays on the frames' device."""
    return torch.trunc(((frames.float() + 1.0) * 127.5).clamp(0, 255)) / 255 * 2 - 1


class _LatentQueue:
    """Latents ``(B, F, C, h, w)`` arriving in any grouping, handed out 3 frames (one chunk) at a time."""

    def __init__(self) -> None:
        self.parts: list[torch.Tensor] = []

    def __len__(self) -> int:
        return sum(p.shape[1] for p in self.parts)

    def put(self, latents: torch.Tensor) -> None:
        if latents.shape[1]:
            self.parts.append(latents)

    def take(self, count: int = FRAMES_PER_CHUNK) -> torch.Tensor:
        joined = torch.cat(self.parts, 1)
        self.parts = [joined[:, count:]] if joined.shape[1] > count else []
        return joined[:, :count]


class _ChunkFeeder:
    """Warped chunks in, generator inputs out: the source frames and the 8-bit warped frames go through
    two stream encoders, the masks are folded into their latent channels, and :meth:`next` hands out one
    chunk's worth (3 latent frames of each) once the encoders have produced it. The Wan VAE emits a
    chunk's latents with its own frames, TAEHV only with the next chunk's first frames (or at the end),
    so at most two chunks of latents are ever held. ``on_chunk`` sees every warped chunk first."""

    def __init__(self, autoencoder: StreamingAutoencoder, chunks: Iterator[WarpedChunk], meter: StageMeter,
                 on_chunk: Callable[[WarpedChunk], None]):
        self.source, self.warped = autoencoder.stream_encoder(), autoencoder.stream_encoder()
        self.chunks, self.meter, self.on_chunk = chunks, meter, on_chunk
        self.queues = {"reference": _LatentQueue(), "warped": _LatentQueue(), "mask": _LatentQueue()}
        self.finished = False

    def next(self) -> ChunkInput:
        """The next chunk's reference, warped and mask latents."""
        queues, meter = self.queues, self.meter
        while len(queues["reference"]) < FRAMES_PER_CHUNK and not self.finished:
            with meter("warp"):
                chunk = next(self.chunks, None)
            if chunk is None:
                with meter("encode"):
                    queues["reference"].put(self.source.finish())
                    queues["warped"].put(self.warped.finish())
                self.finished = True
                continue
            self.on_chunk(chunk)
            with meter("encode"):
                queues["reference"].put(self.source.feed(chunk.source))
                queues["warped"].put(self.warped.feed(_quantize(chunk.warped)))
                queues["mask"].put(mask_to_latent_channels(chunk.mask[:, 0][None], first=chunk.frames.start == 0))
        return ChunkInput(queues["reference"].take(), queues["warped"].take(), queues["mask"].take())


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

    # ------------------------------------------------------------------------------------------------
    # What a render needs

    @property
    def autoencoder_weights(self) -> str:
        """Registry name of the autoencoder file: ``vae`` or ``tae``."""
        return "vae" if self.decoder == "wan" else "tae"

    def _prompt_text(self, prompt: str | None, prompt_file: str | Path | None) -> str | None:
        """The raw prompt when it is known before running anything, None when it will be a caption."""
        if prompt is not None and prompt_file is not None:
            raise UsageError("give either --prompt or --prompt-file, not both")
        if prompt_file is not None:
            return read_prompt_file(prompt_file)
        if prompt is not None:
            return check_prompt_text(prompt)
        return None if self.can_caption() else ""

    def can_caption(self) -> bool:
        """Automatic captions need the optional extra and the captioner's weights; without either the run
        goes on with the empty prompt (and a warning saying how to enable captions)."""
        return (captioning.captioning_available()
                and registry.locate(registry.entry("captioner"), self.weights_dir) is not None)

    def _text_files_present(self) -> bool:
        return all(registry.locate(registry.entry(n), self.weights_dir) is not None
                   for n in ("text-encoder", "tokenizer"))

    def required_weights(self, video: str | Path, *, depth: str | Path | None = None, prompt: str | None = None,
                         prompt_file: str | Path | None = None, fit: str = "stretch",
                         size: Sequence[int] | None = None) -> list[str]:
        """Registry names of every weight file a render with these arguments needs: the generator and the
        autoencoder (unless already in :attr:`models`), the text encoder and tokenizer unless the prompt's embedding is
        cached, the depth model unless the depth comes from a file, sidecar or cache."""
        names = []
        if self.models.generator is None:
            names.append("generator")
        if self.models.autoencoder is None:
            names.append(self.autoencoder_weights)
        text = self._prompt_text(prompt, prompt_file)
        if text is None or self._text_files_present() or find_cached_embedding(text, TEXT_DTYPE) is None:
            names += ["text-encoder", "tokenizer"]
        return names + depth_weights_needed(video, depth, fit=fit, size=check_size(size))

    def check_weights(self, video: str | Path, **options) -> dict[str, Path]:
        """Local paths of :meth:`required_weights` (same arguments); one :class:`WeightsError` lists every
        missing file with its size and the download command. Touches no network and builds nothing."""
        return registry.resolve(self.required_weights(video, **options), self.weights_dir, purpose="for rerender")

    # ------------------------------------------------------------------------------------------------
    # Settings and their fingerprint

    def settings(self, video: str | Path, trajectory: str | Path | TrajectorySource, *,
                 depth: str | Path | None = None, prompt: str | None = None, prompt_file: str | Path | None = None,
                 seed: int = 0, camera: CameraOptions | None = None, fit: str = "stretch",
                 size: Sequence[int] | None = None, crf: int = 18, audio: bool = True) -> dict[str, Any]:
        """The resolved settings of a render, identified by content rather than by path: the video's and
        depth file's fingerprints, the resolved trajectory's digest (poses, time map, intrinsics), the
        camera options, the prompt (``None`` = automatic caption), seed, decoder, precision, canvas, fit,
        CRF, audio and the generator/autoencoder weights' fingerprints. Cheap: probes the video and parses
        the trajectory, loads no model. :meth:`fingerprint` hashes it."""
        camera = camera or CameraOptions()
        hw = check_size(size)
        info = probe(video)
        source = trajectory if isinstance(trajectory, TrajectorySource) else camera.load(trajectory)
        resolved = source.resolve(info.frame_count, camera.time, fps=info.fps, size=hw)
        trajectory_digest = hashlib.sha256()
        for tensor in (resolved.rel_c2w, resolved.time_map, resolved.K):
            if tensor is not None:
                trajectory_digest.update(tensor.numpy().tobytes())
        depth_file = depth if depth is not None else find_sidecar(video)
        weights = {}
        for name in ("generator", self.autoencoder_weights):
            path = registry.locate(registry.entry(name), self.weights_dir)
            weights[name] = fingerprint_file(path) if path is not None else None
        return {
            "video": {"path": str(video), "fingerprint": fingerprint_file(video)},
            "trajectory": {"source": str(trajectory) if not isinstance(trajectory, TrajectorySource) else
                           type(trajectory).__name__, "digest": trajectory_digest.hexdigest()[:16],
                           "frames": len(resolved)},
            "camera": camera.describe(),
            "depth": ({"path": str(depth_file), "fingerprint": fingerprint_file(depth_file)} if depth_file is not None
                      else {"estimate": "default depth model, cached by video content"}),
            "prompt": self._prompt_text(prompt, prompt_file), "seed": int(seed), "decoder": self.decoder,
            "dtype": self.dtype_name, "fit": fit, "size": list(hw), "crf": int(crf), "audio": bool(audio),
            "weights": weights,
        }

    @staticmethod
    def fingerprint_of(settings: dict[str, Any]) -> str:
        """16 hex digits identifying ``settings`` (paths left out: moving a file keeps the fingerprint)."""
        identity = {k: v for k, v in settings.items() if k not in ("video", "trajectory", "depth")}
        identity["video"] = settings["video"]["fingerprint"]
        identity["trajectory"] = settings["trajectory"]["digest"]
        identity["depth"] = settings["depth"].get("fingerprint", settings["depth"].get("estimate"))
        return _digest(identity)

    def fingerprint(self, video: str | Path, trajectory: str | Path | TrajectorySource, **options) -> str:
        """The settings fingerprint a render with these arguments records in its sidecar (arguments as
        :meth:`settings`): a finished job whose sidecar holds the same value need not be redone."""
        return self.fingerprint_of(self.settings(video, trajectory, **options))

    # ------------------------------------------------------------------------------------------------
    # Prompt, text embedding and models

    def _prompt(self, video: str | Path, prompt: str | None, from_file: bool = False) -> dict[str, Any]:
        """The prompt record: ``text`` (raw), ``source`` (prompt, prompt-file, caption or empty) and the
        ``caption`` (its record) when the text is a caption of the video."""
        reporter = self.reporter
        text = self._prompt_text(prompt, None)
        if text is None:
            caption = captioning.caption_video(video, weights_dir=self.weights_dir, device=self._text_device(),
                                    reporter=reporter)
            reporter.info(f"prompt: caption of frame {caption.frame}: {caption.text}")
            return {"text": caption.text, "source": "caption", "caption": caption.as_dict()}
        if prompt is None:
            fetch = registry.download_command([registry.entry("captioner")], self.weights_dir)
            enable = (f"download the captioner ({fetch})" if captioning.captioning_available() else
                      f"install the optional caption extra ({captioning.EXTRA_COMMAND}) and its weights")
            reporter.warn(f"{NO_PROMPT_WARNING}; or {enable} to caption the video automatically, as the "
                          "official pipeline does")
            return {"text": "", "source": "empty", "caption": None}
        return {"text": resolve_prompt(text, None, reporter), "source": "prompt-file" if from_file else "prompt",
                "caption": None}

    def _text_device(self) -> torch.device:
        return resolve_text_device(self.text_device_name, self.reporter)

    def embed_prompts(self, prompts: Sequence[str]) -> list[torch.Tensor]:
        """umT5 embeddings ``(1, 512, dim)`` of raw prompts, through the disk cache; the text encoder, if
        needed, is loaded once for all missing prompts and freed before returning (a batch calls this
        first so the encoder never shares memory with the generator). Without the encoder files, cached
        embeddings are looked up by their prompt (:func:`text.find_cached_embedding`)."""
        if not self._text_files_present():
            found = [find_cached_embedding(p, TEXT_DTYPE) for p in prompts]
            if all(f is not None for f in found):
                return found
        paths = registry.resolve(["text-encoder", "tokenizer"], self.weights_dir, purpose="for the prompt")
        cleaned = {clean_prompt(p) for p in prompts}
        told = cleaned <= self._embedded
        embedder = PromptEmbedder(paths["text-encoder"], paths["tokenizer"], device=self._text_device(),
                                  dtype=TEXT_DTYPE, reporter=Reporter("silent") if told else self.reporter)
        embeddings = embedder.embed_many(prompts)
        self._embedded |= cleaned
        return embeddings

    def load_models(self, paths: dict[str, Path] | None = None) -> tuple[CausalWanDiT, StreamingAutoencoder]:
        """The generator and autoencoder, loaded now unless already held (``paths``: from
        :meth:`check_weights`; default: resolved here)."""
        models = self.models
        needed = [n for n, m in (("generator", models.generator), (self.autoencoder_weights, models.autoencoder))
                  if m is None]
        if needed and not all(n in (paths or {}) for n in needed):
            paths = registry.resolve(needed, self.weights_dir, purpose="for rerender")
        if models.generator is None:
            self.reporter.info(f"loading the generator on {self.device} ({paths['generator'].name})")
            models.generator = dit.load_generator(paths["generator"], dtype=self.dtype, device=self.device,
                                              reporter=self.reporter)
            models.builds["generator"] += 1
            models.files["generator"] = paths["generator"]
        if models.autoencoder is None:
            path = paths[self.autoencoder_weights]
            self.reporter.info(f"loading the autoencoder on {self.device} ({path.name})")
            if self.decoder == "wan":
                models.autoencoder = vae.load_vae(path, self.dtype, self.device)
            else:
                tae_dtype = torch.float16 if self.device.type == "cuda" and self.dtype_name != "fp32" else self.dtype
                models.autoencoder = tae.load_tae(path, tae_dtype, self.device)
            models.builds["autoencoder"] += 1
            models.files[self.autoencoder_weights] = path
        return models.generator, models.autoencoder

    # ------------------------------------------------------------------------------------------------
    # Rendering

    def render(self, video: str | Path, trajectory: str | Path | TrajectorySource, output: str | Path, *,
               depth: str | Path | None = None, prompt: str | None = None, prompt_file: str | Path | None = None,
               seed: int = 0, camera: CameraOptions | None = None, fit: str = "stretch",
               size: Sequence[int] | None = None, crf: int = 18, audio: bool = True,
               save_condition: str | Path | None = None, skip_bad_frames: bool = False) -> RerenderResult:
        """Rerender ``video`` along ``trajectory`` (a file, a preset name or a loaded source) into ``output``
        (.mp4/.mov/.mkv) and its sidecar ``<output>.json``; see the module docstring.

        ``depth``: a depth cache file (default: the sidecar, else the cached estimate, else the depth
        model); ``prompt``/``prompt_file``: the text prompt (at most one; neither: caption or empty);
        ``seed``: the noise seed; ``camera``: trajectory conventions, ``relative_to_source`` and time
        edits; ``fit``: stretch|crop|pad onto the canvas ``size`` (H, W), default 480x832 (depth made on
        another canvas is resampled); ``crf``: H.264 quality; ``audio``: keep the source audio when the
        time map is the identity; ``save_condition``: a folder for the condition videos (``warped.mp4``,
        lossless ``mask.mp4``); ``skip_bad_frames``: source frames that do not decode are replaced by the
        previous good one (counted in ``lost_frames``, warned about) instead of stopping with an error.

        Raises :class:`WeightsError` (all missing files at once, before any work), :class:`UsageError`,
        :class:`InputError` subclasses for bad inputs, :class:`RuntimeFailure` when out of memory.
        """
        reporter = self.reporter
        first_warning = len(reporter.warnings)
        output = Path(output)
        self._check_paths(video, output)
        if prompt is not None and prompt_file is not None:
            raise UsageError("give either --prompt or --prompt-file, not both")
        from_file = prompt_file is not None
        if from_file:
            prompt = read_prompt_file(prompt_file)  # read once: the file may be standard input
        options = dict(depth=depth, prompt=prompt, fit=fit, size=size)
        meter = StageMeter(self.device, self.track_memory)
        with meter("total"):
            with meter("check"):
                paths = {**self.models.files, **self.check_weights(video, **options)}
                settings = self.settings(video, trajectory, seed=seed, camera=camera, crf=crf, audio=audio,
                                         **options)
            with meter("scene"):
                scene = open_scene(video, trajectory, camera=camera, depth=depth, fit=fit, size=check_size(size),
                                   resample_depth=True, weights_dir=self.weights_dir, device=str(self.device),
                                   skip_bad_frames=skip_bad_frames, reporter=reporter)
            with meter("prompt"):
                prompt_record = self._prompt(video, prompt, from_file)
                embedding = self.embed_prompts([prompt_record["text"]])[0]
            with meter("load"):
                generator, autoencoder = self.load_models(paths)
            if embedding.shape[-1] != generator.cfg.text_dim:
                raise WeightsError(f"the prompt embedding has {embedding.shape[-1]} dimensions but the generator "
                                   f"expects {generator.cfg.text_dim}: the text encoder does not belong to it")
            with meter("depth range"):
                scene.log_depth_max(self.device, reporter=reporter)
            keep_audio = audio and scene.video.has_audio and scene.time_is_identity
            if audio and scene.video.has_audio and not keep_audio:
                reporter.info("the source audio is not kept: the time map does not show every frame once, in order")
            reporter.info(f"{scene.video.path}: {scene.video.frame_count} frames at {scene.video.fps:g} fps -> "
                          f"{scene.num_frames} frames at {scene.size[0]}x{scene.size[1]}, depth from "
                          f"{scene.depth_origin}, decoder {self.decoder}, {self.dtype_name} on {self.device}")
            try:
                coverages, lost = self._stream(scene, output, generator, autoencoder, embedding, seed, crf,
                                               keep_audio, save_condition, skip_bad_frames, meter)
            except (RuntimeError, MemoryError) as exc:
                failure = out_of_memory(exc, f"generating on {self.device}")
                if failure is None:
                    raise
                raise failure from None
            if lost:
                reporter.warn(lost_frames_warning(scene.video.path, lost, scene.video.frame_count))
        result = self._result(output, scene, settings, prompt_record, paths, meter, coverages, keep_audio,
                              save_condition, lost, reporter.warnings[first_warning:])
        with atomic_output(result.sidecar) as tmp:
            tmp.write_text(json.dumps(result.summary(), indent=2) + "\n")
        reporter.info(f"wrote {output} ({result.frames} frames, {result.fps:g} fps, "
                      f"{result.frames_per_second:.2f} frames/s) and {result.sidecar}")
        reporter.event("result", **result.summary())
        return result

    @staticmethod
    def _check_paths(video: str | Path, output: Path) -> None:
        check_video_output(output, video)
        if output.with_suffix(".json").resolve() == Path(video).resolve():
            raise UsageError("the output's sidecar would overwrite the source video", output)

    def _stream(self, scene: Scene, output: Path, generator: CausalWanDiT, autoencoder: StreamingAutoencoder,
                embedding: torch.Tensor, seed: int, crf: int, audio: bool, save_condition: str | Path | None,
                skip_bad_frames: bool, meter: StageMeter) -> tuple[list[float], int]:
        """The chunk loop (module docstring, step 4); writes ``output`` (and the condition videos) and
        returns the warp coverage of every output frame (kept as numbers: nothing grows per chunk) and the
        number of source frames that did not decode (``skip_bad_frames``)."""
        total = scene.num_frames
        padded = scene.padded(padded_length(total))
        plan = padded.trajectory.chunks()
        rate = scene.video.rate
        coverages: list[float] = []
        decoding: dict = {}
        with contextlib.ExitStack() as stack:
            writer = stack.enter_context(VideoWriter(output, rate, crf=crf,
                                                     audio_from=scene.video.path if audio else None))
            conditions = (stack.enter_context(ConditionWriter(save_condition, rate))
                          if save_condition is not None else None)

            def seen(chunk: WarpedChunk) -> None:
                real = max(0, min(chunk.frames.stop, total) - chunk.frames.start)  # the rest pads the last chunk
                coverages.extend(coverage(chunk.mask[:real]).tolist())
                if conditions is not None and real:
                    conditions.write(chunk.warped[:real], chunk.mask[:real])

            stack.enter_context(meter.tracking())
            progress = stack.enter_context(self.reporter.stage("rerender", total=total))
            chunks = warped_chunks(padded, [c.frames for c in plan], device=self.device,
                                   skip_bad_frames=skip_bad_frames, stats=decoding, reporter=Reporter("silent"))
            stack.callback(chunks.close)
            feeder = _ChunkFeeder(autoencoder, chunks, meter, seen)
            sampler = StarSampler(generator, embedding, seed=seed, compile=self.compile, reporter=self.reporter)
            decoder = autoencoder.stream_decoder()
            for index in range(len(plan)):
                inputs = feeder.next()
                with meter("generate"):
                    latents = sampler.step(inputs)
                with meter("decode"):
                    frames = decoder.feed(latents)[0]
                keep = min(frames.shape[0], total - writer.frames_written)
                with meter("write"):
                    writer.write(frames[:keep])
                del inputs, latents, frames  # nothing of this chunk stays alive while the next one is made
                progress.advance(keep, chunk=index + 1, chunks=len(plan))
                progress.status(f"chunk {index + 1}/{len(plan)}")
        return coverages, decoding["lost_frames"]

    def _result(self, output: Path, scene: Scene, settings: dict[str, Any], prompt: dict[str, Any],
                paths: dict[str, Path], meter: StageMeter, coverages: list[float], audio: bool,
                save_condition: str | Path | None, lost_frames: int, warnings: list[str]) -> RerenderResult:
        figures = meter.report()
        weights = [{"name": name, "file": str(path), "size": path.stat().st_size,
                    "fingerprint": fingerprint_file(path)} for name, path in sorted(paths.items())]
        resolved = {**settings, "device": str(self.device), "text_device": self.text_device_name,
                    "compile": self.compile, "steps": [float(s) for s in self._steps()]}
        return RerenderResult(
            output=output, sidecar=output.with_suffix(".json"), frames=scene.num_frames, fps=float(scene.video.rate),
            size=scene.size, chunks=len(chunk_plan(padded_length(scene.num_frames))),
            padded_frames=padded_length(scene.num_frames) - scene.num_frames, audio=audio,
            seconds=figures["seconds"], peak_memory=figures["peak_memory"], warnings=list(warnings),
            prompt=prompt, settings=resolved, fingerprint=self.fingerprint_of(settings), scene=scene.describe(),
            weights=weights, coverage={"min": round(min(coverages), 6),
                                       "mean": round(sum(coverages) / len(coverages), 6)},
            condition_dir=None if save_condition is None else Path(save_condition), lost_frames=lost_frames,
            setup_seconds=self.setup.report()["seconds"])

    @staticmethod
    def _steps() -> list[float]:
        return FlowMatchScheduler().denoising_steps().tolist()

