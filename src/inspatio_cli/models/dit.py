"""The causal Wan2.1 DiT of InSpatio-World (1.3B): the model that turns noise plus geometric conditions into
video latents, one chunk of 3 latent frames at a time.

Faithful to the official ``CausalWanModel`` (REFERENCE.md sections 10, 11, 14, 15): parameter names equal the
released checkpoint keys without their ``model.`` prefix, 36 input channels ``[latent 16 | mask 4 | warped
latent 16]``, one timestep per call embedded with a float64 sinusoid, 3-axis RoPE (time, row, column) in
float64 with a time offset, q/k RMSNorm in fp32, un-masked cross-attention to all text rows, modulated head and
unpatchify. Any latent size works (the official code is hard-wired to 60x104).

Speed (GPU): :meth:`CausalWanDiT.compile_blocks` compiles the transformer block once with
``torch.compile`` (static shapes) and runs it for every layer, so compile time does not grow with depth;
on CUDA the attention kernels are picked explicitly (flash-attention 3/2 when installed, else the SDPA
kernels in :data:`SDPA_BACKENDS` order).

The causal part is a KV buffer (:class:`KVBuffer`) shared by two kinds of calls:

* context pass (``write=True``): the tokens attend only to themselves and every layer stores its RoPE-rotated
  keys and its values in buffer rows ``[0, L)``;
* denoising pass (``cached=n``): the tokens attend to buffer rows ``[0, n)`` plus their own keys/values, which
  are never kept for a later call.

Latent tensors use the official wrapper layout ``(B, F, C, H, W)``; tokens are ordered (frame, row, column).
"""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..errors import InputError, WeightsError
from ..progress import Reporter
from ..weights.io import load_strict, read_state_dict
from .layers import RMSNorm

try:
    from flash_attn_interface import flash_attn_func as _flash3
except ImportError:
    _flash3 = None
try:
    from flash_attn import flash_attn_func as _flash2
except ImportError:
    _flash2 = None

CHECKPOINT_PREFIX = "model."
BASE_FILTER = ("img_emb.", "cross_attn.k_img", "cross_attn.v_img", "cross_attn.norm_k_img", "patch_embedding")
WAN_HEAD_DIM = 128
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
"""Torch dtypes by the names of :data:`inspatio_cli.choices.DTYPE_NAMES`."""
SDPA_BACKENDS = (SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                 SDPBackend.MATH)
"""CUDA kernels of ``scaled_dot_product_attention``, in the order they are tried (the first that supports
the call runs); set :attr:`CausalWanDiT.sdpa_backends` to measure another order
(``benchmarks/bench_generator.py --sdpa``)."""


@dataclass(frozen=True)
class DiTConfig:
    """Dimensions of the causal Wan DiT; the defaults are the released InSpatio-World-1.3B model."""

    dim: int = 1536
    ffn_dim: int = 8960
    freq_dim: int = 256
    num_heads: int = 12
    num_layers: int = 30
    in_dim: int = 36
    out_dim: int = 16
    text_dim: int = 4096
    text_len: int = 512
    patch_size: tuple[int, int, int] = (1, 2, 2)
    eps: float = 1e-6
    rope_theta: float = 10000.0

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    def __post_init__(self) -> None:
        object.__setattr__(self, "patch_size", tuple(self.patch_size))
        if self.dim % self.num_heads or self.head_dim % 2:
            raise ValueError(f"dim {self.dim} must split into {self.num_heads} heads of even size")


