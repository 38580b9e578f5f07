"""Prompt resolution (files, bad input) and the prompt-embedding cache (encoder built only on a miss)."""

from __future__ import annotations

import io
import sys
import weakref
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from inspatio_cli import text
from inspatio_cli.errors import PromptError, UsageError, WeightsError
from inspatio_cli.models import t5
from inspatio_cli.models.tokenizer import PromptTokenizer
from inspatio_cli.progress import Reporter
from test_t5 import tiny_encoder
from test_tokenizer import write_tiny_tokenizer

CONFIG = t5.T5Config(vocab_size=64, dim=16, dim_attn=16, dim_ffn=24, num_heads=2, encoder_layers=2)


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Tiny bf16 encoder checkpoint, tiny tokenizer folder, and a private cache root."""
    monkeypatch.setenv("INSPATIO_CACHE_DIR", str(tmp_path / "cache"))
    weights = tmp_path / "models_t5_umt5-xxl-enc-bf16.safetensors"
    save_file({k: v.bfloat16() for k, v in tiny_encoder(config=CONFIG).state_dict().items()}, str(weights))
    folder = tmp_path / "google" / "umt5-xxl"
    folder.mkdir(parents=True)
    write_tiny_tokenizer(folder / "tokenizer.json")
    return {"t5": weights, "tokenizer": folder, "cache": tmp_path / "cache" / "prompts"}


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[weakref.ref]:
    """Weak references to every T5Encoder constructed during the test (its length counts constructions)."""
    made: list[weakref.ref] = []
    original = t5.T5Encoder.__init__

    def counting_init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(weakref.ref(self))

    monkeypatch.setattr(t5.T5Encoder, "__init__", counting_init)
    return made


def _embedder(files: dict[str, Path], reporter: Reporter | None = None, **kw) -> text.PromptEmbedder:
    return text.PromptEmbedder(files["t5"], files["tokenizer"], reporter=reporter, **kw)


def test_second_run_with_the_same_prompt_does_not_build_the_encoder(files, built) -> None:
    first = _embedder(files).embed("A cat sits on the mat.")
    assert len(built) == 1
    assert len(list(files["cache"].glob("*.safetensors"))) == 1
    again = _embedder(files).embed("  A cat   sits on the mat.\n")
    assert len(built) == 1
    assert first.shape == again.shape == (1, 512, CONFIG.dim) and first.dtype == torch.bfloat16
    assert torch.equal(first, again)


def test_embedding_equals_the_encoder_output(files, built) -> None:
    prompt = "a dog runs in the park"
    out = _embedder(files, cache=False).embed(prompt)
    tokens = PromptTokenizer.from_file(files["tokenizer"])(prompt)
    direct = t5.load_t5(files["t5"]).encode_ids(tokens.ids, tokens.mask)
    assert torch.equal(out, direct)
    n = int(tokens.mask.sum())
    assert out[0, n:].eq(0).all() and out[0, :n].abs().sum(dim=-1).gt(0).all()


def test_cache_entry_holds_only_the_real_rows(files, built) -> None:
    embedder = _embedder(files)
    embedder.embed("a cat")
    entry = embedder.cache_path("a cat")
    with safe_open(str(entry), "pt") as fh:
        assert fh.get_slice("prompt_embeds").get_shape() == [1, 3, CONFIG.dim]
        assert fh.metadata()["prompt"] == "a cat"


def test_batch_loads_the_encoder_once_for_all_missing_prompts(files, built) -> None:
    prompts = ["a cat", "the dog runs", "a  cat"]
    out = _embedder(files).embed_many(prompts)
    assert len(built) == 1 and len(out) == 3 and torch.equal(out[0], out[2])
    assert not torch.equal(out[0], out[1])
    out2 = _embedder(files).embed_many(prompts + ["a mat"])
    assert len(built) == 2
    assert all(torch.equal(a, b) for a, b in zip(out, out2))
    _embedder(files).embed_many(prompts + ["a mat"])
    assert len(built) == 2


def test_encoder_is_freed_after_use(files, built) -> None:
    _embedder(files).embed("a cat")
    assert len(built) == 1 and built[0]() is None


def test_without_cache_nothing_is_read_or_written(files, built) -> None:
    _embedder(files, cache=False).embed("a cat")
    _embedder(files, cache=False).embed("a cat")
    assert len(built) == 2
    assert not files["cache"].exists() or not any(files["cache"].iterdir())


def test_other_weights_do_not_reuse_the_cache(files, built) -> None:
    _embedder(files).embed("a cat")
    save_file({k: v.bfloat16() for k, v in tiny_encoder(seed=9, config=CONFIG).state_dict().items()},
              str(files["t5"]))
    before = len(built)
    _embedder(files).embed("a cat")
    assert len(built) == before + 1


def test_damaged_cache_entry_is_recomputed_with_a_warning(files, built) -> None:
    embedder = _embedder(files)
    good = embedder.embed("a cat")
    entry = embedder.cache_path("a cat")
    entry.write_bytes(entry.read_bytes()[:40])
    reporter = Reporter("silent")
    again = _embedder(files, reporter).embed("a cat")
    assert len(built) == 2 and torch.equal(good, again)
    assert any("unreadable prompt cache entry" in w for w in reporter.warnings)
    _embedder(files).embed("a cat")
    assert len(built) == 2


def test_unusable_cache_folder_only_warns(files, built, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("INSPATIO_CACHE_DIR", str(blocker))
    reporter = Reporter("silent")
    out = _embedder(files, reporter).embed("a cat")
    assert out.shape == (1, 512, CONFIG.dim) and len(built) == 1
    assert any("prompt cache unavailable" in w for w in reporter.warnings)
    assert any("could not write the prompt cache" in w for w in reporter.warnings)


def test_a_full_disk_while_caching_only_warns(files, built, monkeypatch: pytest.MonkeyPatch) -> None:
    """safetensors reports the writer's I/O errors (EFBIG, ENOSPC) as its own error, not an OSError."""
    from safetensors import SafetensorError
    from inspatio_cli import text

    def full_disk(tensors, path, metadata=None):
        Path(path).write_bytes(b"\0" * 10)
        raise SafetensorError("Error while serializing: I/O error: File too large (os error 27)")

    monkeypatch.setattr(text, "save_file", full_disk)
    reporter = Reporter("silent")
    out = _embedder(files, reporter).embed("a cat")
    assert out.shape == (1, 512, CONFIG.dim) and len(built) == 1
    assert any("could not write the prompt cache" in w and "File too large" in w for w in reporter.warnings)
    assert not any(files["cache"].rglob("*"))  # no entry, no temporary


