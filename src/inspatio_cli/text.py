"""Text conditioning for the pipeline: which prompt to use, and its umT5 embedding, cached on disk.

Every generated chunk cross-attends to one prompt embedding ``(1, 512, 4096)``. The umT5-XXL encoder that
makes it weighs ~11.4 GB (bf16), so it is built only when an embedding is not cached, runs once per
distinct prompt (a batch encodes all its missing prompts with one load), and is freed right after.

Cache: ``files.cache_dir("prompts")/<key>.safetensors``, where ``key`` hashes the cleaned prompt, the
encoder weights' fingerprint, the tokenizer file's fingerprint, the dtype and the text length. A file holds
only the prompt's real rows (the padded rows are zeros by construction), so an entry is a few hundred KB.
An unreadable entry is reported and recomputed, never fatal.
"""

from __future__ import annotations

import gc
import hashlib
import json
import sys
from pathlib import Path
from typing import Sequence

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .devices import check_device, resolve_device
from .errors import Interrupted, PromptError, RuntimeFailure, UsageError, WeightsError
from .files import atomic_output, cache_dir, fingerprint_file
from .models.t5 import load_t5
from .models.tokenizer import TEXT_LEN, PromptTokenizer, TokenizedPrompts, clean_prompt, tokenizer_file
from .progress import Reporter

MAX_PROMPT_FILE_BYTES = 1 << 20
CACHE_KIND = "prompts"
CACHE_FORMAT = "inspatio-prompt-embeds/1"
TEXT_ENCODER_GPU_BYTES = 12 << 30
NO_PROMPT_WARNING = ("no prompt given: generating with an empty prompt; quality is better with a short "
                     "description of the video (--prompt TEXT or --prompt-file FILE)")


def read_prompt_file(path: str | Path) -> str:
    """The text of a prompt file (``-`` reads standard input), decoded as UTF-8 (a BOM is dropped).

    Raises :class:`PromptError` naming the file when it is missing, unreadable, over 1 MiB, not UTF-8
    (with the offset and line of the first bad byte) or empty after cleaning.
    """
    p = Path(path)
    shown = "<stdin>" if str(path) == "-" else p
    try:
        if str(path) == "-":
            data = sys.stdin.buffer.read(MAX_PROMPT_FILE_BYTES + 1)
        else:
            with p.open("rb") as fh:
                data = fh.read(MAX_PROMPT_FILE_BYTES + 1)
    except FileNotFoundError:
        raise PromptError("prompt file not found", shown) from None
    except IsADirectoryError:
        raise PromptError("is a folder, not a prompt file", shown) from None
    except OSError as exc:
        raise PromptError(f"cannot read the prompt file ({exc.strerror or exc})", shown) from None
    if len(data) > MAX_PROMPT_FILE_BYTES:
        raise PromptError("prompt file is larger than 1 MiB; a prompt is read up to 512 tokens (a few KB "
                          "of text)", shown)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise PromptError(f"not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line})",
                          shown, hint="save the prompt file as UTF-8") from None
    if not clean_prompt(text):
        raise PromptError("prompt file is empty", shown,
                          hint="write a description of the video in it, or leave out --prompt-file")
    return text


