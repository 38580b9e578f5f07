"""The STAR chunk loop on a tiny random model: streaming, constant memory, noise injection and order,
determinism, flags that must not change the numbers, and input checks (the golden pipeline case checks
the official numbers)."""

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