# ----------------------------------------------------------------------------------------------------------
# Building blocks


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Timestep features ``[cos(t w_k) | sin(t w_k)]``, ``w_k = 10000^(-k/(dim/2))``: (N,) -> (N, dim) float64.

    Computed in float64 because t is a float (937.5, 833.33...) and the features feed every modulation.
    """
    half = dim // 2
    t = t.to(torch.float64)
    angles = torch.outer(t, torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=t.device) / half))
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


def rope_table(frames: int, rows: int, cols: int, head_dim: int, time_offset: int, theta: float,
               device: torch.device) -> torch.Tensor:
    """Rotations for tokens (f, h, w), row-major: (frames*rows*cols, head_dim/2, 2) float64 ``[cos, sin]``.

    The head's channel pairs (2j, 2j+1) are split into a time group (positions ``time_offset + f``) and equal
    row and column groups (positions h and w), each with angles ``pos * theta^(-2j/P)`` for its size P.
    """
    pairs = head_dim // 2
    split = (pairs - 2 * (pairs // 3), pairs // 3, pairs // 3)
    positions = (torch.arange(frames, device=device) + time_offset, torch.arange(rows, device=device),
                 torch.arange(cols, device=device))
    parts = []
    for axis, (n, pos) in enumerate(zip(split, positions)):
        inv = 1.0 / theta ** (torch.arange(n, dtype=torch.float64, device=device) * 2 / (2 * n))
        angles = torch.outer(pos.to(torch.float64), inv)
        view = [1, 1, 1, n]
        view[axis] = -1
        parts.append(angles.view(view).expand(frames, rows, cols, n))
    angles = torch.cat(parts, dim=-1).reshape(frames * rows * cols, pairs)
    return torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)


def apply_rope(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Rotate each channel pair (2j, 2j+1) of x (B, L, heads, head_dim), read as the complex number
    ``x[2j] + i x[2j+1]``, by ``table`` (L, head_dim/2, 2); float64 arithmetic (the official complex128
    product written out in real numbers, which torch.compile can fuse), result in x's dtype."""
    b, n, h, d = x.shape
    pair = x.to(torch.float64).reshape(b, n, h, d // 2, 2)
    re, im = pair[..., 0], pair[..., 1]
    cos, sin = table[None, :, None, :, 0], table[None, :, None, :, 1]
    return torch.stack([re * cos - im * sin, re * sin + im * cos], dim=-1).flatten(3).to(x.dtype)


def _flash_function(q: torch.Tensor):
    """The flash-attention function usable for q, or None (not installed, CPU, fp32, or unsupported GPU)."""
    if not q.is_cuda or q.dtype not in (torch.float16, torch.bfloat16) or q.shape[-1] > 256:
        return None
    major = torch.cuda.get_device_capability(q.device)[0]
    if _flash3 is not None and major == 9:
        return _flash3
    if _flash2 is not None and major >= 8:
        return _flash2
    return None


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Unmasked softmax attention with scale 1/sqrt(head_dim); q (B, H, Lq, D), k and v (B, H, Lk, D).

    Uses flash-attention (FA3 on Hopper, FA2 on Ampere or newer) when installed and usable, otherwise
    ``torch.nn.functional.scaled_dot_product_attention``; the math is the same, the last bits may differ.
    """
    flash = _flash_function(q)
    if flash is None:
        return F.scaled_dot_product_attention(q, k, v)
    out = flash(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    if isinstance(out, tuple):
        out = out[0]
    return out.transpose(1, 2)


class KVBuffer:
    """Per-layer keys and values of the context tokens, shape (B, heads, rows, head_dim) each.

    Rows ``[0, n_ctx)`` hold the context pass's RoPE-rotated keys and raw values. With more rows than the
    context needs, a denoising call writes its own keys/values right after the ``cached`` rows and attends
    to that prefix, which spares concatenating the cache with its own keys in every layer; rows past
    ``cached`` are scratch and never read by a later call.
    """

    def __init__(self, num_layers: int, batch: int, rows: int, heads: int, head_dim: int, *,
                 dtype: torch.dtype, device: torch.device | str):
        shape = (batch, heads, rows, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]

    @property
    def rows(self) -> int:
        return self.k[0].shape[2]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.k + self.v)


@dataclass
class TextKV:
    """Cross-attention keys and values of the text, per layer (B, heads, text_len, head_dim).

    They depend only on the prompt, so a video computes them once (:meth:`CausalWanDiT.text_kv`) instead of
    in every call; the numbers are the same.
    """

    k: list[torch.Tensor]
    v: list[torch.Tensor]


class Attention(nn.Module):
    """Projections of multi-head attention with q/k RMSNorm over the full dim (shared by both kinds)."""

    def __init__(self, dim: int, num_heads: int, eps: float):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = RMSNorm(dim, eps)
        self.norm_k = RMSNorm(dim, eps)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, -1))

    def key_value(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of ``y`` (B, L, dim) without RoPE, each (B, heads, L, head_dim)."""
        return (self._heads(self.norm_k(self.k(y))).transpose(1, 2),
                self._heads(self.v(y)).transpose(1, 2))

    def _merge(self, out: torch.Tensor) -> torch.Tensor:
        return self.o(out.transpose(1, 2).flatten(2))


class CrossAttention(Attention):
    """Attention of the image tokens to the text (keys/values from :meth:`Attention.key_value`)."""

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """x (B, L, dim), text k/v (B, heads, text_len, head_dim) -> (B, L, dim)."""
        q = self._heads(self.norm_q(self.q(x))).transpose(1, 2)
        return self._merge(attention(q, k, v))


class SelfAttention(Attention):
    """Attention among the image tokens, with RoPE and the KV buffer."""

    def forward(self, x: torch.Tensor, rope: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor] | None,
                write: bool, cached: int) -> torch.Tensor:
        """Self-attention of x (B, L, dim) with RoPE ``rope`` (L, head_dim/2, 2) and this layer's rows of the
        KV buffer ``kv`` (keys, values), following the buffer rules (see :class:`KVBuffer`); (B, L, dim)."""
        n = x.shape[1]
        q = apply_rope(self._heads(self.norm_q(self.q(x))), rope).transpose(1, 2)
        k = apply_rope(self._heads(self.norm_k(self.k(x))), rope).transpose(1, 2)
        v = self._heads(self.v(x)).transpose(1, 2)
        if kv is not None and (write or cached > 0):
            ck, cv = kv
            start = 0 if write else cached
            if write or ck.shape[2] >= cached + n:
                ck[:, :, start:start + n] = k
                cv[:, :, start:start + n] = v
                k, v = ck[:, :, :start + n], cv[:, :, :start + n]
            else:
                k = torch.cat([ck[:, :, :cached], k], dim=2)
                v = torch.cat([cv[:, :, :cached], v], dim=2)
        return self._merge(attention(q, k, v))