def check_prompt_text(text: str) -> str:
    """``text`` unchanged when it is valid Unicode; :class:`PromptError` when it holds characters no
    encoder can read (command-line bytes that were not UTF-8, lone surrogates from a JSON ``\\udXXX``
    escape). Called wherever a prompt enters, so bad text is refused before any model loads."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PromptError(f"the prompt holds bytes that are not UTF-8 (at character {exc.start})",
                          hint="pass it as UTF-8 text, or use --prompt-file with a UTF-8 file") from None
    return text


def resolve_prompt(prompt: str | None, prompt_file: str | Path | None,
                   reporter: Reporter | None = None) -> str:
    """The prompt text for a run from ``--prompt`` / ``--prompt-file`` (or a manifest item's equivalents).

    At most one may be given (:class:`UsageError`). With neither, or a prompt that is blank after
    cleaning, the empty prompt is used and a warning says that a description improves quality. Text that
    is not valid Unicode (undecodable command-line bytes) raises :class:`PromptError`.
    """
    reporter = reporter or Reporter("silent")
    if prompt is not None and prompt_file is not None:
        raise UsageError("give either --prompt or --prompt-file, not both")
    text = read_prompt_file(prompt_file) if prompt_file is not None else check_prompt_text(prompt or "")
    if not clean_prompt(text):
        reporter.warn(NO_PROMPT_WARNING)
    return text


def resolve_text_device(name: str = "auto", reporter: Reporter | None = None) -> torch.device:
    """The device for ``--text-device``: ``cpu``, ``cuda``, ``cuda:N``, or ``auto`` (the current CUDA device
    when it has room for the ~11.4 GB bf16 encoder, else the CPU, with a message). The names are those of
    :mod:`inspatio_cli.devices` (:class:`UsageError` for an unknown name or CUDA where there is none); only
    the meaning of ``auto`` is the text encoder's own."""
    reporter = reporter or Reporter("silent")
    if check_device(name, "--text-device") == "auto":
        if torch.cuda.is_available():
            free, _ = torch.cuda.mem_get_info()
            if free >= TEXT_ENCODER_GPU_BYTES:
                return torch.device("cuda", torch.cuda.current_device())
            reporter.info(f"text encoder runs on the CPU: the GPU has {free / 2**30:.1f} GiB free, it needs "
                          f"about {TEXT_ENCODER_GPU_BYTES / 2**30:.0f} GiB")
        return torch.device("cpu")
    return resolve_device(name, "--text-device")


class PromptEmbedder:
    """Prompt -> umT5 embedding ``(1, text_len, dim)`` (on the CPU, in ``dtype``), through the disk cache.

    ``t5_path``: ``models_t5_umt5-xxl-enc-bf16.pth`` or its ``.safetensors`` conversion; ``tokenizer_path``:
    the ``google/umt5-xxl`` folder or its ``tokenizer.json``; ``device``: where the encoder runs (it is
    loaded there only on a cache miss and freed before returning); ``cache=False`` neither reads nor writes
    the cache. Prompts are cleaned here (see :func:`clean_prompt`); pass them raw.
    """

    def __init__(self, t5_path: str | Path, tokenizer_path: str | Path, *, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.bfloat16, cache: bool = True, text_len: int = TEXT_LEN,
                 reporter: Reporter | None = None):
        self.t5_path = Path(t5_path)
        if not self.t5_path.is_file():
            raise WeightsError("text encoder weights not found", self.t5_path,
                               hint="models_t5_umt5-xxl-enc-bf16.pth from Wan-AI/Wan2.1-T2V-1.3B")
        self.tokenizer_path = tokenizer_file(tokenizer_path)
        self.device = torch.device(device)
        self.dtype = dtype
        self.cache = cache
        self.text_len = text_len
        self.reporter = reporter or Reporter("silent")
        self._identity: str | None = None

    def embed(self, prompt: str) -> torch.Tensor:
        """Embedding ``(1, text_len, dim)`` of one raw prompt."""
        return self.embed_many([prompt])[0]

    def embed_many(self, prompts: Sequence[str]) -> list[torch.Tensor]:
        """Embeddings of several raw prompts (e.g. batch items), in order; the encoder is loaded at most
        once for all prompts missing from the cache."""
        cleaned = [clean_prompt(p) for p in prompts]
        distinct = list(dict.fromkeys(cleaned))
        found = {}
        if self.cache:
            for text in distinct:
                hit = self._read_cache(text)
                if hit is not None:
                    found[text] = hit
        missing = [t for t in distinct if t not in found]
        if missing:
            found.update(self._encode(missing))
        return [found[t] for t in cleaned]

    def cache_path(self, cleaned: str) -> Path:
        """Where the embedding of an already-cleaned prompt is (or would be) cached."""
        if self._identity is None:
            self._identity = json.dumps({"format": CACHE_FORMAT, "encoder": fingerprint_file(self.t5_path),
                                         "tokenizer": fingerprint_file(self.tokenizer_path),
                                         "dtype": str(self.dtype), "text_len": self.text_len})
        key = hashlib.sha256(f"{self._identity}\n{cleaned}".encode()).hexdigest()[:32]
        return cache_dir(CACHE_KIND) / f"{key}.safetensors"

    def _warn_if_truncated(self, num_tokens: int) -> None:
        if num_tokens > self.text_len:
            self.reporter.warn(f"the prompt is {num_tokens} tokens long; the text encoder reads at most "
                               f"{self.text_len} (including end-of-text), so its last "
                               f"{num_tokens - self.text_len} tokens are ignored")

    def _read_cache(self, cleaned: str) -> torch.Tensor | None:
        try:
            path = self.cache_path(cleaned)
        except OSError as exc:
            self.reporter.warn(f"prompt cache unavailable ({exc}); the text encoder will run")
            return None
        if not path.is_file():
            return None
        try:
            entry = _read_entry(path, cleaned, self.text_len)
        except Interrupted:
            raise
        except Exception as exc:  # noqa: BLE001 - any damage to a cache entry only costs a recomputation
            self.reporter.warn(f"ignoring unreadable prompt cache entry {path} ({type(exc).__name__}); recomputing")
            return None
        if entry is None:
            self.reporter.warn(f"ignoring mismatched prompt cache entry {path}; recomputing")
            return None
        embeds, num_tokens = entry
        self._warn_if_truncated(num_tokens)
        self.reporter.event("prompt_cache", hit=True, path=str(path))
        return embeds

    def _write_cache(self, cleaned: str, embeds: torch.Tensor, num_tokens: int) -> None:
        rows = embeds[:, : min(num_tokens, self.text_len)].contiguous()
        meta = {"format": CACHE_FORMAT, "prompt": cleaned, "num_tokens": str(num_tokens),
                "dtype": str(self.dtype), "encoder": str(self.t5_path.name)}
        try:
            path = self.cache_path(cleaned)
            with atomic_output(path) as tmp:
                save_file({"prompt_embeds": rows}, str(tmp), metadata=meta)
        except (OSError, SafetensorError) as exc:  # the latter wraps the writer's I/O errors (a full disk)
            self.reporter.warn(f"could not write the prompt cache ({exc}); the embedding is not kept")
            return
        self.reporter.event("prompt_cache", hit=False, path=str(path))

    def _encode(self, cleaned: list[str]) -> dict[str, torch.Tensor]:
        """Tokenize, load the encoder once, embed every prompt, cache, free the encoder."""
        tokens = PromptTokenizer.from_file(self.tokenizer_path, self.text_len)(cleaned)
        for count in tokens.num_tokens:
            self._warn_if_truncated(count)
        self.reporter.info(f"loading the umT5 text encoder on {self.device} ({self.t5_path.name})")
        try:
            embeds = self._run_encoder(tokens)
        except torch.cuda.OutOfMemoryError:
            raise RuntimeFailure(f"out of GPU memory running the text encoder on {self.device}",
                                 hint="use --text-device cpu") from None
        if self.cache:
            for row, text in enumerate(cleaned):
                self._write_cache(text, embeds[row], tokens.num_tokens[row])
        return {text: embeds[row] for row, text in enumerate(cleaned)}

    def _run_encoder(self, tokens: TokenizedPrompts) -> list[torch.Tensor]:
        encoder = None
        try:
            encoder = load_t5(self.t5_path, self.dtype, self.device)
            out = []
            with self.reporter.stage("text encoder", total=len(tokens.num_tokens), unit="prompts") as stage:
                for row in range(len(tokens.num_tokens)):
                    ids, mask = (t[row: row + 1].to(self.device) for t in (tokens.ids, tokens.mask))
                    out.append(encoder.encode_ids(ids, mask).cpu())
                    stage.advance(1)
            return out
        finally:
            del encoder
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()


def _read_entry(path: Path, cleaned: str, text_len: int) -> tuple[torch.Tensor, int] | None:
    """The embedding ``(1, text_len, dim)`` (zero rows restored) and token count held by the cache file
    ``path`` for the cleaned prompt ``cleaned``; None when the entry is for another prompt or malformed.
    Unreadable files raise (whatever the reader raises)."""
    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata() or {}
        rows = fh.get_tensor("prompt_embeds")
    num_tokens = int(meta["num_tokens"])
    if not (meta.get("format") == CACHE_FORMAT and meta.get("prompt") == cleaned and rows.ndim == 3
            and rows.shape[0] == 1 and rows.shape[1] == min(num_tokens, text_len)):
        return None
    out = rows.new_zeros(1, text_len, rows.shape[2])
    out[:, : rows.shape[1]] = rows
    return out, num_tokens


def find_cached_embedding(prompt: str, dtype: torch.dtype = torch.bfloat16,
                          text_len: int = TEXT_LEN) -> torch.Tensor | None:
    """A cached embedding ``(1, text_len, dim)`` of the raw ``prompt`` in ``dtype``, whichever encoder
    weights made it (the newest entry wins), or None. For runs without the text encoder files: the cache
    key includes the weights' fingerprint, so without them an entry is found by its stored prompt instead.
    Unreadable entries are skipped."""
    cleaned = clean_prompt(prompt)
    try:
        entries = sorted(cache_dir(CACHE_KIND).glob("*.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return None
    for path in entries:
        try:
            with safe_open(str(path), "pt") as fh:
                meta = fh.metadata() or {}
            if meta.get("prompt") != cleaned or meta.get("dtype") != str(dtype):
                continue
            entry = _read_entry(path, cleaned, text_len)
        except Interrupted:
            raise
        except Exception:  # noqa: BLE001 - a damaged entry is just not a match
            continue
        if entry is not None:
            return entry[0]
    return None
