"""Every fast-path switch leaves the results unchanged: the background encoder and the decode prefetch give
the same frames as the foreground code, errors still arrive in order and nothing is left behind; the
compiled generator gives the eager numbers (float32, up to rounding) or falls back to eager; bfloat16 and
float16 runs stay within the documented distance of float32."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from golden_checks import generator as generator_checks
from golden_checks import taehv as taehv_checks
from golden_checks import vae as vae_checks
from golden_checks.common import GoldenCase, golden_path
from inspatio_cli.errors import RuntimeFailure
from inspatio_cli.generate import ChunkInput, StarSampler, star
from inspatio_cli.models.dit import DiTConfig, random_generator
from inspatio_cli.progress import Reporter
from inspatio_cli.video import Prefetch, VideoWriter, iter_frames


def _decoded(path) -> tuple[list[float], np.ndarray]:
    stamps, images = zip(*iter_frames(path))
    return list(stamps), np.stack(images)


def test_background_writer_writes_the_frames_a_foreground_writer_writes(tmp_path):
    g = torch.Generator().manual_seed(0)
    batches = [torch.rand(n, 3, 32, 48, generator=g) * 2 - 1 for n in (5, 1, 7)]
    buffer = np.zeros((4, 32, 48, 3), np.uint8)
    results = {}
    for background in (False, True):
        out = tmp_path / f"{background}.mp4"
        with VideoWriter(out, 24, lossless=True, background=background) as writer:
            for batch in batches:
                writer.write(batch)
                buffer[:] = 17 * len(batch)
                writer.write(buffer)  # reused by the caller right after: the queued frames must not change
                buffer[:] = 255
            assert writer.frames_written == 13 + 3 * 4
        results[background] = _decoded(out)
    assert results[True][0] == results[False][0]
    assert np.array_equal(results[True][1], results[False][1])
    assert results[True][1].shape == (25, 32, 48, 3)
    assert (results[True][1][5] == 85).all()


def test_background_writer_raises_an_encoding_error_and_leaves_nothing(tmp_path, monkeypatch):
    calls = []
    encode = VideoWriter._encode

    def failing(self, array, stop=None):
        calls.append(threading.current_thread().name)
        if len(calls) == 2:
            raise RuntimeFailure("cannot write the video (No space left on device)", self.path)
        encode(self, array, stop)

    monkeypatch.setattr(VideoWriter, "_encode", failing)
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeFailure, match="No space left"):
        with VideoWriter(out, 24) as writer:
            for _ in range(20):
                writer.write(np.zeros((2, 16, 16, 3), np.uint8))
    assert calls[0] == "inspatio-encode" and len(calls) == 2
    assert list(tmp_path.iterdir()) == []
    assert not any(t.name == "inspatio-encode" for t in threading.enumerate())


def test_prefetch_yields_in_order_and_raises_where_the_source_failed():
    def source():
        yield from range(5)
        raise ValueError("frame 5 is damaged")

    got = []
    with pytest.raises(ValueError, match="frame 5"):
        for item in Prefetch(source, 2):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]


def test_prefetch_stays_bounded_and_close_stops_the_source():
    made, closed = [], threading.Event()

    def source():
        try:
            for i in range(1000):
                made.append(i)
                yield i
        finally:
            closed.set()

    frames = Prefetch(source, 3)
    assert [next(frames) for _ in range(4)] == [0, 1, 2, 3]
    frames.close()
    assert closed.is_set() and len(made) <= 4 + 3 + 1
    with pytest.raises(StopIteration):
        next(frames)


def _generate(model, text, chunks, **flags) -> tuple[torch.Tensor, StarSampler]:
    sampler = StarSampler(model, text, seed=0, **flags)
    return torch.cat([sampler.step(c) for c in chunks], dim=1), sampler


@pytest.fixture(scope="module")
def tiny_dit():
    cfg = DiTConfig(dim=64, ffn_dim=128, freq_dim=32, num_heads=2, num_layers=3, text_dim=16, text_len=8)
    model = random_generator(cfg, std=0.05)
    g = torch.Generator().manual_seed(0)
    text = torch.randn(1, 5, 16, generator=g)
    lat = lambda c: torch.randn(1, 3, c, 4, 6, generator=g)
    chunks = [ChunkInput(lat(16), lat(16), lat(4).sign()) for _ in range(3)]
    return model, text, chunks


def test_compiled_blocks_give_the_eager_numbers_with_one_graph_per_call_shape(tiny_dit):
    """One compiled block serves every layer: 4 graphs (context of 3 and 6 frames, denoising with 3 and 6
    cached frames) for 3 layers and 3 chunks, whatever the depth; fp32 results equal eager ones up to
    rounding. ``aot_eager`` traces like inductor without generating code (inductor: bench_generator)."""
    model, text, chunks = tiny_dit
    eager, _ = _generate(model, text, chunks)
    assert star.compile_problem("cpu", "aot_eager") is None  # its probe compiles a graph of its own
    torch._dynamo.reset()
    counters = torch._dynamo.utils.counters
    counters.clear()
    compiled, sampler = _generate(model, text, chunks, compile="aot_eager")
    assert sampler.compiled == "aot_eager" and model.compiled == "aot_eager"
    assert counters["stats"]["unique_graphs"] == 4
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)
    again, sampler = _generate(model, text, chunks)
    assert sampler.compiled is None and model.compiled is None and torch.equal(again, eager)


def test_compile_falls_back_to_eager_with_a_warning(tiny_dit, monkeypatch):
    model, text, chunks = tiny_dit
    monkeypatch.setattr(star, "compile_problem", lambda device, backend: "no C++ compiler")
    reporter = Reporter("silent")
    out, sampler = _generate(model, text, chunks[:1], compile=True, reporter=reporter)
    assert sampler.compiled is None and model.compiled is None
    assert any("no C++ compiler" in w and "without it" in w for w in reporter.warnings)
    assert torch.equal(out, _generate(model, text, chunks[:1])[0])


PRECISION_BOUNDS = {torch.bfloat16: 0.03, torch.float16: 0.005}
"""Documented bounds (benchmarks/README.md) on the relative RMS error ``||x - x_fp32|| / ||x_fp32||`` of a
model run in half precision; measured: bf16 0.4-2 %, fp16 0.04-0.25 % (benchmarks/bench_precision.py)."""


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    a, b = actual.detach().double(), expected.detach().double()
    return ((a - b).norm() / b.norm()).item()


HALF_PRECISION_CASES = {
    "generator_dit_block": ("output.flow_pred", lambda c, d: generator_checks._call(
        generator_checks._model(c).to(d), c, "input.", None)),
    "taehv_decode": ("output.video", lambda c, d: taehv_checks.build(c).to(d).decode(c["input.latent"]) * 0.5 + 0.5),
    "vae_decode": ("output.video", lambda c, d: vae_checks.build(c).to(d).decode(c["input.latent"])),
}


@pytest.mark.parametrize("dtype", PRECISION_BOUNDS, ids=["bf16", "fp16"])
@pytest.mark.parametrize("name", HALF_PRECISION_CASES)
def test_half_precision_stays_within_the_documented_bound_of_the_float32_golden_output(name, dtype):
    path = golden_path(f"{name}.safetensors")
    if path is None:
        pytest.skip(f"golden case {name} not available (set INSPATIO_GOLDEN_DIR)")
    case = GoldenCase(path)
    key, run = HALF_PRECISION_CASES[name]
    with torch.no_grad():
        out = run(case, dtype)
    assert out.shape == case[key].shape and torch.isfinite(out).all()
    assert _relative_error(out, case[key]) < PRECISION_BOUNDS[dtype]
