"""The umT5-XXL text encoder (encoder half only) that turns a prompt into the DiT's cross-attention context.

Architecture (REFERENCE.md section 8; Wan2.1 ``wan/modules/t5.py``): token embedding (no scaling) ->
``encoder_layers`` pre-norm blocks -> final RMS norm. Each block has its own relative-position table
(umT5 style, ``shared_pos=False``); attention logits are **not** scaled by ``1/sqrt(head_dim)``; the
feed-forward is a gated GELU (tanh approximation); RMS norms (:class:`.layers.RMSNorm`, shared with the DiT) take
their statistics in float32. No biases.

Parameter names equal the keys of the official ``models_t5_umt5-xxl-enc-bf16.pth`` (and of its
``.safetensors`` conversion), so :func:`load_t5` loads either with a strict key/shape check.

:meth:`T5Encoder.encode_ids` is what the pipeline uses: token ids and attention mask ``(B, 512)`` ->
``prompt_embeds (B, 512, dim)`` with every row at and after a prompt's token count set to exactly 0.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import WeightsError
from ..weights.io import load_strict, read_state_dict
from .layers import RMSNorm


@dataclass
class T5Config:
    """Encoder hyper-parameters; the defaults are umT5-XXL as shipped with Wan2.1 (5.68B parameters).

    Field names follow the official config dict (``t5_keys.json``), so ``T5Config.from_dict`` accepts it.
    """

    vocab_size: int = 256384
    dim: int = 4096
    dim_attn: int = 4096
    dim_ffn: int = 10240
    num_heads: int = 64
    encoder_layers: int = 24
    num_buckets: int = 32
    relative_max_dist: int = 128
    layer_norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.dim_attn % self.num_heads:
            raise ValueError(f"dim_attn {self.dim_attn} is not a multiple of num_heads {self.num_heads}")
        if self.num_buckets % 4:
            raise ValueError(f"num_buckets {self.num_buckets} must be a multiple of 4 (bidirectional buckets)")

    @property
    def head_dim(self) -> int:
        return self.dim_attn // self.num_heads

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "T5Config":
        """Build from a config dict such as the official one; unknown entries are ignored, but a shared
        position table (``shared_pos: true``, plain T5) is refused because umT5 has one per layer."""
        if values.get("shared_pos", False):
            raise ValueError("shared_pos=True (one position table for all layers) is plain T5, not umT5")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor], path: str | Path | None = None) -> "T5Config":
        """Infer the configuration from a checkpoint's tensor shapes (vocabulary and width from the token
        embedding, depth from the block count, heads and buckets from the per-layer position table).
        ``relative_max_dist`` and ``layer_norm_eps`` are not stored and keep their defaults.
        Raises :class:`WeightsError` when the keys are not those of a umT5 encoder."""
        needed = ("token_embedding.weight", "blocks.0.attn.q.weight", "blocks.0.ffn.fc1.weight",
                  "blocks.0.pos_embedding.embedding.weight")
        absent = [k for k in needed if k not in state]
        if absent:
            raise WeightsError(f"not a umT5 encoder checkpoint: no {', '.join(absent)}", path,
                               hint="expected models_t5_umt5-xxl-enc-bf16.pth or its .safetensors conversion")
        block_ids = {int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))}
        vocab_size, dim = state["token_embedding.weight"].shape
        num_buckets, num_heads = state["blocks.0.pos_embedding.embedding.weight"].shape
        try:
            return cls(vocab_size=vocab_size, dim=dim, dim_attn=state["blocks.0.attn.q.weight"].shape[0],
                       dim_ffn=state["blocks.0.ffn.fc1.weight"].shape[0], num_heads=num_heads,
                       encoder_layers=max(block_ids) + 1, num_buckets=num_buckets)
        except ValueError as exc:
            raise WeightsError(f"not a umT5 encoder checkpoint: {exc}", path) from None


def relative_position_buckets(length_q: int, length_k: int, num_buckets: int, max_distance: int) -> torch.Tensor:
    """Bidirectional T5 bucket of every (query, key) pair, ``(length_q, length_k)`` int64 on the CPU.

    ``rel = key - query``; half the buckets for each sign (``rel > 0`` in the upper half); within a half,
    distances below a quarter of ``num_buckets`` get their own bucket, larger ones share logarithmically
    spaced buckets up to ``max_distance`` and the last bucket beyond. The logarithm is taken in float32 as
    in the official code so the bucket edges are bit-identical.
    """
    rel = torch.arange(length_k)[None, :] - torch.arange(length_q)[:, None]
    half = num_buckets // 2
    exact = half // 2
    distance = rel.abs()
    far = exact + (torch.log(distance.float() / exact) / math.log(max_distance / exact) * (half - exact)).long()
    far = far.clamp(max=half - 1)
    return (rel > 0).long() * half + torch.where(distance < exact, distance, far)


def _clamp_fp16(x: torch.Tensor) -> torch.Tensor:
    """In float16 only, pull infinities back into range (umT5 activations overflow fp16; bf16/fp32 don't)."""
    if x.dtype == torch.float16 and torch.isinf(x).any():
        limit = torch.finfo(x.dtype).max - 1000
        x = x.clamp(-limit, limit)
    return x


class T5Attention(nn.Module):
    """Multi-head self-attention without biases and without logit scaling; the caller supplies the additive
    bias (relative positions, with masked keys overwritten by the dtype's minimum)."""

    def __init__(self, dim: int, dim_attn: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim_attn, bias=False)
        self.k = nn.Linear(dim, dim_attn, bias=False)
        self.v = nn.Linear(dim, dim_attn, bias=False)
        self.o = nn.Linear(dim_attn, dim, bias=False)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``x (B, L, dim)``, ``bias (B or 1, heads, L, L)`` -> ``(B, L, dim)``; softmax in float32."""
        b, length, _ = x.shape
        q, k, v = (proj(x).view(b, length, self.num_heads, -1).transpose(1, 2) for proj in (self.q, self.k, self.v))
        logits = q @ k.transpose(-1, -2) + bias
        weights = logits.float().softmax(dim=-1).to(v.dtype)
        return self.o((weights @ v).transpose(1, 2).reshape(b, length, -1))


class GELU(nn.Module):
    """The tanh approximation of GELU, ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``, evaluated op by op
    in the input dtype as the official Wan2.1 T5 code does: ``nn.GELU(approximate="tanh")`` fuses it into one
    kernel whose bf16 rounding differs (8e-3 relative RMS over the encoder). Any shape, same shape out."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class T5FeedForward(nn.Module):
    """Gated GELU: ``fc2(fc1(x) * gelu_tanh(gate(x)))``. ``gate`` is a Sequential (the Linear, then
    :class:`GELU`) so its key is ``gate.0.weight`` as in the checkpoint."""

    def __init__(self, dim: int, dim_ffn: int):
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(dim, dim_ffn, bias=False), GELU())
        self.fc1 = nn.Linear(dim, dim_ffn, bias=False)
        self.fc2 = nn.Linear(dim_ffn, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x) * self.gate(x))


