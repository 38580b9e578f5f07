"""Prompt cleaning and the umT5 tokenizer (ids and attention mask of exactly ``text_len`` = 512 tokens).

Cleaning reproduces Wan2.1's ``HuggingfaceTokenizer._clean(clean='whitespace')``: ``ftfy.fix_text``
(mojibake, curly quotes, full-width letters, control characters), HTML-unescape twice, then every
whitespace run becomes one space and the ends are stripped. It is applied exactly once, before
tokenizing and before hashing a prompt for the embedding cache (it is not idempotent: in text with HTML
tags, where ftfy leaves entities alone, each pass removes two levels of escaping).

The tokenizer is the ``tokenizer.json`` of ``google/umt5-xxl`` shipped in the Wan2.1-T2V-1.3B repository,
read with the ``tokenizers`` library (the Rust engine that ``transformers``' fast tokenizers wrap). The
official call ``tokenizer(text, padding="max_length", truncation=True, max_length=512,
add_special_tokens=True)`` is reproduced explicitly: content tokens cut to 511, the EOS id appended, PAD
ids to 512 on the right, mask 1 on content and EOS. Doing this ourselves rather than through the file's
post-processor and padding settings keeps the result independent of how a particular file is configured.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import ftfy
import torch
from tokenizers import Tokenizer

from ..errors import WeightsError

TEXT_LEN = 512
TOKENIZER_FILE = "tokenizer.json"
_WHITESPACE = re.compile(r"\s+")


def clean_prompt(text: str) -> str:
    """The official prompt clean-up: ftfy, HTML-unescape twice, collapse whitespace runs, strip."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return _WHITESPACE.sub(" ", text).strip()


def tokenizer_file(path: str | Path) -> Path:
    """The ``tokenizer.json`` for ``path``: the file itself, or the one inside a folder such as the Wan
    release's ``google/umt5-xxl/``. Raises :class:`WeightsError` when there is none."""
    p = Path(path)
    candidate = p / TOKENIZER_FILE if p.is_dir() else p
    if not candidate.is_file():
        raise WeightsError("umT5 tokenizer file not found", candidate,
                           hint="it is google/umt5-xxl/tokenizer.json in the Wan-AI/Wan2.1-T2V-1.3B repository")
    return candidate


@dataclass
class TokenizedPrompts:
    """Tokenizer output for B prompts.

    ``ids`` and ``mask`` are int64 ``(B, text_len)``; ``num_tokens[b]`` is the prompt's full token count
    including EOS before truncation, so ``num_tokens[b] > text_len`` means it was cut.
    """

    ids: torch.Tensor
    mask: torch.Tensor
    num_tokens: list[int]
    text_len: int

    @property
    def truncated(self) -> list[bool]:
        return [n > self.text_len for n in self.num_tokens]


class PromptTokenizer:
    """umT5 tokenizer with the pipeline's fixed length: EOS appended, right padding, truncation."""

    def __init__(self, tokenizer: Tokenizer, text_len: int = TEXT_LEN, source: str | Path | None = None,
                 eos_token: str = "</s>", pad_token: str = "<pad>"):
        self.tokenizer = tokenizer
        self.text_len = text_len
        self.source = source
        self.eos_id, self.pad_id = (self._special_id(t) for t in (eos_token, pad_token))
        tokenizer.no_truncation()
        tokenizer.no_padding()

    def _special_id(self, token: str) -> int:
        token_id = self.tokenizer.token_to_id(token)
        if token_id is None:
            raise WeightsError(f"tokenizer has no {token} token; is this the umT5 tokenizer?", self.source)
        return token_id

    @classmethod
    def from_file(cls, path: str | Path, text_len: int = TEXT_LEN) -> "PromptTokenizer":
        """Read ``tokenizer.json`` (or the folder holding it); :class:`WeightsError` if missing or unreadable."""
        file = tokenizer_file(path)
        try:
            tokenizer = Tokenizer.from_file(str(file))
        except Exception as exc:  # noqa: BLE001 - the Rust library raises plain Exception for bad files
            raise WeightsError(f"unreadable tokenizer file ({' '.join(str(exc).split())[:200]})", file) from None
        return cls(tokenizer, text_len, file)

    def __call__(self, prompts: str | Sequence[str]) -> TokenizedPrompts:
        """Tokenize already-cleaned prompts (see :func:`clean_prompt`) into ``(B, text_len)`` ids and mask."""
        texts = [prompts] if isinstance(prompts, str) else list(prompts)
        ids = torch.full((len(texts), self.text_len), self.pad_id, dtype=torch.int64)
        mask = torch.zeros((len(texts), self.text_len), dtype=torch.int64)
        counts = []
        for row, encoding in enumerate(self.tokenizer.encode_batch(texts, add_special_tokens=False)):
            content = encoding.ids[: self.text_len - 1] + [self.eos_id]
            ids[row, : len(content)] = torch.tensor(content)
            mask[row, : len(content)] = 1
            counts.append(len(encoding.ids) + 1)
        return TokenizedPrompts(ids, mask, counts, self.text_len)
