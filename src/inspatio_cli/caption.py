"""Automatic prompts: a Florence-2 caption of one frame of the source video, cached on disk.

The official pipeline never asks for a prompt (REFERENCE.md section 2): it captions the middle frame of each
video (``frame_count // 2``) with Florence-2-large, task ``<MORE_DETAILED_CAPTION>``, greedy decoding (one
beam, no sampling) of at most 1024 new tokens, and feeds that paragraph to the generator, which was
distilled with such captions. This module does the same with the Florence-2 implementation that ships with
transformers 5 (no remote code), the optional ``caption`` extra, which is imported only when a caption is
actually computed.

Weights: the transformers-native conversion ``florence-community/Florence-2-large`` (MIT, 0.78B
parameters, ``model.safetensors`` 1.55 GB in float16), found offline through the weights catalogue (entry
``captioner``, folder ``Florence-2-large-hf`` under ``--weights-dir``). The model is built from the whole
repository folder: ``config.json``, the tokenizer and processor files lie beside the weights. The original
``microsoft/Florence-2-large`` layout (remote code, other key names) is refused with the repository to use.

Differences from the official script, none of which changes what the model is asked: the frame is decoded
with PyAV (display rotation applied) and counted exactly by :func:`video.probe` instead of OpenCV's
estimate; images are processed one at a time rather than in batches of 8; the decoder keeps its key/value
cache (the official call disables it, which gives the same greedy tokens, only slower).

Cache: ``files.cache_dir("captions")/<key>.json``, where ``key`` hashes the video's content fingerprint,
the frame index, the captioner's weights fingerprint, the task and the token limit. An unreadable or
mismatched entry is reported and recomputed, never fatal; a failed write only warns.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from huggingface_hub.constants import HF_HUB_CACHE

from .devices import resolve_device
from .errors import RuntimeFailure, UsageError, VideoError, WeightsError
from .files import atomic_output, cache_dir, fingerprint_file
from .progress import Reporter
from .video import iter_frames, probe
from .weights import catalog, hub
from .weights.io import key_mismatch, read_header

TASK = "<MORE_DETAILED_CAPTION>"
MAX_NEW_TOKENS = 1024
EXTRA_COMMAND = 'pip install "inspatio-cli[caption]"'
WEIGHTS_ENTRY = "captioner"
WEIGHTS_FILE = "model.safetensors"
MODEL_FILES = ("config.json", "tokenizer_config.json")
"""Files the model folder must hold beside the weights (plus a processor config, see :func:`check_model_dir`)."""
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
CACHE_KIND = "captions"
CACHE_FORMAT = "inspatio-caption/1"


@dataclass(frozen=True)
class Caption:
    """The caption of one video: ``text`` describes frame ``frame`` (0-based, in decoding order);
    ``model`` names the captioner and its weights fingerprint; ``cached`` says it came from the cache."""

    video: str
    text: str
    frame: int
    model: str
    cached: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (for ``--json`` and for the rerender sidecar)."""
        return asdict(self)


def captioning_available() -> bool:
    """Whether the optional ``caption`` extra (transformers 5 with Florence-2) is installed, so that a
    rerender without a prompt can caption the video instead of using the empty prompt."""
    try:
        _transformers()
    except UsageError:
        return False
    return True


def _transformers() -> Any:
    """The transformers module, or :class:`UsageError` naming the extra when it is missing or too old."""
    try:
        import transformers
    except ImportError:
        raise UsageError("captioning needs the optional 'caption' extra (transformers 5)",
                         hint=EXTRA_COMMAND) from None
    major = transformers.__version__.split(".")[0]
    if not major.isdigit() or int(major) < 5:
        raise UsageError(f"captioning needs transformers 5 with its Florence-2 model (found transformers "
                         f"{transformers.__version__})", hint=EXTRA_COMMAND)
    return transformers


def choose_frame(video: str | Path, frame: int | None = None) -> int:
    """The frame to caption: ``frame`` if given (0-based, checked against the exact frame count of
    :func:`video.probe`), else the middle frame ``frame_count // 2``, as the official pipeline does.
    :class:`UsageError` for a frame outside the video, :class:`VideoError` for an unreadable video."""
    count = probe(video).frame_count
    if frame is None:
        return count // 2
    if not 0 <= frame < count:
        raise UsageError(f"--frame {frame} is outside the video: it has {count} frames (0..{count - 1})", video)
    return frame


def read_frame(video: str | Path, index: int) -> np.ndarray:
    """Frame ``index`` of ``video`` as uint8 ``(H, W, 3)`` RGB in display orientation."""
    for _, image in iter_frames(video, start_frame=index, max_frames=1):
        return image
    raise VideoError(f"frame {index} could not be decoded", video)


