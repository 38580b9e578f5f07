"""Automatic prompts: Florence-2 captions of a video frame, through the real plumbing on a tiny random model.

The tiny model (a few thousand parameters, a byte-level tokenizer, 64x64 images) is built and saved here in the
layout of ``florence-community/Florence-2-large``, so no download is needed; it writes gibberish, which is all
these tests need. Tests that run it are skipped when transformers 5 (the ``caption`` extra) is not installed;
the test of the missing-extra message runs everywhere.
"""

from __future__ import annotations

import json
import sys
import weakref
from pathlib import Path

import pytest
import torch

from inspatio_cli import caption
from inspatio_cli.errors import UsageError, WeightsError
from inspatio_cli.progress import Reporter
from inspatio_cli.weights import catalog
from clirun import run
from media import make_clip, pattern

FOLDER = catalog.entry(caption.WEIGHTS_ENTRY).folder
IMAGE_SIDE = 64
"""The tiny processor's square input; the vision tower downsamples by 32, so 2x2 tokens plus one."""


def save_tiny_florence(folder: Path, seed: int = 0) -> Path:
    """Save a randomly initialised Florence-2 (config, generation config, weights, tokenizer, processor) to
    ``folder`` with transformers' own writers, as the converted hub repository is laid out."""
    tf = pytest.importorskip("transformers", minversion="5")
    from tokenizers import pre_tokenizers

    specials = ["<pad>", "<unk>", "<s>", "</s>", "<mask>"]
    vocab = {token: i for i, token in enumerate(specials + sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tokenizer = tf.BartTokenizer(vocab=vocab, merges=[], extra_special_tokens={"image_token": "<image>"})
    images = tf.CLIPImageProcessorPil(
        size={"height": IMAGE_SIDE, "width": IMAGE_SIDE}, do_center_crop=False, resample=3,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
        image_seq_length=(IMAGE_SIDE // 32) ** 2 + 1)
    processor = tf.Florence2Processor(image_processor=images, tokenizer=tokenizer,
                                      post_processor_config={"pure_text": {}})
    ids = {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
           "eos_token_id": tokenizer.eos_token_id}
    config = tf.Florence2Config(
        vision_config={"embed_dim": [8, 8, 8, 16], "num_heads": [1, 1, 1, 2], "num_groups": [1, 1, 1, 2],
                       "depths": [1, 1, 1, 1], "window_size": 2, "projection_dim": 16, "drop_path_rate": 0.0,
                       "max_position_embeddings": 8},
        text_config={"model_type": "bart", "vocab_size": len(tokenizer), "d_model": 16, "encoder_layers": 1,
                     "decoder_layers": 1, "encoder_attention_heads": 2, "decoder_attention_heads": 2,
                     "encoder_ffn_dim": 32, "decoder_ffn_dim": 32,
                     "max_position_embeddings": caption.MAX_NEW_TOKENS + 8,
                     "decoder_start_token_id": tokenizer.eos_token_id, **ids},
        image_token_id=tokenizer.image_token_id)
    torch.manual_seed(seed)
    model = tf.Florence2ForConditionalGeneration(config)
    # Florence-2's own generation settings (3 beams, which the captioner overrides, no repeated 3-grams,
    # forced BOS/EOS), plus a growing end-of-text bonus after 12 tokens so that the gibberish stays short.
    model.generation_config = tf.GenerationConfig(
        num_beams=3, no_repeat_ngram_size=3, forced_bos_token_id=tokenizer.bos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.eos_token_id,
        exponential_decay_length_penalty=(12, 2.0), **ids)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``--weights-dir`` holding the tiny captioner in the registry's folder."""
    root = tmp_path_factory.mktemp("weights")
    save_tiny_florence(root / FOLDER)
    return root


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache root; returns the captions folder."""
    monkeypatch.setenv("INSPATIO_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / caption.CACHE_KIND


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_clip(tmp_path / "clip.mp4", pattern(9, 48, 64), 25)


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[weakref.ref]:
    """Weak references to every Florence-2 model constructed during the test (on any device)."""
    tf = pytest.importorskip("transformers", minversion="5")
    made: list[weakref.ref] = []
    original = tf.Florence2ForConditionalGeneration.__init__

    def counting_init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(weakref.ref(self))

    monkeypatch.setattr(tf.Florence2ForConditionalGeneration, "__init__", counting_init)
    return made


def test_cli_captions_the_middle_frame_and_the_cache_answers_the_second_time(tiny_weights, cache, clip, capsys):
    code, out, err = run(capsys, "caption", "--weights-dir", str(tiny_weights), "--device", "cpu", str(clip))
    assert code == 0, err
    assert "clip.mp4" in out and "│ 4 " in out
    code, out, err = run(capsys, "caption", "--json", "--weights-dir", str(tiny_weights), str(clip))
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    captions = [e for e in events if e["event"] == "caption"]
    assert len(captions) == 1 and captions[0]["cached"] is True and captions[0]["frame"] == 4
    assert captions[0]["video"] == str(clip) and captions[0]["model"].startswith(f"{catalog.entry('captioner').repo}@")
    text = captions[0]["text"]
    assert text.strip() and not any(token in text for token in ("<pad>", "<s>", "</s>"))
    assert {"event": "caption_cache", "hit": True, "path": str(next(cache.glob("*.json")))} in events


def test_second_call_builds_no_model_and_returns_the_same_text(tiny_weights, cache, clip, built):
    first = caption.caption_video(clip, weights_dir=tiny_weights, device="cpu")
    made = len(built)
    assert made >= 1 and not first.cached and first.frame == 4 and first.text
    assert all(ref() is None for ref in built), "the model is freed after a one-shot caption"
    again = caption.caption_video(clip, weights_dir=tiny_weights, device="cpu")
    assert len(built) == made
    assert again.cached and again.text == first.text and again.model == first.model
    entry = json.loads(next(cache.glob("*.json")).read_text(encoding="utf-8"))
    assert entry["text"] == first.text and entry["frame"] == 4 and entry["task"] == caption.TASK


def test_uncached_runs_match_and_one_load_serves_many_videos(tiny_weights, cache, clip, tmp_path, built):
    other = make_clip(tmp_path / "other.mp4", pattern(5, 40, 56, seed=3), 30)
    with caption.Captioner(weights_dir=tiny_weights, device="cpu", cache=False) as captioner:
        results = [captioner.caption(v) for v in (clip, other, clip)]
    assert [r.frame for r in results] == [4, 2, 4] and not any(r.cached for r in results)
    assert results[0].text == results[2].text
    assert len(built) == 2, "one meta build for the weights check, one real load"
    assert not cache.exists() or not any(cache.iterdir())


def test_frame_option_is_validated_per_video(tiny_weights, cache, clip, tmp_path, capsys):
    short = make_clip(tmp_path / "short.mp4", pattern(3, 48, 64), 25)
    code, out, err = run(capsys, "caption", "--json", "--frame", "5", "--weights-dir", str(tiny_weights),
                         str(clip), str(short))
    assert code == UsageError.exit_code
    assert err.count("\n") == 1 and "short.mp4" in err and "it has 3 frames (0..2)" in err
    captions = [e for e in map(json.loads, out.splitlines()) if e["event"] == "caption"]
    assert [(c["video"], c["frame"]) for c in captions] == [(str(clip), 5)]


def test_damaged_cache_entry_is_recomputed_with_a_warning(tiny_weights, cache, clip):
    first = caption.caption_video(clip, weights_dir=tiny_weights, device="cpu")
    entry = next(cache.glob("*.json"))
    entry.write_text("{not json")
    report = Reporter("silent")
    again = caption.caption_video(clip, weights_dir=tiny_weights, device="cpu", reporter=report)
    assert not again.cached and again.text == first.text
    assert any("unreadable caption cache entry" in w for w in report.warnings)
    assert json.loads(entry.read_text())["text"] == first.text


def test_missing_extra_is_one_line_naming_it(monkeypatch, clip, capsys):
    monkeypatch.setitem(sys.modules, "transformers", None)
    assert not caption.captioning_available()
    with pytest.raises(UsageError, match=r'pip install "inspatio-cli\[caption\]"'):
        caption.caption_video(clip)
    code, _, err = run(capsys, "caption", str(clip))
    assert code == UsageError.exit_code and err.count("\n") == 1
    assert err.startswith("error: captioning needs the optional 'caption' extra") and "inspatio-cli[caption]" in err


def test_missing_weights_name_the_download_command(tiny_weights, tmp_path, clip, capsys):
    pytest.importorskip("transformers", minversion="5")
    code, _, err = run(capsys, "caption", "--weights-dir", str(tmp_path / "empty"), str(clip))
    assert code == WeightsError.exit_code and "florence-community/Florence-2-large/model.safetensors" in err
    assert "inspatio models download --only caption" in err
    partial = tmp_path / "partial" / FOLDER
    partial.mkdir(parents=True)
    (partial / "model.safetensors").write_bytes((tiny_weights / FOLDER / "model.safetensors").read_bytes())
    with pytest.raises(WeightsError, match="lacks config.json, tokenizer_config.json") as info:
        caption.Captioner(weights_dir=tmp_path / "partial")
    assert f"hf download florence-community/Florence-2-large --local-dir {partial}" in str(info.value)


def test_original_remote_code_layout_is_refused(tiny_weights, tmp_path):
    pytest.importorskip("transformers", minversion="5")
    folder = tmp_path / "microsoft"
    folder.mkdir()
    for item in (tiny_weights / FOLDER).iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    config = json.loads((folder / "config.json").read_text())
    config["vision_config"]["model_type"] = "davit"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="original remote-code layout"):
        caption.Captioner(folder)


def test_weights_that_do_not_match_the_config_are_refused(tiny_weights, tmp_path, clip, cache):
    from safetensors.torch import load_file, save_file

    pytest.importorskip("transformers", minversion="5")
    folder = tmp_path / "bad"
    folder.mkdir()
    for item in (tiny_weights / FOLDER).iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    state = load_file(folder / "model.safetensors")
    state.pop("model.multi_modal_projector.image_projection.weight")
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    caption.check_weights(tiny_weights / FOLDER / "model.safetensors")
    with pytest.raises(WeightsError, match="1 missing: model.multi_modal_projector.image_projection.weight"):
        caption.caption_video(clip, model_dir=folder, device="cpu")


def test_florence_2_large_layout_matches_the_registry_entry():
    """The converted Florence-2-large (config of microsoft/Florence-2-large, vocabulary padded to 51328 for
    the added <image> token) has 776,505,344 parameters; stored in float16 without the tied copies of the
    embedding, plus the 100x2048 temporal position buffer, that is the registry's 1.55 GB."""
    tf = pytest.importorskip("transformers", minversion="5")
    config = tf.Florence2Config(
        vision_config={"embed_dim": [256, 512, 1024, 2048], "num_heads": [8, 16, 32, 64],
                       "num_groups": [8, 16, 32, 64], "depths": [1, 1, 9, 1], "window_size": 12,
                       "projection_dim": 1024},
        text_config={"model_type": "bart", "vocab_size": 51328, "d_model": 1024, "encoder_layers": 12,
                     "decoder_layers": 12, "encoder_attention_heads": 16, "decoder_attention_heads": 16,
                     "encoder_ffn_dim": 4096, "decoder_ffn_dim": 4096, "max_position_embeddings": 4096})
    with torch.device("meta"):
        model = tf.Florence2ForConditionalGeneration(config)
    assert sum(p.numel() for p in model.parameters()) == 776_505_344
    stored = {k: v for k, v in model.state_dict().items() if k not in caption.TIED_KEYS}
    size = sum(v.numel() for v in stored.values()) * 2
    entry = catalog.entry(caption.WEIGHTS_ENTRY)
    assert abs(size - entry.size) < 0.01 * entry.size
    assert entry.licence == "MIT" and entry.group == "caption" and entry.filename == caption.WEIGHTS_FILE