def test_long_prompt_warns_about_truncation_on_miss_and_hit(files, built) -> None:
    prompt = " ".join(["cat"] * 600)
    for expected_builds in (1, 1):
        reporter = Reporter("silent")
        out = _embedder(files, reporter).embed(prompt)
        assert len(built) == expected_builds
        assert out[0].abs().sum(dim=-1).gt(0).all()
        assert [w for w in reporter.warnings if "601 tokens long" in w and "last 89 tokens are ignored" in w]


def test_missing_encoder_weights(files) -> None:
    with pytest.raises(WeightsError, match="text encoder weights not found"):
        text.PromptEmbedder(files["t5"].with_name("nope.pth"), files["tokenizer"])


def test_no_prompt_gives_empty_prompt_with_a_warning() -> None:
    reporter = Reporter("silent")
    assert text.resolve_prompt(None, None, reporter) == ""
    assert reporter.warnings == [text.NO_PROMPT_WARNING]
    assert "quality is better with" in text.NO_PROMPT_WARNING
    reporter = Reporter("silent")
    assert text.resolve_prompt("  \n", None, reporter) == "  \n"
    assert reporter.warnings == [text.NO_PROMPT_WARNING]


def test_prompt_and_prompt_file(tmp_path: Path) -> None:
    reporter = Reporter("silent")
    assert text.resolve_prompt("a cat", None, reporter) == "a cat" and not reporter.warnings
    f = tmp_path / "prompt.txt"
    f.write_bytes("\ufeffun caf\u00e9 au lait\n".encode())
    assert text.resolve_prompt(None, f, reporter) == "un caf\u00e9 au lait\n" and not reporter.warnings
    with pytest.raises(UsageError, match="not both"):
        text.resolve_prompt("a cat", f)


def test_prompt_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a dog\n")))
    assert text.resolve_prompt(None, "-") == "a dog\n"


@pytest.mark.parametrize("content, message", [
    (b"", "prompt file is empty"),
    (b" \n\t\n", "prompt file is empty"),
    (b"a caf\xe9 au lait\nsecond line\xff", r"not UTF-8 text: byte 0xe9 at offset 5 \(line 1\)"),
    (b"line one\n\x80", r"byte 0x80 at offset 9 \(line 2\)"),
    (b"x" * (text.MAX_PROMPT_FILE_BYTES + 1), "larger than 1 MiB"),
])
def test_bad_prompt_files(tmp_path: Path, content: bytes, message: str) -> None:
    f = tmp_path / "prompt.txt"
    f.write_bytes(content)
    with pytest.raises(PromptError, match=message) as info:
        text.resolve_prompt(None, f)
    assert info.value.path == str(f) and "\n" not in info.value.one_line()


def test_missing_prompt_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="prompt file not found"):
        text.read_prompt_file(tmp_path / "nope.txt")
    with pytest.raises(PromptError, match="is a folder"):
        text.read_prompt_file(tmp_path)


def test_undecodable_command_line_prompt() -> None:
    raw = b"a caf\xe9".decode("utf-8", "surrogateescape")
    with pytest.raises(PromptError, match="not UTF-8"):
        text.resolve_prompt(raw, None)


def test_text_device_names() -> None:
    assert text.resolve_text_device("cpu") == torch.device("cpu")
    for bad in ("tpu", "gpu0", "meta"):
        with pytest.raises(UsageError, match="--text-device .*: unknown device"):
            text.resolve_text_device(bad)
    if not torch.cuda.is_available():
        assert text.resolve_text_device("auto") == torch.device("cpu")
        with pytest.raises(UsageError, match="no CUDA device"):
            text.resolve_text_device("cuda")