def check_model_dir(folder: str | Path) -> Path:
    """``folder`` if it holds a transformers-native Florence-2 checkpoint: ``model.safetensors``, the files
    of :data:`MODEL_FILES` and a processor config. Raises :class:`WeightsError` listing what is missing
    (with the command that fetches the whole repository, into ``folder`` or, for a snapshot of the
    Hugging Face cache, into the cache), or when it is the original remote-code layout."""
    root = Path(folder)
    missing = [name for name in (WEIGHTS_FILE, *MODEL_FILES) if not (root / name).is_file()]
    if not any((root / name).is_file() for name in PROCESSOR_FILES):
        missing.append(" or ".join(PROCESSOR_FILES))
    repo = catalog.entry(WEIGHTS_ENTRY).repo
    if missing:
        target = "" if root.resolve().is_relative_to(Path(HF_HUB_CACHE).resolve()) else f" --local-dir {root}"
        raise WeightsError(f"the captioner folder lacks {', '.join(missing)}: Florence-2 needs every file of "
                           f"{repo}, not only the weights", root, hint=f"download with: hf download {repo}{target}")
    try:
        vision = json.loads((root / "config.json").read_text()).get("vision_config") or {}
    except (OSError, ValueError, AttributeError) as exc:
        raise WeightsError(f"unreadable config.json ({exc})", root) from None
    if vision.get("model_type") == "davit":
        raise WeightsError("this is the original remote-code layout of microsoft/Florence-2-large, which "
                           f"transformers' own Florence-2 does not load; use its conversion {repo}", root)
    return root


@contextlib.contextmanager
def _quiet(transformers: Any) -> Iterator[None]:
    """Silence transformers' own warnings and progress bars (loading, generation flags) for the duration,
    restoring the caller's settings afterwards; our reporter says what happens."""
    log = transformers.utils.logging
    verbosity, bars = log.get_verbosity(), log.is_progress_bar_enabled()
    log.set_verbosity_error()
    log.disable_progress_bar()
    try:
        yield
    finally:
        log.set_verbosity(verbosity)
        if bars:
            log.enable_progress_bar()


TIED_KEYS = ("lm_head.weight", "model.language_model.encoder.embed_tokens.weight",
             "model.language_model.decoder.embed_tokens.weight")
"""Parameters tied to ``model.language_model.shared.weight``: a checkpoint stores that one only."""


def check_weights(path: str | Path) -> None:
    """Check that ``model.safetensors`` at ``path`` holds exactly the tensors (keys and shapes) of the
    Florence-2 described by the ``config.json`` beside it, from the file's header and a model built on the
    meta device (no tensor data is read): transformers itself fills missing tensors with random values and
    only warns. Raises :class:`WeightsError` (and :class:`UsageError` without
    the extra); see :func:`check_model_dir` for the folder checks that come first."""
    path = Path(path)
    folder = check_model_dir(path.parent)
    tf = _transformers()
    try:
        with _quiet(tf), torch.device("meta"):
            model = tf.Florence2ForConditionalGeneration(tf.Florence2Config.from_pretrained(folder))
    except (OSError, ValueError, TypeError) as exc:
        raise WeightsError(f"config.json does not describe a Florence-2 model ({' '.join(str(exc).split())[:200]})",
                           folder) from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if k not in TIED_KEYS}
    problem = key_mismatch(expected, {k: shape for k, (shape, _) in read_header(path).items()}, ignore=TIED_KEYS)
    if problem:
        raise WeightsError(f"the weights do not match config.json: {problem}", path)