class T5RelativeEmbedding(nn.Module):
    """One layer's table of ``num_heads`` attention biases per relative-position bucket."""

    def __init__(self, num_buckets: int, num_heads: int):
        super().__init__()
        self.embedding = nn.Embedding(num_buckets, num_heads)

    def forward(self, buckets: torch.Tensor) -> torch.Tensor:
        """``buckets (Lq, Lk)`` int64 -> bias ``(1, heads, Lq, Lk)``."""
        return self.embedding(buckets).permute(2, 0, 1).unsqueeze(0)


class T5Block(nn.Module):
    """Pre-norm block: ``x += Attn(norm1(x))``, ``x += FFN(norm2(x))``, with its own position table."""

    def __init__(self, config: T5Config):
        super().__init__()
        self.norm1 = RMSNorm(config.dim, config.layer_norm_eps)
        self.attn = T5Attention(config.dim, config.dim_attn, config.num_heads)
        self.norm2 = RMSNorm(config.dim, config.layer_norm_eps)
        self.ffn = T5FeedForward(config.dim, config.dim_ffn)
        self.pos_embedding = T5RelativeEmbedding(config.num_buckets, config.num_heads)

    def forward(self, x: torch.Tensor, buckets: torch.Tensor, key_padding: torch.Tensor | None) -> torch.Tensor:
        """``x (B, L, dim)``; ``buckets (L, L)``; ``key_padding (B, 1, 1, L)`` bool, True on padded keys.

        The position bias at padded keys is replaced (not offset) by the dtype's minimum, as officially.
        """
        h = self.norm1(x)
        bias = self.pos_embedding(buckets).to(h.dtype)
        if key_padding is not None:
            bias = bias.masked_fill(key_padding, torch.finfo(h.dtype).min)
        x = _clamp_fp16(x + self.attn(h, bias))
        return _clamp_fp16(x + self.ffn(self.norm2(x)))


