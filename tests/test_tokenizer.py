"""Prompt cleaning (golden pairs from the official function) and the fixed-length umT5 tokenization."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from inspatio_cli.errors import WeightsError
from inspatio_cli.models.tokenizer import PromptTokenizer, clean_prompt

HERE = Path(__file__).parent
WORDS = ["a", "cat", "sits", "on", "the", "mat", "dog", "runs", "in", "park", ".", ","]


def write_tiny_tokenizer(path: Path) -> Path:
    """A small SentencePiece-style (Unigram + Metaspace) tokenizer shaped like umT5's: ``<pad>`` = 0,
    ``</s>`` = 1, ``<unk>`` = 2, and the same ``$A </s>`` post-processor; saved as ``tokenizer.json``."""
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(f"\u2581{w}", -2.0 - 0.1 * i) for i, w in enumerate(WORDS)]
    vocab += [(c, -8.0) for c in "\u2581abcdefghijklmnopqrstuvwxyz.,"]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=2))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer.add_special_tokens(["<pad>", "</s>", "<unk>"])
    tokenizer.save(str(path))
    return path


@pytest.fixture
def tiny_tokenizer(tmp_path: Path) -> Path:
    return write_tiny_tokenizer(tmp_path / "tokenizer.json")


def _clean_case_files() -> list[Path]:
    files = [HERE / "golden" / "t5_text_clean.json"]
    if os.environ.get("INSPATIO_GOLDEN_DIR"):
        files.append(Path(os.environ["INSPATIO_GOLDEN_DIR"]) / "t5_text_clean.json")
    return [f for f in files if f.is_file()]


CLEAN_CASES = [pytest.param(case, id=f"{f.parent.name}-{i}")
               for f in _clean_case_files() for i, case in enumerate(json.loads(f.read_text())["cases"])]


def test_clean_cases_are_present() -> None:
    assert len(CLEAN_CASES) >= 10


@pytest.mark.parametrize("case", CLEAN_CASES)
def test_clean_prompt_matches_official(case: dict) -> None:
    assert clean_prompt(case["raw"]) == case["clean_whitespace"]


def test_clean_prompt_unescapes_exactly_twice_around_html_tags() -> None:
    """With a tag in the text ftfy leaves entities alone; then exactly two levels are unescaped, so
    cleaning is not idempotent and must be applied once."""
    assert clean_prompt("<b>&amp;amp;amp;</b>") == "<b>&amp;</b>"
    assert clean_prompt(clean_prompt("<b>&amp;amp;amp;</b>")) == "<b>&</b>"


def test_short_prompt_gets_eos_padding_and_mask(tiny_tokenizer: Path) -> None:
    tok = PromptTokenizer.from_file(tiny_tokenizer)
    out = tok(["a cat sits on the mat.", ""])
    assert out.ids.shape == out.mask.shape == (2, 512)
    expected = [tok.tokenizer.token_to_id(f"\u2581{w}") for w in ["a", "cat", "sits", "on", "the", "mat"]]
    expected += [tok.tokenizer.token_to_id(".")]
    n = len(expected) + 1
    assert out.ids[0, :n].tolist() == expected + [1]
    assert out.ids[0, n:].eq(0).all() and out.mask[0, :n].eq(1).all() and out.mask[0, n:].eq(0).all()
    assert out.ids[1, 0] == 1 and out.mask[1].sum() == 1 and out.ids[1, 1:].eq(0).all()
    assert out.num_tokens == [n, 1] and out.truncated == [False, False]


def test_long_prompt_is_truncated_keeping_eos_last(tiny_tokenizer: Path) -> None:
    tok = PromptTokenizer.from_file(tiny_tokenizer.parent)
    out = tok(" ".join(["cat"] * 600) + " dog")
    assert out.ids.shape == (1, 512)
    assert out.mask.eq(1).all()
    assert out.ids[0, -1] == 1 and out.ids[0, :-1].eq(tok.tokenizer.token_to_id("\u2581cat")).all()
    assert out.num_tokens == [602] and out.truncated == [True]


def test_exactly_full_prompt_is_not_truncated(tiny_tokenizer: Path) -> None:
    out = PromptTokenizer.from_file(tiny_tokenizer)(" ".join(["cat"] * 511))
    assert out.mask.eq(1).all() and out.ids[0, -1] == 1 and out.truncated == [False]


@pytest.mark.parametrize("text", ["a dog runs in the park", " ".join(["a cat"] * 400), "zebra on a mat", ""])
def test_matches_the_library_template_truncation_and_padding(tiny_tokenizer: Path, text: str) -> None:
    """What transformers' fast tokenizer does for (padding='max_length', truncation=True, max_length=512,
    add_special_tokens=True) is the Rust library's own truncation/padding around the file's
    post-processor; our explicit version must give the same ids and mask."""
    reference = Tokenizer.from_file(str(tiny_tokenizer))
    reference.enable_truncation(max_length=512)
    reference.enable_padding(length=512, pad_id=0, pad_token="<pad>")
    enc = reference.encode(text, add_special_tokens=True)
    out = PromptTokenizer.from_file(tiny_tokenizer)(text)
    assert out.ids[0].tolist() == enc.ids
    assert out.mask[0].tolist() == enc.attention_mask


def test_missing_and_broken_tokenizer_files(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        PromptTokenizer.from_file(tmp_path)
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(WeightsError, match="unreadable tokenizer"):
        PromptTokenizer.from_file(bad)


def test_tokenizer_without_eos_is_refused(tmp_path: Path) -> None:
    tokenizer = Tokenizer(models.WordLevel({"<pad>": 0, "<unk>": 1, "cat": 2}, unk_token="<unk>"))
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(WeightsError, match="no </s> token"):
        PromptTokenizer.from_file(tmp_path)