class Block(nn.Module):
    """One transformer block: modulated self-attention, cross-attention to the text, modulated FFN."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.eps = cfg.eps
        self.modulation = nn.Parameter(torch.randn(1, 6, cfg.dim) / cfg.dim ** 0.5)
        self.self_attn = SelfAttention(cfg.dim, cfg.num_heads, cfg.eps)
        self.norm3 = nn.LayerNorm(cfg.dim, eps=cfg.eps)
        self.cross_attn = CrossAttention(cfg.dim, cfg.num_heads, cfg.eps)
        self.ffn = nn.Sequential(nn.Linear(cfg.dim, cfg.ffn_dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(cfg.ffn_dim, cfg.dim))

    def forward(self, x: torch.Tensor, e6: torch.Tensor, rope: torch.Tensor, text_k: torch.Tensor,
                text_v: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor] | None, write: bool,
                cached: int) -> torch.Tensor:
        """x (B, L, dim); e6 (B, 6, dim) time modulation; text_k/v (B, heads, text_len, head_dim); kv: this
        layer's KV buffer tensors (B, heads, rows, head_dim) or None. Every block takes the same kinds of
        arguments (no layer index), so one compiled block serves all of them."""
        shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = (self.modulation + e6).chunk(6, dim=1)
        dim = (x.shape[-1],)
        y = F.layer_norm(x, dim, eps=self.eps) * (1 + scale_a) + shift_a
        x = x + self.self_attn(y, rope, kv, write, cached) * gate_a
        x = x + self.cross_attn(self.norm3(x), text_k, text_v)
        y = F.layer_norm(x, dim, eps=self.eps) * (1 + scale_f) + shift_f
        return x + self.ffn(y) * gate_f


class Head(nn.Module):
    """Output head: LayerNorm modulated by the time embedding, then a linear map to one patch of outputs."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.eps = cfg.eps
        self.modulation = nn.Parameter(torch.randn(1, 2, cfg.dim) / cfg.dim ** 0.5)
        self.head = nn.Linear(cfg.dim, cfg.out_dim * math.prod(cfg.patch_size))

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """x (B, L, dim), e (B, dim) -> (B, L, out_dim * prod(patch))."""
        shift, scale = (self.modulation + e[:, None]).chunk(2, dim=1)
        return self.head(F.layer_norm(x, (x.shape[-1],), eps=self.eps) * (1 + scale) + shift)