class T5Encoder(nn.Module):
    """umT5 encoder: ``ids (B, L)`` int64 + mask ``(B, L)`` -> hidden states ``(B, L, dim)``."""

    def __init__(self, config: T5Config | None = None):
        super().__init__()
        self.config = config or T5Config()
        self.token_embedding = nn.Embedding(self.config.vocab_size, self.config.dim)
        self.blocks = nn.ModuleList(T5Block(self.config) for _ in range(self.config.encoder_layers))
        self.norm = RMSNorm(self.config.dim, self.config.layer_norm_eps)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Final-norm hidden states of every position, padded ones included (they attend like any query;
        only padded keys are masked). ``mask``: 1 on real tokens, 0 on padding; None means no padding."""
        length = ids.shape[1]
        buckets = relative_position_buckets(length, length, self.config.num_buckets,
                                            self.config.relative_max_dist).to(ids.device)
        key_padding = None if mask is None else (mask == 0)[:, None, None, :]
        x = self.token_embedding(ids)
        for block in self.blocks:
            x = block(x, buckets, key_padding)
        return self.norm(x)

    @torch.no_grad()
    def encode_ids(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Prompt embeddings as the DiT receives them: ``(B, L, dim)`` in the weights' dtype, rows
        ``>= mask[b].sum()`` set to exactly 0.

        Columns after the last real token of the batch are dropped before running the encoder: they are
        masked keys for every query (their softmax weight is exactly 0) and their own rows are zeroed, so
        the result equals running all ``L`` positions, at a fraction of the cost for short prompts.
        """
        mask = mask.to(ids.device)
        columns = mask.ne(0).any(dim=0).nonzero()
        used = int(columns.max()) + 1 if len(columns) else 0
        out = torch.zeros(*ids.shape, self.config.dim, dtype=self.norm.weight.dtype, device=ids.device)
        if used:
            out[:, :used] = self(ids[:, :used], mask[:, :used])
        lengths = mask.ne(0).sum(dim=1)
        keep = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]
        return out * keep[..., None].to(out.dtype)


def load_t5(path: str | Path, dtype: torch.dtype = torch.bfloat16, device: str | torch.device = "cpu") -> T5Encoder:
    """Load a umT5 encoder checkpoint (``.pth`` read with ``weights_only=True``, or ``.safetensors``).

    The configuration is inferred from the tensor shapes; the model is built on the meta device and filled
    with the checkpoint's tensors (strict keys and shapes, :class:`WeightsError` on any mismatch), then cast
    to ``dtype`` and moved to ``device``, in eval mode without gradients. The XXL file is ~11.4 GB in bf16.
    """
    model = build_t5(read_state_dict(path), path)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def build_t5(state: Mapping[str, torch.Tensor], path: str | Path | None = None) -> T5Encoder:
    """A :class:`T5Encoder` holding ``state``'s tensors as they are (config inferred from the shapes, strict
    keys and shapes). With meta tensors this checks a checkpoint without reading its data."""
    with torch.device("meta"):
        model = T5Encoder(T5Config.from_state_dict(state, path))
    return load_strict(model, state, path, what="umT5 encoder", assign=True)

