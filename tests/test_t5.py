"""umT5 encoder: full-size key/shape list, position buckets, padding handling and checkpoint loading."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from golden_checks.common import official_key_list
from inspatio_cli.errors import WeightsError
from inspatio_cli.models.t5 import GELU, T5Config, T5Encoder, load_t5, relative_position_buckets

TINY = T5Config(vocab_size=40, dim=32, dim_attn=24, dim_ffn=48, num_heads=3, encoder_layers=2)


def tiny_encoder(seed: int = 0, config: T5Config = TINY) -> T5Encoder:
    """A small encoder with random weights of a realistic spread (norm weights away from 1)."""
    torch.manual_seed(seed)
    model = T5Encoder(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1 + 0.2 * torch.randn_like(p) if "norm" in name else 0.3 * torch.randn_like(p))
    return model


def _xxl_on_meta() -> T5Encoder:
    with torch.device("meta"):
        return T5Encoder(T5Config())


def test_xxl_matches_the_official_key_and_shape_list() -> None:
    facts = official_key_list("t5_keys.json")
    expected = {k["key"]: tuple(k["shape"]) for k in facts["keys"]}
    ours = {k: tuple(v.shape) for k, v in _xxl_on_meta().state_dict().items()}
    assert ours == expected
    assert list(ours) == list(expected)
    assert T5Config.from_dict(facts["config"]) == T5Config()


def test_xxl_size_matches_the_release() -> None:
    """242 tensors and 5,680,910,336 parameters, as the released bf16 checkpoint (REFERENCE.md sec. 8)."""
    state = _xxl_on_meta().state_dict()
    assert len(state) == 242
    assert sum(v.numel() for v in state.values()) == 5_680_910_336
    assert T5Config.from_state_dict(state) == T5Config()


def _bucket_by_definition(rel: int) -> int:
    """Bucket from the spec's words, with exact (integer) geometry: 16 per sign, 8 exact, then 8
    log-spaced up to distance 128 (edges at 8 * 16**(k/8)), capped at 15."""
    n = abs(rel)
    if n < 8:
        inner = n
    else:
        inner = min(15, 8 + max(k for k in range(8) if 8 ** 8 * 16 ** k <= n ** 8))
    return inner + (16 if rel > 0 else 0)


def test_relative_buckets_match_the_definition_up_to_512() -> None:
    buckets = relative_position_buckets(512, 512, 32, 128)
    rels = range(-511, 512)
    table = torch.tensor([_bucket_by_definition(r) for r in rels])
    ours = torch.stack([buckets.diagonal(offset=r)[0] for r in rels])
    assert torch.equal(ours, table)
    assert buckets[0, 0] == 0 and buckets[0, 1] == 17 and buckets[1, 0] == 1
    assert buckets[0, 511] == 31 and buckets[511, 0] == 15


def test_gated_ffn_uses_the_tanh_gelu() -> None:
    model = tiny_encoder()
    ffn = model.blocks[0].ffn
    x = torch.randn(5, TINY.dim, dtype=torch.float64)
    ffn = ffn.double()
    g = x @ ffn.gate[0].weight.T
    gelu = 0.5 * g * (1 + torch.tanh(math.sqrt(2 / math.pi) * (g + 0.044715 * g ** 3)))
    expected = (x @ ffn.fc1.weight.T * gelu) @ ffn.fc2.weight.T
    torch.testing.assert_close(ffn(x), expected)


def _masks(length: int) -> list[torch.Tensor]:
    lens = [[1, 5], [length, 3], [7, 7]]
    return [torch.stack([(torch.arange(length) < n).long() for n in pair]) for pair in lens]


@pytest.mark.parametrize("mask", _masks(40), ids=["1-5", "full-3", "7-7"])
def test_encode_ids_equals_full_forward_with_padding_rows_zeroed(mask: torch.Tensor) -> None:
    """Dropping the all-padding columns changes only the summation order (softmax runs in float32)."""
    model = tiny_encoder()
    ids = torch.randint(3, TINY.vocab_size, mask.shape) * mask
    with torch.no_grad():
        full = model(ids, mask)
    out = model.encode_ids(ids, mask)
    assert out.shape == (2, 40, TINY.dim) and out.dtype == torch.float32
    for b in range(2):
        n = int(mask[b].sum())
        torch.testing.assert_close(out[b, :n], full[b, :n], rtol=1e-5, atol=1e-5)
        assert out[b, n:].eq(0).all()


def test_padded_keys_do_not_influence_real_rows() -> None:
    model = tiny_encoder().double()
    mask = (torch.arange(30) < 9).long()[None]
    a = torch.randint(3, TINY.vocab_size, (1, 30))
    b = a.clone()
    b[0, 9:] = torch.randint(3, TINY.vocab_size, (21,))
    with torch.no_grad():
        assert torch.equal(model(a, mask)[0, :9], model(b, mask)[0, :9])


def test_all_padding_gives_zeros() -> None:
    out = tiny_encoder().encode_ids(torch.zeros(1, 16, dtype=torch.long), torch.zeros(1, 16, dtype=torch.long))
    assert out.shape == (1, 16, TINY.dim) and out.eq(0).all()


def test_rms_norm_statistics_in_float32() -> None:
    norm = tiny_encoder().norm.to(torch.bfloat16)
    x = torch.randn(4, TINY.dim) * 50
    xb = x.bfloat16()
    normed = xb.float() * torch.rsqrt(xb.float().pow(2).mean(-1, keepdim=True) + 1e-6)
    out = norm(xb)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, norm.weight * normed.bfloat16())


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_load_t5_infers_config_and_loads_strictly(tmp_path: Path, suffix: str) -> None:
    model = tiny_encoder(seed=3)
    state = {k: v.to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
    path = tmp_path / f"models_t5_umt5-xxl-enc-bf16{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    loaded = load_t5(path, dtype=torch.float32)
    assert loaded.config == TINY and not loaded.training
    assert all(not p.requires_grad and p.dtype == torch.float32 for p in loaded.parameters())
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state[key].float()), key
    assert load_t5(path).token_embedding.weight.dtype == torch.bfloat16


def test_load_t5_reports_wrong_files(tmp_path: Path) -> None:
    state = tiny_encoder().state_dict()
    extra = tmp_path / "extra.safetensors"
    save_file({**state, "blocks.0.attn.q.bias": torch.zeros(TINY.dim_attn)}, str(extra))
    with pytest.raises(WeightsError, match=r"unexpected: blocks\.0\.attn\.q\.bias"):
        load_t5(extra)
    missing = tmp_path / "missing.safetensors"
    save_file({k: v for k, v in state.items() if k != "blocks.1.norm2.weight"}, str(missing))
    with pytest.raises(WeightsError, match=r"missing: blocks\.1\.norm2\.weight"):
        load_t5(missing)
    foreign = tmp_path / "vae.safetensors"
    save_file({"decoder.conv1.weight": torch.zeros(3, 3)}, str(foreign))
    with pytest.raises(WeightsError, match="not a umT5 encoder checkpoint"):
        load_t5(foreign)


def test_shared_position_table_config_is_refused() -> None:
    with pytest.raises(ValueError, match="shared_pos"):
        T5Config.from_dict({"shared_pos": True})


def test_gelu_is_the_official_op_by_op_formula_to_the_last_bit() -> None:
    """In bf16 every intermediate of the official formula is rounded; the module must round the same way
    (``nn.GELU(approximate="tanh")`` computes in one kernel and does not)."""
    x = torch.randn(4096, generator=torch.Generator().manual_seed(0)).mul(3).to(torch.bfloat16)
    official = 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
    assert torch.equal(GELU()(x), official)
    assert not torch.equal(torch.nn.functional.gelu(x, approximate="tanh"), official)
    assert isinstance(tiny_encoder().blocks[0].ffn.gate[0], torch.nn.Linear)