# ----------------------------------------------------------------------------------------------------------
# The model


class CausalWanDiT(nn.Module):
    """The InSpatio-World generator: a causal Wan2.1 text-to-video DiT with 36 input channels."""

    def __init__(self, cfg: DiTConfig = DiTConfig()):
        super().__init__()
        self.cfg = cfg
        self.patch_embedding = nn.Conv3d(cfg.in_dim, cfg.dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.text_embedding = nn.Sequential(nn.Linear(cfg.text_dim, cfg.dim), nn.GELU(approximate="tanh"),
                                            nn.Linear(cfg.dim, cfg.dim))
        self.time_embedding = nn.Sequential(nn.Linear(cfg.freq_dim, cfg.dim), nn.SiLU(), nn.Linear(cfg.dim, cfg.dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(cfg.dim, 6 * cfg.dim))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.head = Head(cfg)
        self.sdpa_backends: tuple[SDPBackend, ...] = SDPA_BACKENDS
        self._rope: dict[tuple, torch.Tensor] = {}
        self._compiled: list | None = None
        self._compiled_with: str | None = None

    def compile_blocks(self, backend: str | None = "inductor") -> None:
        """Run the transformer blocks through ``torch.compile(block, backend=backend, dynamic=False)``
        (``None``: eagerly again). The weights are untouched and the state dict is the same.

        Every block has the same code and arguments (its layer's KV rows are passed in, no layer index),
        so one compiled graph serves all layers: compile time does not grow with depth (whole-model
        compilation traces all 30 blocks). Static shapes: each distinct call (context pass of 3 or 6
        frames, denoising with 3 or 6 cached frames) at each latent size compiles once; torch's limit of
        8 graphs per function covers two resolutions per process before it falls back to eager.
        Compilation happens lazily, in the first calls.
        """
        if backend == self._compiled_with:
            return
        self._compiled = None if backend is None else [torch.compile(b, backend=backend, dynamic=False)
                                                        for b in self.blocks]
        self._compiled_with = backend

    @property
    def compiled(self) -> str | None:
        """The ``torch.compile`` backend the blocks run with, or None (eager)."""
        return self._compiled_with

    def _attention_kernels(self) -> contextlib.AbstractContextManager:
        """On CUDA, the SDPA kernels allowed, in :attr:`sdpa_backends` order; nothing elsewhere."""
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        return sdpa_kernel(list(self.sdpa_backends), set_priority=True)

    @property
    def dtype(self) -> torch.dtype:
        return self.patch_embedding.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.patch_embedding.weight.device

    def new_kv_buffer(self, batch: int, tokens: int) -> KVBuffer:
        """A zeroed KV buffer with ``tokens`` rows per layer, in the model's dtype and device."""
        cfg = self.cfg
        return KVBuffer(cfg.num_layers, batch, tokens, cfg.num_heads, cfg.head_dim, dtype=self.dtype,
                        device=self.device)

    def tokens_per_frame(self, height: int, width: int) -> int:
        """DiT tokens of one latent frame of size height x width (1560 for 60x104)."""
        _, ph, pw = self.cfg.patch_size
        return (height // ph) * (width // pw)

    def text_kv(self, text: torch.Tensor) -> TextKV:
        """Embed the text (B, <=text_len, text_dim) and compute every layer's cross-attention keys/values.

        The text is zero-padded to ``text_len`` rows; no row is masked (padding rows embed to a constant
        vector through the biases, as in the official model).
        """
        cfg = self.cfg
        if text.ndim != 3 or text.shape[-1] != cfg.text_dim or text.shape[1] > cfg.text_len:
            raise InputError(f"text embeddings must be (B, <= {cfg.text_len}, {cfg.text_dim}), "
                             f"got {tuple(text.shape)}")
        text = F.pad(text.to(device=self.device, dtype=self.dtype), (0, 0, 0, cfg.text_len - text.shape[1]))
        ctx = self.text_embedding(text)
        keys, values = zip(*(block.cross_attn.key_value(ctx) for block in self.blocks))
        return TextKV(list(keys), list(values))

    def _rope_for(self, frames: int, rows: int, cols: int, offset: int) -> torch.Tensor:
        key = (frames, rows, cols, offset, self.device)
        if key not in self._rope:
            if len(self._rope) > 16:
                self._rope.clear()
            self._rope[key] = rope_table(frames, rows, cols, self.cfg.head_dim, offset, self.cfg.rope_theta,
                                         self.device)
        return self._rope[key]

    def forward(self, x: torch.Tensor, timestep: torch.Tensor | float, text: torch.Tensor | TextKV, *,
                cond: torch.Tensor | None = None, cache: KVBuffer | None = None, write: bool = False,
                cached: int = 0, time_offset: int = 0) -> torch.Tensor:
        """Predict the flow ``noise - x0`` of latents x.

        x: (B, F, 16, H, W) noisy latents with ``cond`` (B, F, 20, H, W) = [mask 4 | warped latent 16], or
        (B, F, 36, H, W) already assembled (context frames; ``cond`` must be None). timestep: a float, (B,) or
        (B, F) (only column 0 is used: one timestep per call). text: raw embeddings (B, <=text_len, text_dim)
        or a precomputed :class:`TextKV`. cache: the KV buffer; ``write=True`` is the context pass (attend to
        own tokens, store keys/values in rows [0, L)); ``cached=n`` attends to rows [0, n) plus own tokens.
        time_offset: RoPE time position of frame 0 (0 for context, 6 for the block being denoised).
        Returns (B, F, out_dim, H, W) in the model's dtype.
        """
        cfg = self.cfg
        x = x.to(device=self.device, dtype=self.dtype)
        if cond is not None:
            x = torch.cat([x, cond.to(device=self.device, dtype=self.dtype)], dim=2)
        b, frames, channels, height, width = x.shape
        if channels != cfg.in_dim:
            raise InputError(f"the DiT takes {cfg.in_dim} input channels, got {channels}")
        pt, ph, pw = cfg.patch_size
        if frames % pt or height % ph or width % pw:
            raise InputError(f"latent size {frames}x{height}x{width} is not a multiple of the patch {cfg.patch_size}")
        grid = (frames // pt, height // ph, width // pw)

        t = torch.as_tensor(timestep, device=self.device)
        t = t.reshape(b, -1)[:, 0] if t.ndim else t.expand(b)
        e = self.time_embedding(sinusoidal_embedding(t, cfg.freq_dim).to(self.dtype))
        e6 = self.time_projection(e).unflatten(1, (6, cfg.dim))
        text_kv = text if isinstance(text, TextKV) else self.text_kv(text)

        h = self.patch_embedding(x.transpose(1, 2)).flatten(2).transpose(1, 2)
        rope = self._rope_for(*grid, time_offset)
        with self._attention_kernels():
            for layer, block in enumerate(self._compiled or self.blocks):
                kv = None if cache is None else (cache.k[layer], cache.v[layer])
                h = block(h, e6, rope, text_kv.k[layer], text_kv.v[layer], kv, write, cached)
        out = self.head(h, e)
        out = out.view(b, *grid, pt, ph, pw, cfg.out_dim)
        return out.permute(0, 1, 4, 7, 2, 5, 3, 6).reshape(b, frames, cfg.out_dim, height, width)


_COMPILE_PROBES: dict[tuple[str, str], str | None] = {}


def compile_problem(device: torch.device | str, backend: str = "inductor") -> str | None:
    """Why ``torch.compile`` with ``backend`` cannot run on ``device`` here, or None when it can.

    Compiles and runs a one-line function once per device type and backend (a few seconds): this catches
    what usually fails, a missing C++ compiler on the CPU or a missing Triton on CUDA, before the model's
    first call would raise it.
    """
    device = torch.device(device)
    key = (device.type, backend)
    if key not in _COMPILE_PROBES:
        try:
            probe = torch.compile(lambda x: torch.relu(x) * 2 + 1, backend=backend, dynamic=False)
            probe(torch.ones(8, device=device))
            _COMPILE_PROBES[key] = None
        except Exception as exc:  # any failure means: run eagerly
            lines = str(exc).strip().splitlines()
            _COMPILE_PROBES[key] = f"{type(exc).__name__}: {lines[0] if lines else 'no message'}"
    return _COMPILE_PROBES[key]


# ----------------------------------------------------------------------------------------------------------
# Loading


def _strip_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``model.`` prefix of the released file (keys without it are kept as they are)."""
    n = len(CHECKPOINT_PREFIX)
    return {k[n:] if k.startswith(CHECKPOINT_PREFIX) else k: v for k, v in state.items()}


def config_from_state(shapes: Mapping[str, tuple[int, ...]]) -> DiTConfig:
    """Infer the DiT dimensions from checkpoint key shapes (``model.`` already removed).

    Two numbers are in no shape: the head count is ``dim // 128`` (every Wan model has heads of 128 dims)
    and the text length stays 512 (the umT5 output length). Dimensions whose keys are absent keep the 1.3B
    values, so the strict load reports those keys as missing. Pass a config to load other layouts.
    """
    d = DiTConfig()

    def size(key: str, axis: int, default: int) -> int:
        return shapes[key][axis] if key in shapes and len(shapes[key]) > axis else default

    dim = size("patch_embedding.weight", 0, size("text_embedding.2.weight", 0, d.dim))
    patch = tuple(shapes["patch_embedding.weight"][2:]) if "patch_embedding.weight" in shapes else d.patch_size
    layers = [int(m.group(1)) for k in shapes if (m := re.match(r"blocks\.(\d+)\.", k))]
    return DiTConfig(
        dim=dim,
        ffn_dim=size("blocks.0.ffn.0.weight", 0, d.ffn_dim),
        freq_dim=size("time_embedding.0.weight", 1, d.freq_dim),
        num_heads=max(dim // WAN_HEAD_DIM, 1),
        num_layers=max(layers) + 1 if layers else d.num_layers,
        in_dim=size("patch_embedding.weight", 1, d.in_dim),
        out_dim=size("head.head.weight", 0, d.out_dim * math.prod(patch)) // math.prod(patch),
        text_dim=size("text_embedding.0.weight", 1, d.text_dim),
        patch_size=patch,
    )


def _check_official(cfg: DiTConfig, path: str | Path | None) -> None:
    """A checkpoint of the 1.3B width must have every 1.3B dimension (catches lost blocks or a wrong file)."""
    ref = DiTConfig()
    if cfg.dim != ref.dim:
        return
    wrong = [f"{f.name}={getattr(cfg, f.name)} (expected {getattr(ref, f.name)})" for f in fields(ref)
             if getattr(cfg, f.name) != getattr(ref, f.name)]
    if wrong:
        raise WeightsError(f"looks like the 1.3B generator (dim {ref.dim}) but has {', '.join(wrong)}", path)


def _read_base(base: str | Path) -> tuple[dict[str, torch.Tensor], Path]:
    """The Wan2.1 base DiT: a ``*diffusion*.safetensors`` file, or a folder whose such files are merged in
    name order (later files win); keys matching :data:`BASE_FILTER` are dropped (REFERENCE.md 14)."""
    base = Path(base)
    files = sorted(base.glob("*diffusion*.safetensors")) if base.is_dir() else [base]
    if not files:
        raise WeightsError("no '*diffusion*.safetensors' file in the Wan2.1 base folder", base)
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(read_state_dict(f))
    return {k: v for k, v in state.items() if not any(s in k for s in BASE_FILTER)}, base


def build_generator(state: Mapping[str, torch.Tensor], *, path: str | Path | None = None,
                    config: DiTConfig | None = None, base_state: Mapping[str, torch.Tensor] | None = None,
                    base_path: str | Path | None = None, reporter: Reporter | None = None) -> CausalWanDiT:
    """Build the DiT on the meta device and fill it strictly with ``state`` (keys with or without ``model.``).

    ``config`` defaults to the dimensions inferred from the shapes (of both states). Keys the state lacks are taken from
    ``base_state`` (the filtered Wan2.1 base) when given, and the reporter says how many; anything still
    missing, unexpected or mis-shaped raises :class:`WeightsError` naming ``path`` and the keys. The tensors
    are assigned as they are (stored dtype and device): nothing is materialised twice.
    """
    reporter = reporter or Reporter("silent")
    what = "InSpatio-World generator"
    if any(k.startswith(CHECKPOINT_PREFIX) for k in state):
        what += f" (keys named without their '{CHECKPOINT_PREFIX}' prefix)"
    state = _strip_prefix(state)
    shapes = {k: tuple(v.shape) for k, v in {**(base_state or {}), **state}.items()}
    if config is None:
        try:
            config = config_from_state(shapes)
        except (ValueError, ZeroDivisionError) as exc:  # shapes no DiT has (a dim no head count divides)
            raise WeightsError(f"not an {what}: its tensor shapes give no valid model ({exc})", path) from None
        _check_official(config, path)
    with torch.device("meta"):
        model = CausalWanDiT(config)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    if missing and base_state is not None:
        filled = [k for k in missing if k in base_state]
        wrong = [f"{k} {tuple(base_state[k].shape)} (expected {tuple(expected[k].shape)})" for k in filled
                 if base_state[k].shape != expected[k].shape]
        if wrong:
            raise WeightsError(f"Wan2.1 base keys do not match the generator: {', '.join(wrong[:5])}", base_path)
        state = {**state, **{k: base_state[k] for k in filled}}
        if filled:
            reporter.warn(f"{path}: {len(filled)} generator keys missing, taken from the Wan2.1 base "
                          f"{base_path} (e.g. {', '.join(filled[:3])})")
    load_strict(model, state, path, what=what, assign=True)
    return model.eval().requires_grad_(False)


def load_generator(path: str | Path, *, base: str | Path | None = None, config: DiTConfig | None = None,
                   dtype: torch.dtype | str | None = None, device: torch.device | str = "cpu",
                   reporter: Reporter | None = None) -> CausalWanDiT:
    """Load the InSpatio-World generator from a local ``.safetensors`` file (released keys ``model.*``).

    The config is inferred from the shapes and, at the 1.3B width, cross-checked against the official
    numbers. With ``base`` (the Wan2.1-T2V-1.3B folder or its ``diffusion_pytorch_model*.safetensors``),
    keys absent from the file are filled from the base after dropping ``patch_embedding`` and image-branch
    keys, the way the official loader initialises the model; the fill is reported as a warning. Weights
    stay in their stored dtype unless ``dtype`` (``bf16|fp16|fp32`` or a torch dtype) is given.
    Raises :class:`WeightsError` naming the file and the first missing/unexpected/mis-shaped keys.
    """
    state = read_state_dict(path)
    base_state, base_path = _read_base(base) if base is not None else (None, None)
    model = build_generator(state, path=path, config=config, base_state=base_state, base_path=base_path,
                            reporter=reporter)
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise InputError(f"unknown dtype {dtype!r} (choose from {', '.join(DTYPES)})")
        dtype = DTYPES[dtype]
    return model.to(device=device, dtype=dtype)


def random_generator(config: DiTConfig = DiTConfig(), *, device: torch.device | str = "cpu",
                     dtype: torch.dtype = torch.float32, seed: int = 0, std: float = 0.02) -> CausalWanDiT:
    """A DiT with random weights (normal(0, std) matrices and modulations, zero biases, unit norms), built
    straight on ``device``: for tests, benchmarks and smoke runs without the released weights."""
    with torch.device("meta"):
        model = CausalWanDiT(config)
    model = model.to(dtype).to_empty(device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            p.data.zero_()
        elif "norm" in name:
            p.data.fill_(1.0)
        else:
            p.data.normal_(0.0, std, generator=gen)
    return model.eval().requires_grad_(False)

