"""The STAR chunk loop on a tiny random model: streaming, constant memory, noise injection and order,
determinism, flags that must not change the numbers, input checks, and the KV window and RoPE time offsets
against a cache-free computation (the ``generator_pipeline`` golden case, in ``INSPATIO_GOLDEN_DIR`` only,
checks the official numbers)."""

from __future__ import annotations

import gc
import warnings

import pytest
import torch

from inspatio_cli.errors import InputError
from inspatio_cli.generate import ChunkInput, ReplayNoise, SeededNoise, StarSampler, generate
from inspatio_cli.models.dit import DiTConfig, random_generator

TINY = DiTConfig(dim=64, ffn_dim=96, freq_dim=32, num_heads=2, num_layers=2, text_dim=24, text_len=8)
H, W = 4, 6


@pytest.fixture(scope="module")
def model():
    return random_generator(TINY, seed=3, std=0.05)


def _text() -> torch.Tensor:
    return torch.randn(1, 5, TINY.text_dim, generator=torch.Generator().manual_seed(9))


def _chunks(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        yield ChunkInput(torch.randn(1, 3, 16, H, W, generator=g), torch.randn(1, 3, 16, H, W, generator=g),
                         torch.randn(1, 3, 4, H, W, generator=g).sign())


def _live_tensors() -> tuple[int, int]:
    """Count and bytes of all tensors alive in the process."""
    gc.collect()
    with warnings.catch_warnings():  # isinstance() on torch's deprecated lazy attributes warns
        warnings.simplefilter("ignore", FutureWarning)
        tensors = [o for o in gc.get_objects() if isinstance(o, torch.Tensor)]
    return len(tensors), sum(t.numel() * t.element_size() for t in tensors if not t.is_meta)


def test_memory_is_constant_in_the_number_of_chunks(model) -> None:
    sampler = StarSampler(model, _text(), seed=0)
    held = []
    for out in generate(model, _chunks(6), _text(), seed=0):
        del out
        held.append(_live_tensors())
    assert held[1] == held[5], held
    for i, chunk in enumerate(_chunks(6)):
        sampler.step(chunk)
        if i == 0:
            first = sampler.state_bytes
    assert sampler.state_bytes == first > 0


def test_streaming_consumes_one_chunk_at_a_time(model) -> None:
    taken = []

    def source():
        for i, chunk in enumerate(_chunks(4)):
            taken.append(i)
            yield chunk

    stream = generate(model, source(), _text())
    first = next(stream)
    assert taken == [0] and first.shape == (1, 3, 16, H, W) and torch.isfinite(first).all()
    assert len(list(stream)) == 3 and taken == [0, 1, 2, 3]


class Recorder(SeededNoise):
    """Seeded noise that records its draws in the official layout (all initial noise first)."""

    def __init__(self, seed: int):
        super().__init__(seed)
        self.initials, self.renoises = [], []

    def initial(self, shape, dtype, device):
        self.initials.append(super().initial(shape, dtype, device))
        return self.initials[-1]

    def renoise(self, shape, dtype, device):
        self.renoises.append(super().renoise(shape, dtype, device).reshape(-1, *shape[2:]))
        return self.renoises[-1].reshape(shape)


def test_noise_order_replay_determinism_and_flags(model) -> None:
    text = _text()
    rec = Recorder(seed=5)
    reference = torch.cat(list(generate(model, _chunks(3), text, noise=rec)), dim=1)
    assert len(rec.initials) == 3 and len(rec.renoises) == 9
    assert rec.renoises[0].shape == (3, 16, H, W)
    replay = ReplayNoise([torch.cat(rec.initials, dim=1), *rec.renoises])
    assert torch.equal(reference, torch.cat(list(generate(model, _chunks(3), text, noise=replay)), dim=1))
    assert torch.equal(reference, torch.cat(list(generate(model, _chunks(3), text, seed=5)), dim=1))
    assert not torch.allclose(reference, torch.cat(list(generate(model, _chunks(3), text, seed=6)), dim=1))
    plain = torch.cat(list(generate(model, _chunks(3), text, seed=5, cache_text=False, preallocate=False)), dim=1)
    torch.testing.assert_close(plain, reference, atol=1e-6, rtol=1e-6)
    # a chunk depends on its predecessors through the KV buffer: same chunk, other history, other output
    later = list(generate(model, _chunks(3, seed=1), text, noise=ReplayNoise([torch.cat(rec.initials, 1),
                                                                               *rec.renoises])))
    assert not torch.allclose(later[2], reference[:, 6:9])
    with pytest.raises(InputError, match="re-noise draws"):
        list(generate(model, _chunks(4), text, noise=ReplayNoise([torch.cat(rec.initials * 2, 1), *rec.renoises])))


def test_bf16_chunk(model) -> None:
    out = next(generate(model.to(torch.bfloat16), _chunks(1), _text()))
    model.float()
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_bad_chunks_are_refused(model) -> None:
    good = next(_chunks(1))
    sampler = StarSampler(model, _text())
    with pytest.raises(InputError, match="mask latents"):
        sampler.step(ChunkInput(good.reference, good.warped, good.mask[:, :, :3]))
    with pytest.raises(InputError, match="reference latents"):
        sampler.step(ChunkInput(good.reference[:, :2], good.warped, good.mask))
    sampler.step(good)
    with pytest.raises(InputError, match="differs from the first chunk"):
        sampler.step(ChunkInput(*(t[..., :2, :] for t in good)))


ONE_LAYER = DiTConfig(dim=64, ffn_dim=96, freq_dim=32, num_heads=2, num_layers=1, text_dim=24, text_len=8)


@pytest.fixture(scope="module")
def timeless_model():
    """A one-layer model whose blocks ignore the timestep (time projection zeroed; only the head sees t).

    Its keys and values are then functions of each token alone, so a denoising call that attends to the KV
    buffer computes, for its own tokens, what one cache-free call over the context frames followed by the
    chunk computes: the check below needs no KV buffer and no time offset of its own."""
    model = random_generator(ONE_LAYER, seed=4, std=0.05)
    for p in model.time_projection.parameters():
        p.data.zero_()
    return model


def test_kv_window_and_rope_time_offsets(timeless_model) -> None:
    """The buffer holds the chunk's reference latents (RoPE time 0-2) and the previous chunk's output
    (3-5), never an older chunk; the chunk being denoised sits at time 6-8 (REFERENCE.md section 11).

    From the second chunk on, every step's x0 must equal a cache-free call on the 9 frames [reference,
    previous output, noisy chunk] at times 0-8; the first chunk (times 0-2, then 6-8: no previous output)
    is checked against a buffer the test fills itself."""
    model, text = timeless_model, _text()
    trace: dict[str, torch.Tensor] = {}
    chunks = list(_chunks(3, seed=2))
    sampler = StarSampler(model, text, seed=7, trace=lambda name, t: trace.__setitem__(name, t.clone()))
    outs = [sampler.step(chunk) for chunk in chunks]
    tokens = model.tokens_per_frame(H, W)
    for b, chunk in enumerate(chunks):
        latents = [chunk.reference] + ([outs[b - 1]] if b else [])
        context = torch.cat([torch.cat(latents, 1), torch.zeros(1, 3 * len(latents), 20, H, W)], 2)
        assert torch.equal(trace[f"block{b}.context_frames"], context), f"chunk {b}: wrong context frames"
        cond = torch.cat([chunk.mask, chunk.warped], 2)
        if b == 0:
            cache = model.new_kv_buffer(1, 3 * tokens)
            model(context, 0.0, text, cache=cache, write=True)
        for s, t in enumerate(sampler.steps.tolist()):
            xt = trace[f"block{b}.step{s}.xt"]
            if b == 0:
                flow = model(xt, t, text, cond=cond, cache=cache, cached=3 * tokens, time_offset=6)
            else:
                flow = model(torch.cat([context, torch.cat([xt, cond], 2)], 1), t, text)[:, 6:]
            x0 = sampler.scheduler.x0_from_flow(flow, xt, t)
            torch.testing.assert_close(trace[f"block{b}.step{s}.x0"], x0, atol=1e-5, rtol=1e-5,
                                       msg=lambda m, b=b, s=s: f"chunk {b} step {s}: {m}")
        assert torch.equal(outs[b], trace[f"block{b}.step{len(sampler.steps) - 1}.x0"])
