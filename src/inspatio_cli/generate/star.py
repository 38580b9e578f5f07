"""The STAR chunk loop: autoregressive generation of 3 latent frames at a time (REFERENCE.md section 11).

For every chunk the sampler

1. runs a context pass at t=0 over the chunk's reference latents (the source video's latents of the same
   frames, RoPE time positions 0-2) and, after the first chunk, the previous chunk's output (positions 3-5),
   which refills the KV buffer; context frames carry zeros in the 20 condition channels;
2. denoises the chunk (positions 6-8) in 4 flow-matching steps t = 1000, 937.5, 833.33, 625, each one DiT call
   with the chunk's mask and warped latents as conditions, attending to the buffer; between steps the x0
   prediction is re-noised with fresh noise to the next step's sigma;
3. returns the last x0 prediction (no classifier-free guidance, no final step to t=0).

Only the KV buffer, the 36-channel context tensor, the text keys/values and the previous chunk are held, so
memory does not grow with the number of chunks. Latents are (B, F, C, h, w) with F = 3.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, NamedTuple, Protocol, Sequence

import torch

from ..errors import InputError
from ..models.dit import CausalWanDiT, compile_problem
from ..progress import Reporter
from .scheduler import FlowMatchScheduler

FRAMES_PER_CHUNK = 3
LATENT_CHANNELS = 16
MASK_CHANNELS = 4


class ChunkInput(NamedTuple):
    """Conditions of one chunk, each (B, 3, C, h, w): source latents of the same frames (C=16), latents of
    the warped video (C=16) and the folded validity mask (C=4, +-1 values averaged to the latent grid)."""

    reference: torch.Tensor
    warped: torch.Tensor
    mask: torch.Tensor


class NoiseSource(Protocol):
    """Where the sampler's Gaussian noise comes from, consumed in this order per chunk: ``initial`` once
    (the chunk's starting latent), then ``renoise`` after each step but the last."""

    def initial(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor: ...

    def renoise(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor: ...


class SeededNoise:
    """Default noise: ``torch.randn`` from one ``torch.Generator`` seeded with ``seed`` on the latents' device.

    A chunk's noise depends only on the seed and the chunks before it, not on the video's length.
    """

    def __init__(self, seed: int = 0):
        self.seed = seed
        self._generator: torch.Generator | None = None

    def initial(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        if self._generator is None:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        return torch.randn(shape, generator=self._generator, dtype=dtype, device=device)

    renoise = initial


class ReplayNoise:
    """Replays recorded draws in the official order: ``draws[0]`` is the initial noise of ALL frames
    (B, F, 16, h, w), sliced 3 frames per chunk; ``draws[1:]`` are the re-noise draws, 3 per chunk after steps
    0, 1 and 2, each reshaped to the requested shape (the official draws are (B*3, 16, h, w))."""

    def __init__(self, draws: Sequence[torch.Tensor]):
        self.all_initial = draws[0]
        self.renoise_draws = list(draws[1:])
        self._frame = 0
        self._next = 0

    def initial(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        frames = shape[1]
        out = self.all_initial[:, self._frame:self._frame + frames]
        if tuple(out.shape) != tuple(shape):
            raise InputError(f"recorded initial noise {tuple(self.all_initial.shape)} has no frames "
                             f"{self._frame}..{self._frame + frames - 1} of shape {tuple(shape)}")
        self._frame += frames
        return out.to(device=device, dtype=dtype)

    def renoise(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        if self._next >= len(self.renoise_draws):
            raise InputError(f"only {len(self.renoise_draws)} recorded re-noise draws")
        draw = self.renoise_draws[self._next]
        self._next += 1
        return draw.reshape(shape).to(device=device, dtype=dtype)


Trace = Callable[[str, torch.Tensor], None]


class StarSampler:
    """Generates a video chunk by chunk: call :meth:`step` with each :class:`ChunkInput` in order.

    model: the generator (its dtype and device are used for everything). text: prompt embeddings
    (B, <=text_len, text_dim). noise: a :class:`NoiseSource` (default :class:`SeededNoise` of ``seed``).
    steps: sampling timesteps (default the warped distilled list). Flags that keep the numbers:
    ``cache_text`` computes the text cross-attention keys/values once per video instead of every call;
    ``preallocate`` gives the KV buffer room for the chunk's own keys so no call concatenates. ``compile``
    (True, or a ``torch.compile`` backend name) runs the model's blocks compiled
    (:meth:`CausalWanDiT.compile_blocks`, in place: the model runs as its last sampler asked), or eagerly
    with a warning to ``reporter`` where compilation is not available; ``compiled`` says which backend runs.
    Compiled float32 results equal eager ones up to rounding (fused kernels sum in another order).
    ``trace(name, tensor)`` receives the context frames and each step's xt, timestep and x0 (names
    ``block{b}.context_frames``, ``block{b}.step{s}.xt`` ...).
    """

    def __init__(self, model: CausalWanDiT, text: torch.Tensor, *, noise: NoiseSource | None = None,
                 seed: int = 0, scheduler: FlowMatchScheduler = FlowMatchScheduler(),
                 steps: Sequence[float] | torch.Tensor | None = None, cache_text: bool = True,
                 preallocate: bool = True, compile: bool | str = False, trace: Trace | None = None,
                 reporter: Reporter | None = None):
        self.model = model
        backend = "inductor" if compile is True else (compile or None)
        problem = None if backend is None else compile_problem(model.device, backend)
        if problem is not None:
            (reporter or Reporter("silent")).warn(f"torch.compile is not usable here ({problem}); the "
                                                  "generator runs without it")
            backend = None
        model.compile_blocks(backend)
        self.compiled = backend
        self.scheduler = scheduler
        with torch.no_grad():
            self.text = model.text_kv(text) if cache_text else text
        self.noise = noise if noise is not None else SeededNoise(seed)
        self.steps = (scheduler.denoising_steps() if steps is None
                      else torch.as_tensor(steps, dtype=torch.float32).reshape(-1))
        self.preallocate = preallocate
        self.trace = trace
        self.index = 0
        self._cache = None
        self._context: torch.Tensor | None = None
        self._previous: torch.Tensor | None = None

    def _check(self, chunk: ChunkInput) -> tuple[int, int, int]:
        ref, warped, mask = chunk
        b, _, _, h, w = ref.shape if ref.ndim == 5 else (0, 0, 0, 0, 0)
        want = {"reference": (b, FRAMES_PER_CHUNK, LATENT_CHANNELS, h, w),
                "warped": (b, FRAMES_PER_CHUNK, LATENT_CHANNELS, h, w),
                "mask": (b, FRAMES_PER_CHUNK, MASK_CHANNELS, h, w)}
        for (name, shape), t in zip(want.items(), chunk):
            if tuple(t.shape) != shape or b == 0:
                raise InputError(f"chunk {self.index}: {name} latents must be (B, {FRAMES_PER_CHUNK}, "
                                 f"{shape[2]}, h, w) matching the reference, got {tuple(t.shape)}")
        if self._context is not None and (self._context.shape[0], *self._context.shape[3:]) != (b, h, w):
            raise InputError(f"chunk {self.index}: latent size {b}x{h}x{w} differs from the first chunk's")
        return b, h, w

    def _allocate(self, b: int, h: int, w: int) -> None:
        model = self.model
        rows = (3 if self.preallocate else 2) * FRAMES_PER_CHUNK * model.tokens_per_frame(h, w)
        self._cache = model.new_kv_buffer(b, rows)
        self._context = torch.zeros(b, 2 * FRAMES_PER_CHUNK, model.cfg.in_dim, h, w, dtype=model.dtype,
                                    device=model.device)

    def _emit(self, name: str, value: torch.Tensor) -> None:
        if self.trace is not None:
            self.trace(f"block{self.index}.{name}", value)

    @torch.no_grad()
    def step(self, chunk: ChunkInput) -> torch.Tensor:
        """Generate the next chunk; returns its latents (B, 3, 16, h, w) in the model's dtype."""
        model, sched, f = self.model, self.scheduler, FRAMES_PER_CHUNK
        b, h, w = self._check(chunk)
        ref, warped, mask = (t.to(device=model.device, dtype=model.dtype) for t in chunk)
        if self._cache is None:
            self._allocate(b, h, w)
        ctx = self._context
        ctx[:, :f, :LATENT_CHANNELS] = ref
        frames = f
        if self._previous is not None:
            ctx[:, f:, :LATENT_CHANNELS] = self._previous
            frames = 2 * f
        self._emit("context_frames", ctx[:, :frames])
        model(ctx[:, :frames], 0.0, self.text, cache=self._cache, write=True, time_offset=0)

        cond = torch.cat([mask, warped], dim=2)
        shape = (b, f, LATENT_CHANNELS, h, w)
        xt = self.noise.initial(shape, model.dtype, model.device)
        cached = frames * model.tokens_per_frame(h, w)
        last = len(self.steps) - 1
        for s, t in enumerate(self.steps.tolist()):
            timestep = torch.full((b, f), t, dtype=torch.float32)
            flow = model(xt, timestep, self.text, cond=cond, cache=self._cache, cached=cached,
                             time_offset=2 * f)
            x0 = sched.x0_from_flow(flow, xt, t)
            self._emit(f"step{s}.xt", xt)
            self._emit(f"step{s}.timestep", timestep)
            self._emit(f"step{s}.x0", x0)
            if s < last:
                xt = sched.add_noise(x0, self.noise.renoise(shape, model.dtype, model.device), self.steps[s + 1])
        self._previous = x0
        self.index += 1
        return x0

    @property
    def state_bytes(self) -> int:
        """Bytes of everything the sampler keeps between chunks (KV buffer, context, previous chunk)."""
        held = [t for t in (self._context, self._previous) if t is not None]
        cache = self._cache.nbytes if self._cache is not None else 0
        return cache + sum(t.numel() * t.element_size() for t in held)


def generate(model: CausalWanDiT, chunks: Iterable[ChunkInput], text: torch.Tensor,
             **options) -> Iterator[torch.Tensor]:
    """Stream a video's output latents: yields each chunk's (B, 3, 16, h, w) latents as soon as it is done.

    ``chunks`` may be a lazy iterator (encode as you go); ``options`` are :class:`StarSampler`'s.
    """
    sampler = StarSampler(model, text, **options)
    for chunk in chunks:
        yield sampler.step(chunk)
