"""Real-size smoke tests on a GPU (skipped without CUDA): the 1.3B configuration with random weights
generates chunks at 480x832 (latent 60x104) in bf16; prints time and memory (run with ``-s`` to see them)."""

from __future__ import annotations

import time

import pytest
import torch

from inspatio_cli.generate import ChunkInput, StarSampler
from inspatio_cli.models.dit import DiTConfig, random_generator

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def _chunk(cfg: DiTConfig, seed: int) -> ChunkInput:
    g = torch.Generator(device="cuda").manual_seed(seed)
    lat = lambda c: torch.randn(1, 3, c, 60, 104, generator=g, device="cuda", dtype=torch.bfloat16)
    return ChunkInput(lat(16), lat(16), lat(4).sign())


def _text(cfg: DiTConfig) -> torch.Tensor:
    return torch.randn(1, cfg.text_len, cfg.text_dim, device="cuda", dtype=torch.bfloat16) * 0.1


def test_real_size_chunks_bf16() -> None:
    cfg = DiTConfig()
    torch.cuda.reset_peak_memory_stats()
    model = random_generator(cfg, device="cuda", dtype=torch.bfloat16)
    weights = torch.cuda.memory_allocated()
    sampler = StarSampler(model, _text(cfg), seed=0)
    times = []
    for i in range(3):
        chunk = _chunk(cfg, i)
        torch.cuda.synchronize()
        start = time.perf_counter()
        out = sampler.step(chunk)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        assert out.shape == (1, 3, 16, 60, 104) and out.dtype == torch.bfloat16
        assert torch.isfinite(out.float()).all()
    peak = torch.cuda.max_memory_allocated()
    print(f"\n[1.3B bf16 480x832 on {torch.cuda.get_device_name()}] chunk latency: first {times[0]:.3f} s "
          f"(includes warm-up), then {times[1]:.3f} s, {times[2]:.3f} s; weights {weights / 2**30:.2f} GiB, "
          f"KV buffer {sampler.state_bytes / 2**30:.2f} GiB, peak {peak / 2**30:.2f} GiB")


def test_flags_keep_the_numbers_on_gpu() -> None:
    cfg = DiTConfig(num_layers=4)
    model = random_generator(cfg, device="cuda", dtype=torch.bfloat16)
    text = _text(cfg)
    chunks = [_chunk(cfg, i) for i in range(2)]
    outs = {}
    for name, flags in {"default": {}, "plain": {"cache_text": False, "preallocate": False},
                        "compiled": {"compile": True}}.items():
        sampler = StarSampler(model, text, seed=0, **flags)
        outs[name] = torch.cat([sampler.step(c) for c in chunks], dim=1).float()
    for name in ("plain", "compiled"):
        diff = (outs[name] - outs["default"]).abs().max().item()
        print(f"\n[{name} vs default, 4 layers bf16] max |diff| {diff:.3g}")
        torch.testing.assert_close(outs[name], outs["default"], atol=0.1, rtol=0.05)