class Captioner:
    """Captions videos with Florence-2, through the disk cache; the model is loaded on the first cache
    miss and kept until :meth:`close` (or the end of a ``with`` block), so many videos cost one load.

    ``model_dir``: a folder with a transformers-native Florence-2 checkpoint (tests pass a tiny one);
    without it the catalogue entry ``captioner`` is looked up offline in ``weights_dir`` / the Hugging Face
    cache (:class:`WeightsError` with the download command if absent). ``device``: a torch device (default:
    CUDA when present, else the CPU); the model runs in float16 on CUDA and float32 on the CPU, as the
    official script does. ``cache=False`` neither reads nor writes the cache.
    Raises :class:`UsageError` naming the extra when transformers 5 is not installed.
    """

    def __init__(self, model_dir: str | Path | None = None, *, weights_dir: str | Path | None = None,
                 device: str | torch.device | None = None, cache: bool = True,
                 reporter: Reporter | None = None):
        self._transformers = _transformers()
        self.reporter = reporter or Reporter("silent")
        if model_dir is None:
            weights = hub.resolve([WEIGHTS_ENTRY], weights_dir)[WEIGHTS_ENTRY]
            self.model_dir = check_model_dir(weights.parent)
            name = catalog.entry(WEIGHTS_ENTRY).repo
        else:
            self.model_dir = check_model_dir(model_dir)
            name = self.model_dir.name
        self.model = f"{name}@{fingerprint_file(self.model_dir / WEIGHTS_FILE)}"
        self.device = resolve_device(device)
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.cache = cache
        self._loaded: tuple[Any, Any] | None = None

    def __enter__(self) -> "Captioner":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def caption(self, video: str | Path, frame: int | None = None) -> Caption:
        """The caption of ``video`` at ``frame`` (default: the middle frame, see :func:`choose_frame`)."""
        index = choose_frame(video, frame)
        path = self.cache_path(video, index) if self.cache else None
        text = self._read_cache(path, index) if path is not None else None
        cached = text is not None
        if text is None:
            with self.reporter.stage("caption", total=1, unit="videos") as stage:
                text = self._generate(read_frame(video, index))
                stage.advance(1, video=str(video), frame=index)
            if path is not None:
                self._write_cache(path, index, text, video)
        result = Caption(str(video), text, index, self.model, cached)
        self.reporter.event("caption", **result.as_dict())
        return result

    def cache_path(self, video: str | Path, frame: int) -> Path:
        """Where the caption of ``video`` at ``frame`` by this model is (or would be) cached."""
        identity = json.dumps({"format": CACHE_FORMAT, "video": fingerprint_file(video), "frame": frame,
                               "model": self.model, "task": TASK, "max_new_tokens": MAX_NEW_TOKENS})
        return cache_dir(CACHE_KIND) / f"{hashlib.sha256(identity.encode()).hexdigest()[:32]}.json"

    def close(self) -> None:
        """Free the model (and the CUDA memory it held); a later miss loads it again."""
        if self._loaded is not None:
            self._loaded = None
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def _read_cache(self, path: Path, frame: int) -> str | None:
        if not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            valid = (entry["format"] == CACHE_FORMAT and entry["frame"] == frame and entry["model"] == self.model
                     and isinstance(entry["text"], str))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.reporter.warn(f"ignoring unreadable caption cache entry {path} ({type(exc).__name__}); recomputing")
            return None
        if not valid:
            self.reporter.warn(f"ignoring mismatched caption cache entry {path}; recomputing")
            return None
        self.reporter.event("caption_cache", hit=True, path=str(path))
        return entry["text"]

    def _write_cache(self, path: Path, frame: int, text: str, video: str | Path) -> None:
        entry = {"format": CACHE_FORMAT, "text": text, "frame": frame, "model": self.model, "task": TASK,
                 "video": str(video), "device": str(self.device), "dtype": str(self.dtype)}
        try:
            with atomic_output(path) as tmp:
                tmp.write_text(json.dumps(entry, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        except OSError as exc:
            self.reporter.warn(f"could not write the caption cache ({exc}); the caption is not kept")
            return
        self.reporter.event("caption_cache", hit=False, path=str(path))

    def _load(self) -> tuple[Any, Any]:
        """The processor and the model, loaded from :attr:`model_dir` on the first call (offline, no remote
        code; the PIL image backend, as the official processor)."""
        if self._loaded is None:
            tf = self._transformers
            check_weights(self.model_dir / WEIGHTS_FILE)
            self.reporter.info(f"loading the Florence-2 captioner on {self.device} ({self.model_dir})")
            try:
                with _quiet(tf):
                    processor = tf.AutoProcessor.from_pretrained(
                        self.model_dir, backend="pil", local_files_only=True, trust_remote_code=False)
                    model = tf.Florence2ForConditionalGeneration.from_pretrained(
                        self.model_dir, dtype=self.dtype, local_files_only=True, trust_remote_code=False)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise WeightsError(f"cannot load Florence-2 ({' '.join(str(exc).split())[:300]})",
                                   self.model_dir) from None
            except torch.cuda.OutOfMemoryError:
                raise RuntimeFailure(f"out of GPU memory loading the captioner on {self.device}",
                                     hint="use --device cpu") from None
            self._loaded = processor, model.to(self.device).eval()
        return self._loaded

    def _generate(self, image: np.ndarray) -> str:
        """The post-processed ``<MORE_DETAILED_CAPTION>`` text of one uint8 ``(H, W, 3)`` RGB image."""
        from PIL import Image

        processor, model = self._load()
        picture = Image.fromarray(image)
        try:
            with _quiet(self._transformers), torch.inference_mode():
                inputs = processor(text=TASK, images=picture, return_tensors="pt").to(self.device)
                inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
                ids = model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, num_beams=1)
        except torch.cuda.OutOfMemoryError:
            raise RuntimeFailure(f"out of GPU memory running the captioner on {self.device}",
                                 hint="use --device cpu") from None
        raw = processor.batch_decode(ids, skip_special_tokens=False)[0].replace("<pad>", "")
        return processor.post_process_generation(raw, task=TASK, image_size=picture.size)[TASK]


def caption_video(video: str | Path, *, frame: int | None = None, weights_dir: str | Path | None = None,
                  model_dir: str | Path | None = None, device: str | torch.device | None = None,
                  cache: bool = True, reporter: Reporter | None = None) -> Caption:
    """The Florence-2 caption of one video (see :class:`Captioner` for the arguments); the model, if it
    has to be loaded, is freed before returning."""
    with Captioner(model_dir, weights_dir=weights_dir, device=device, cache=cache, reporter=reporter) as captioner:
        return captioner.caption(video, frame)
