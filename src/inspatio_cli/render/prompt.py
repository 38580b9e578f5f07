"""A render's prompt: the text (given, a caption of the video, or empty with a warning) and its umT5
embedding, through the disk cache; the text encoder is loaded only for prompts missing from it and is
freed before the generator loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from .. import caption as captioning
from ..progress import Reporter
from ..text import (NO_PROMPT_WARNING, PromptEmbedder, clean_prompt, find_cached_embedding, resolve_prompt,
                    resolve_text_device)
from ..weights import catalog, hub
from .needs import TEXT_WEIGHTS
from .plan import TEXT_DTYPE, text_files_present


def prompt_record(video: str | Path, text: str | None, *, given: bool, from_file: bool,
                  weights_dir: str | Path | None, text_device: str, reporter: Reporter) -> dict[str, Any]:
    """The prompt record of a render of ``video`` whose plan settled the prompt ``text`` (``None``:
    caption the video with the captioner on ``text_device``; ``given``: the user gave a prompt or a prompt
    file, ``from_file``: a file): ``text`` (raw), ``source`` (prompt, prompt-file, caption or empty) and
    ``caption`` (its record, for a caption). The empty prompt comes with a warning saying how to enable
    automatic captions."""
    if text is None:
        caption = captioning.caption_video(video, weights_dir=weights_dir,
                                           device=resolve_text_device(text_device, reporter), reporter=reporter)
        reporter.info(f"prompt: caption of frame {caption.frame}: {caption.text}")
        return {"text": caption.text, "source": "caption", "caption": caption.as_dict()}
    if not given:
        fetch = hub.download_command([catalog.entry("captioner")], weights_dir)
        enable = (f"download the captioner ({fetch})" if captioning.captioning_available() else
                  f"install the optional caption extra ({captioning.EXTRA_COMMAND}) and its weights")
        reporter.warn(f"{NO_PROMPT_WARNING}; or {enable} to caption the video automatically, as the "
                      "official pipeline does")
        return {"text": "", "source": "empty", "caption": None}
    return {"text": resolve_prompt(text, None, reporter), "source": "prompt-file" if from_file else "prompt",
            "caption": None}


def embed_prompts(prompts: Sequence[str], *, weights_dir: str | Path | None, text_device: str,
                  reporter: Reporter, embedded: set[str]) -> list[torch.Tensor]:
    """umT5 embeddings ``(1, 512, dim)`` bfloat16 of raw ``prompts``, through the disk cache; the text
    encoder (from ``weights_dir``, on ``text_device``), if needed, is loaded once for all missing prompts
    and freed before returning. Without the encoder files, cached embeddings are looked up by their prompt
    (:func:`text.find_cached_embedding`). ``embedded``: cleaned prompts embedded before by the caller,
    whose cache hits and truncation warnings were reported then (updated here), so they stay quiet."""
    if not text_files_present(weights_dir):
        found = [find_cached_embedding(p, TEXT_DTYPE) for p in prompts]
        if all(f is not None for f in found):
            return found
    paths = hub.resolve(TEXT_WEIGHTS, weights_dir, purpose="for the prompt")
    cleaned = {clean_prompt(p) for p in prompts}
    told = cleaned <= embedded
    embedder = PromptEmbedder(paths["text-encoder"], paths["tokenizer"],
                              device=resolve_text_device(text_device, reporter), dtype=TEXT_DTYPE,
                              reporter=Reporter("silent") if told else reporter)
    embeddings = embedder.embed_many(prompts)
    embedded |= cleaned
    return embeddings
