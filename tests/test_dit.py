"""The causal Wan DiT: official key layout at full size, loading (errors, base fill, dtype), and the
properties of the forward pass that the golden vectors do not pin down (any latent size, KV buffer
contract, text-cache and preallocation flags, attention dispatch)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from golden_checks.common import official_key_list
from inspatio_cli.errors import InputError, WeightsError
from inspatio_cli.models import dit
from inspatio_cli.models.dit import (CausalWanDiT, DiTConfig, build_generator, load_generator, random_generator,
                                     rope_table)
from inspatio_cli.progress import Reporter

# head_dim 128 like every Wan model, so the head count is inferred from shapes alone
TINY = DiTConfig(dim=128, ffn_dim=192, freq_dim=32, num_heads=1, num_layers=2, text_dim=24, text_len=8)


def _meta_state(cfg: DiTConfig = DiTConfig()) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return CausalWanDiT(cfg).state_dict()


def test_full_size_key_count_and_parameter_count() -> None:
    state = _meta_state()
    assert len(state) == 825
    assert sum(v.numel() for v in state.values()) == 1_419_119_680


def test_full_size_keys_and_shapes_match_the_release() -> None:
    official = official_key_list("generator_keys_1.3b.json")
    ours = {"model." + k: list(v.shape) for k, v in _meta_state().items()}
    assert ours == {k: list(v) for k, v in official["keys"].items()}
    assert official["num_params"] == 1_419_119_680
    cfg = DiTConfig()
    for key in ("dim", "ffn_dim", "freq_dim", "num_heads", "num_layers", "in_dim", "out_dim", "text_len",
                "text_dim", "eps"):
        assert getattr(cfg, key) == official["config"][key], key
    assert cfg.head_dim == official["config"]["head_dim"]
    pairs = cfg.head_dim // 2
    assert [pairs - 2 * (pairs // 3), pairs // 3, pairs // 3] == official["config"]["rope_split_complex_pairs_t_h_w"]


def test_full_size_meta_state_loads_and_infers_the_official_config() -> None:
    model = build_generator({"model." + k: v for k, v in _meta_state().items()})
    assert model.cfg == DiTConfig()
    assert model.patch_embedding.weight.is_meta


def test_full_size_state_missing_a_block_is_refused() -> None:
    state = {k: v for k, v in _meta_state().items() if not k.startswith("blocks.29.")}
    with pytest.raises(WeightsError, match="num_layers=29"):
        build_generator(state, path="gen.safetensors")


# ----------------------------------------------------------------------------------------------------------
# loading from files


def _save(path: Path, state: dict[str, torch.Tensor], prefix: str = "model.") -> Path:
    save_file({prefix + k: v.contiguous() for k, v in state.items()}, str(path))
    return path


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in random_generator(TINY, seed=1).state_dict().items()}


def test_load_round_trip_infers_config_and_keeps_dtype(tmp_path: Path, tiny_state) -> None:
    half = {k: v.half() for k, v in tiny_state.items()}
    model = load_generator(_save(tmp_path / "g.safetensors", half))
    assert model.cfg == replace(TINY, text_len=512)  # the text length is not in any shape: 512 like T5's output
    assert model.dtype == torch.float16
    for k, v in model.state_dict().items():
        assert torch.equal(v, half[k]), k
    assert not any(p.requires_grad for p in model.parameters())
    assert load_generator(tmp_path / "g.safetensors", dtype="bf16").dtype == torch.bfloat16
    with pytest.raises(InputError, match="unknown dtype"):
        load_generator(tmp_path / "g.safetensors", dtype="fp8")


@pytest.mark.parametrize("edit, message", [
    ("missing", r"1 missing: blocks\.1\.norm3\.bias"),
    ("extra", r"1 unexpected: blocks\.0\.extra\.weight"),
    ("shape", r"1 wrong shape: blocks\.0\.ffn\.2\.bias \(191,\) \(expected \(128,\)\)"),
])
def test_load_mismatch_names_file_and_key(tmp_path: Path, tiny_state, edit: str, message: str) -> None:
    state = dict(tiny_state)
    if edit == "missing":
        del state["blocks.1.norm3.bias"]
    elif edit == "extra":
        state["blocks.0.extra.weight"] = torch.zeros(3)
    else:
        state["blocks.0.ffn.2.bias"] = torch.zeros(191)
    path = _save(tmp_path / "g.safetensors", state)
    with pytest.raises(WeightsError, match=message) as info:
        load_generator(path)
    assert str(path) in str(info.value)


def test_load_unreadable_files_name_the_file(tmp_path: Path, tiny_state) -> None:
    good = _save(tmp_path / "g.safetensors", tiny_state).read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good[: len(good) // 2])
    text = tmp_path / "notes.safetensors"
    text.write_text("this is not a checkpoint\n")
    pickle_like = tmp_path / "weights.bin"
    pickle_like.write_bytes(b"\x00garbage" * 10)
    for path in (truncated, text, pickle_like, tmp_path / "absent.safetensors"):
        with pytest.raises(WeightsError) as info:
            load_generator(path)
        assert str(path) in str(info.value)


def test_missing_keys_are_filled_from_the_filtered_wan_base(tmp_path: Path, tiny_state) -> None:
    base_dir = tmp_path / "Wan2.1-T2V-1.3B"
    base_dir.mkdir()
    base = {k: v + 1 for k, v in tiny_state.items()}
    base["patch_embedding.weight"] = torch.zeros(TINY.dim, 16, 1, 2, 2)  # the T2V base has 16 input channels
    base["blocks.0.cross_attn.k_img.weight"] = torch.zeros(2)            # image branch: dropped
    part = dict(list(base.items())[: len(base) // 2])
    save_file({k: v.contiguous() for k, v in part.items()}, str(base_dir / "diffusion_pytorch_model-00001.safetensors"))
    save_file({k: v.contiguous() for k, v in base.items() if k not in part},
              str(base_dir / "diffusion_pytorch_model-00002.safetensors"))
    kept = {k: v for k, v in tiny_state.items() if not k.startswith("blocks.1.")}
    path = _save(tmp_path / "g.safetensors", kept)
    reporter = Reporter("silent")
    model = load_generator(path, base=base_dir, reporter=reporter)
    state = model.state_dict()
    for k in tiny_state:
        assert torch.equal(state[k], base[k] if k.startswith("blocks.1.") else tiny_state[k]), k
    assert len(reporter.warnings) == 1 and "Wan2.1 base" in reporter.warnings[0]

    no_patch = {k: v for k, v in tiny_state.items() if not k.startswith("patch_embedding")}
    with pytest.raises(WeightsError, match="missing: patch_embedding.weight"):
        load_generator(_save(tmp_path / "np.safetensors", no_patch), base=base_dir)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WeightsError, match="no '\\*diffusion\\*.safetensors'"):
        load_generator(path, base=empty)


# ----------------------------------------------------------------------------------------------------------
# forward pass


@pytest.fixture(scope="module")
def tiny_model() -> CausalWanDiT:
    torch.manual_seed(0)
    return random_generator(TINY, seed=2, std=0.05)


def _inputs(frames: int = 3, h: int = 6, w: int = 10, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(1, frames, 16, h, w, generator=g), torch.randn(1, frames, 20, h, w, generator=g),
            torch.randn(1, 5, TINY.text_dim, generator=g))


def test_any_latent_size_and_text_cache_gives_identical_numbers(tiny_model: CausalWanDiT) -> None:
    x, cond, text = _inputs(h=6, w=10)
    out = tiny_model(x, 937.5, text, cond=cond, time_offset=6)
    assert out.shape == (1, 3, 16, 6, 10)
    assert torch.equal(out, tiny_model(x, torch.full((1, 3), 937.5), tiny_model.text_kv(text), cond=cond,
                                       time_offset=6))
    # zero-padding the text to text_len is what the model does itself
    padded = torch.cat([text, torch.zeros(1, TINY.text_len - 5, TINY.text_dim)], dim=1)
    assert torch.equal(out, tiny_model(x, 937.5, padded, cond=cond, time_offset=6))


def test_kv_buffer_contract(tiny_model: CausalWanDiT) -> None:
    x, cond, text = _inputs(h=4, w=6)
    ctx = torch.cat([torch.randn(1, 6, 16, 4, 6), torch.zeros(1, 6, 20, 4, 6)], dim=2)
    fsl = tiny_model.tokens_per_frame(4, 6)
    outs = []
    for rows in (9 * fsl, 6 * fsl):
        cache = tiny_model.new_kv_buffer(1, rows)
        tiny_model(ctx, 0, text, cache=cache, write=True)
        stored = [t[:, :, : 6 * fsl].clone() for t in cache.k + cache.v]
        outs.append(tiny_model(x, 625.0, text, cond=cond, cache=cache, cached=6 * fsl, time_offset=6))
        # a denoising call never changes the context rows it reads
        assert all(torch.equal(a, b[:, :, : 6 * fsl]) for a, b in zip(stored, cache.k + cache.v))
    torch.testing.assert_close(outs[0], outs[1], atol=1e-6, rtol=1e-6)
    # the cache matters: the same call without it differs
    assert not torch.allclose(outs[0], tiny_model(x, 625.0, text, cond=cond, time_offset=6), atol=1e-3)
    # without cached rows, a buffer changes nothing, and the RoPE time offset is relative
    plain = tiny_model(x, 625.0, text, cond=cond, time_offset=6)
    torch.testing.assert_close(plain, tiny_model(x, 625.0, text, cond=cond, cache=cache, time_offset=6))
    torch.testing.assert_close(plain, tiny_model(x, 625.0, text, cond=cond, time_offset=0), atol=1e-5, rtol=1e-5)


def test_input_errors(tiny_model: CausalWanDiT) -> None:
    x, cond, text = _inputs()
    with pytest.raises(InputError, match="36 input channels"):
        tiny_model(x, 0.0, text)
    with pytest.raises(InputError, match="not a multiple of the patch"):
        tiny_model(torch.zeros(1, 3, 36, 5, 6), 0.0, text)
    with pytest.raises(InputError, match="text embeddings"):
        tiny_model(x, 0.0, torch.zeros(1, TINY.text_len + 1, TINY.text_dim), cond=cond)


def test_rope_groups_for_head_dim_128() -> None:
    table = rope_table(2, 3, 4, 128, 6, 10000.0, torch.device("cpu"))
    assert table.dtype == torch.float64 and table.shape == (2 * 3 * 4, 64, 2)
    table = torch.view_as_complex(table).reshape(2, 3, 4, 64)
    t_freq = 10000.0 ** (-torch.arange(22, dtype=torch.float64) / 22)
    hw_freq = 10000.0 ** (-torch.arange(21, dtype=torch.float64) / 21)
    expected = torch.cat([(6 + 1) * t_freq, 2 * hw_freq, 3 * hw_freq])  # token (f=1, h=2, w=3)
    torch.testing.assert_close(table[1, 2, 3], torch.polar(torch.ones(64, dtype=torch.float64), expected))
    torch.testing.assert_close(table[0, 0, 0], torch.polar(torch.ones(64, dtype=torch.float64),
                                                           torch.cat([6 * t_freq, torch.zeros(42)])))


def test_flash_attention_path_has_sdpa_semantics(monkeypatch) -> None:
    calls = []

    def fake_flash(q, k, v):  # flash-attn layout (B, L, heads, D), returns (out, lse) like some FA3 releases
        calls.append(q.shape)
        out = torch.nn.functional.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                                               v.transpose(1, 2))
        return out.transpose(1, 2), None

    q, k, v = torch.randn(1, 2, 5, 8), torch.randn(1, 2, 7, 8), torch.randn(1, 2, 7, 8)
    expected = dit.attention(q, k, v)
    monkeypatch.setattr(dit, "_flash_function", lambda q: fake_flash)
    torch.testing.assert_close(dit.attention(q, k, v), expected)
    assert calls == [(1, 5, 2, 8)]
    monkeypatch.undo()
    assert dit._flash_function(q.bfloat16()) is None  # never on CPU
