"""The Wan2.1 video VAE (``Wan2.1_VAE.pth``) with InSpatio's decoder cache rule, run chunk by chunk.

Architecture (REFERENCE.md section 9.1, ``golden/vae.md``): causal 3D convolutions (zero or cached frames in
front, none behind), RMS norms (``F.normalize`` over channels times ``sqrt(C)`` and ``gamma``), residual
blocks, one single-head attention per frame in the middle, 8x spatial and 4x temporal compression (the
first frame alone, then 4 frames per latent), 16 latent channels normalised with the official mean/std.

It implements the chunked autoencoder interface of :mod:`.streaming` (frame counts, alignment, tails).

**Precision.** Golden checks run in float32. Production runs the VAE in bfloat16 (weights and
activations); the normalisation constants are cast to the model dtype first and the reciprocal of the std
is taken in that dtype: encode ``(mu - mean) * (1/std)``, decode ``z / (1/std) + mean``. Streams accept
frames and latents of any float dtype and return float32.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WeightsError
from ..weights.io import load_strict, read_state_dict
from .streaming import FRAMES_PER_LATENT, Cache, StreamDecoder, StreamEncoder, StreamingAutoencoder, Tail

LATENT_MEAN = (-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
               0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921)
LATENT_STD = (2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
              3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160)


@dataclass
class VAEConfig:
    """Hyper-parameters; the defaults are the released ``Wan2.1_VAE.pth``. Field names follow the official
    constructor (``temperal`` sic), so :meth:`from_dict` accepts the golden files' config."""

    dim: int = 96
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temperal_downsample: tuple[bool, ...] = (False, True, True)
    latent_mean: tuple[float, ...] = LATENT_MEAN
    latent_std: tuple[float, ...] = LATENT_STD

    def __post_init__(self) -> None:
        self.dim_mult = tuple(self.dim_mult)
        self.temperal_downsample = tuple(self.temperal_downsample)
        self.latent_mean, self.latent_std = tuple(self.latent_mean), tuple(self.latent_std)
        if len(self.temperal_downsample) != len(self.dim_mult) - 1:
            raise ValueError("temperal_downsample needs one entry per resolution change "
                             f"({len(self.dim_mult) - 1}), got {len(self.temperal_downsample)}")
        if FRAMES_PER_LATENT % 2 ** sum(self.temperal_downsample):
            raise ValueError("the temporal compression must divide the 4-frame encoder chunk")
        if not len(self.latent_mean) == len(self.latent_std) == self.z_dim:
            raise ValueError(f"latent_mean/latent_std need {self.z_dim} values (z_dim)")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "VAEConfig":
        """Build from a config dict such as the official one. Unknown entries are ignored (the decoder's
        ``temperal_upsample`` is always the reverse of ``temperal_downsample``); attention inside the
        down/up paths (``attn_scales``) is refused because the official chunked code cannot run it."""
        if values.get("attn_scales"):
            raise ValueError("attn_scales must be empty: Wan2.1 has no attention in the down/up paths")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor]) -> "VAEConfig":
        """Base width and latent channels from a checkpoint's shapes; the rest keeps the release values
        (a checkpoint with another layout then fails the strict key check with a list of differences)."""
        config = cls()
        if "encoder.conv1.weight" in state:
            config.dim = state["encoder.conv1.weight"].shape[0]
        if "conv2.weight" in state and state["conv2.weight"].shape[0] != config.z_dim:
            raise ValueError(f"{state['conv2.weight'].shape[0]} latent channels; Wan2.1 has {config.z_dim}")
        return config


class CausalConv3d(nn.Conv3d):
    """3D convolution causal in time: ``2 * padding[0]`` frames in front (none behind), ``padding[1:]`` in
    space. The front frames are zeros at the start of a clip and then the last input frames of the
    previous call (kept in the :data:`Cache`), so chunked calls equal one call over the whole clip."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int | tuple[int, int, int],
                 padding: int | tuple[int, int, int] = 0):
        pad = (padding,) * 3 if isinstance(padding, int) else padding
        super().__init__(in_dim, out_dim, kernel_size, padding=(0, pad[1], pad[2]))
        self.time_pad = 2 * pad[0]

    def forward(self, x: torch.Tensor, cache: Cache) -> torch.Tensor:
        if self.time_pad:
            prev = cache.get(self)
            x = F.pad(x, (0, 0, 0, 0, self.time_pad, 0)) if prev is None else torch.cat([prev, x], 2)
            cache[self] = x[:, :, -self.time_pad:].clone()
        return super().forward(x)


class RMSNorm(nn.Module):
    """``F.normalize`` over channels (L2, eps 1e-12) times ``sqrt(C)`` and a per-channel ``gamma``."""

    def __init__(self, dim: int, images: bool = False):
        super().__init__()
        self.scale = dim ** 0.5
        self.gamma = nn.Parameter(torch.ones(dim, *((1, 1) if images else (1, 1, 1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) * self.scale * self.gamma


class ResidualBlock(nn.Module):
    """RMS, SiLU, causal 3x3x3 conv, RMS, SiLU, (dropout slot), causal 3x3x3 conv, plus a 1x1x1 shortcut
    when the width changes."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.residual = nn.Sequential(
            RMSNorm(in_dim), nn.SiLU(), CausalConv3d(in_dim, out_dim, 3, padding=1),
            RMSNorm(out_dim), nn.SiLU(), nn.Identity(), CausalConv3d(out_dim, out_dim, 3, padding=1))
        self.shortcut = nn.Conv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: torch.Tensor, cache: Cache) -> torch.Tensor:
        return _run(self.residual, x, cache) + self.shortcut(x)


class AttentionBlock(nn.Module):
    """Single-head self-attention over the ``h*w`` positions of each frame separately (scale 1/sqrt(C))."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = RMSNorm(dim, images=True)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        y = self.norm(_frames_as_images(x))
        q, k, v = self.to_qkv(y).reshape(b * t, 1, 3 * c, h * w).transpose(2, 3).contiguous().chunk(3, dim=-1)
        y = F.scaled_dot_product_attention(q, k, v).squeeze(1).transpose(1, 2).reshape(b * t, c, h, w)
        return _images_as_frames(self.proj(y), b) + x


class _Nearest2x(nn.Module):
    """Nearest-neighbour 2x spatial upsampling, computed in float32 as the official code does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x.float(), scale_factor=2.0, mode="nearest").to(x.dtype)


class Resample(nn.Module):
    """Spatial 2x down/up sampling per frame, optionally with a temporal 2x step.

    * ``downsample2d``: zero-pad right/bottom by 1, 3x3 stride-2 conv.
    * ``downsample3d``: the same, then (from the second call on) a (3,1,1) stride-2 conv over the previous
      call's last frame followed by this call's frames: 4 frames -> 2, 2 -> 1. The first call (frame 0)
      passes through.
    * ``upsample2d``: nearest 2x, 3x3 conv halving the width.
    * ``upsample3d``: first a temporal conv to 2C channels whose halves become two consecutive frames, with
      InSpatio's cache rule (see :meth:`_time_upsample`), then as ``upsample2d``.
    """

    def __init__(self, dim: int, mode: str):
        super().__init__()
        self.mode = mode
        if mode.startswith("up"):
            self.resample = nn.Sequential(_Nearest2x(), nn.Conv2d(dim, dim // 2, 3, padding=1))
            if mode == "upsample3d":
                self.time_conv = nn.Conv3d(dim, dim * 2, (3, 1, 1))
        else:
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=2))
            if mode == "downsample3d":
                self.time_conv = nn.Conv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1))

    def forward(self, x: torch.Tensor, cache: Cache) -> torch.Tensor:
        if self.mode == "upsample3d":
            x = self._time_upsample(x, cache)
        x = _images_as_frames(self.resample(_frames_as_images(x)), x.shape[0])
        if self.mode == "downsample3d":
            prev = cache.get(self)
            cache[self] = x[:, :, -1:].clone()
            if prev is not None:
                x = self.time_conv(torch.cat([prev, x], 2))
        return x

    def _time_upsample(self, x: torch.Tensor, cache: Cache) -> torch.Tensor:
        """InSpatio's rule (differs from upstream Wan2.1 from the third call on). The first call stores an
        all-zero 2-frame cache and passes its frame through. Later calls convolve ``[cache, x]`` (no
        padding) and keep the last two frames of ``x``; for a 1-frame ``x`` the kept pair is
        ``[where(cache_last == 0, 0, x), x]``. One latent per call therefore sees ``[0, 0, x1]``,
        ``[0, x1, x2]`` and then ``[x_{k-1}, x_{k-1}, x_k]`` (upstream: ``[x_{k-2}, x_{k-1}, x_k]``)."""
        b, c, t, h, w = x.shape
        prev = cache.get(self)
        if prev is None:
            cache[self] = x.new_zeros(b, c, 2, h, w)
            return x
        keep = x[:, :, -2:]
        if t == 1:
            keep = torch.cat([torch.where(prev[:, :, -1:] == 0, 0, keep), keep], 2)
        y = self.time_conv(torch.cat([prev, x], 2))
        cache[self] = keep.clone()
        y = y.reshape(b, 2, c, t, h, w)
        return torch.stack((y[:, 0], y[:, 1]), 3).reshape(b, c, 2 * t, h, w)


def _frames_as_images(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, T, H, W)`` -> ``(B*T, C, H, W)``."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


def _images_as_frames(x: torch.Tensor, batch: int) -> torch.Tensor:
    """``(B*T, C, H, W)`` -> ``(B, C, T, H, W)``."""
    return x.reshape(batch, -1, *x.shape[1:]).transpose(1, 2)


def _run(layers: nn.Sequential, x: torch.Tensor, cache: Cache) -> torch.Tensor:
    """Apply ``layers`` in order, handing the cache to those that look back in time."""
    for layer in layers:
        x = layer(x, cache) if isinstance(layer, (CausalConv3d, ResidualBlock, Resample)) else layer(x)
    return x


class Encoder3d(nn.Module):
    """Pixels ``(B, 3, t, H, W)`` -> ``(B, 2*z_dim, t', H/8, W/8)`` (mean and log-variance)."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        dims = [config.dim * m for m in (1, *config.dim_mult)]
        self.conv1 = CausalConv3d(3, dims[0], 3, padding=1)
        layers: list[nn.Module] = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(config.num_res_blocks):
                layers.append(ResidualBlock(in_dim, out_dim))
                in_dim = out_dim
            if i < len(config.temperal_downsample):
                layers.append(Resample(out_dim, "downsample3d" if config.temperal_downsample[i] else "downsample2d"))
        self.downsamples = nn.Sequential(*layers)
        width = dims[-1]
        self.middle = nn.Sequential(ResidualBlock(width, width), AttentionBlock(width), ResidualBlock(width, width))
        self.head = nn.Sequential(RMSNorm(width), nn.SiLU(), CausalConv3d(width, 2 * config.z_dim, 3, padding=1))

    def forward(self, x: torch.Tensor, cache: Cache) -> torch.Tensor:
        x = self.conv1(x, cache)
        for part in (self.downsamples, self.middle, self.head):
            x = _run(part, x, cache)
        return x


class Decoder3d(nn.Module):
    """Latents ``(B, z_dim, t, h, w)`` -> pixels ``(B, 3, t', 8h, 8w)`` (unclamped); the mirror of the
    encoder, each upsampling halving the width it receives."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        dims = [config.dim * m for m in (config.dim_mult[-1], *reversed(config.dim_mult))]
        upsample_time = tuple(reversed(config.temperal_downsample))
        self.conv1 = CausalConv3d(config.z_dim, dims[0], 3, padding=1)
        self.middle = nn.Sequential(ResidualBlock(dims[0], dims[0]), AttentionBlock(dims[0]),
                                    ResidualBlock(dims[0], dims[0]))
        layers: list[nn.Module] = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            if i > 0:
                in_dim //= 2
            for _ in range(config.num_res_blocks + 1):
                layers.append(ResidualBlock(in_dim, out_dim))
                in_dim = out_dim
            if i < len(upsample_time):
                layers.append(Resample(out_dim, "upsample3d" if upsample_time[i] else "upsample2d"))
        self.upsamples = nn.Sequential(*layers)
        self.head = nn.Sequential(RMSNorm(dims[-1]), nn.SiLU(), CausalConv3d(dims[-1], 3, 3, padding=1))

    def forward(self, x: torch.Tensor, cache: Cache) -> torch.Tensor:
        x = self.conv1(x, cache)
        for part in (self.middle, self.upsamples, self.head):
            x = _run(part, x, cache)
        return x


class WanVAE(nn.Module, StreamingAutoencoder):
    """The Wan2.1 VAE; parameter names equal the keys of ``Wan2.1_VAE.pth`` (``encoder.*``, ``conv1.*``,
    ``conv2.*``, ``decoder.*``). 126.9M parameters at the release width (``dim=96``)."""

    def __init__(self, config: VAEConfig | None = None):
        super().__init__()
        self.config = config = config or VAEConfig()
        self.encoder = Encoder3d(config)
        self.conv1 = nn.Conv3d(2 * config.z_dim, 2 * config.z_dim, 1)
        self.conv2 = nn.Conv3d(config.z_dim, config.z_dim, 1)
        self.decoder = Decoder3d(config)

    @property
    def latent_channels(self) -> int:
        return self.config.z_dim

    @property
    def spatial_factor(self) -> int:
        return 2 ** len(self.config.temperal_downsample)

    def _constants(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, 1/std) shaped ``(1, C, 1, 1, 1)``: cast to ``like``'s dtype, reciprocal in that dtype."""
        def as_tensor(values):
            return torch.tensor(values, dtype=torch.float32, device=like.device).to(like.dtype).view(1, -1, 1, 1, 1)
        return as_tensor(self.config.latent_mean), 1.0 / as_tensor(self.config.latent_std)

    def normalize(self, mu: torch.Tensor) -> torch.Tensor:
        """Posterior mean ``(B, C, T, h, w)`` -> diffusion latents ``(mu - mean) * (1/std)``."""
        mean, inv_std = self._constants(mu)
        return (mu - mean) * inv_std

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        """Diffusion latents ``(B, C, T, h, w)`` -> decoder input ``z / (1/std) + mean``."""
        mean, inv_std = self._constants(z)
        return z / inv_std + mean

    def stream_encoder(self, tail: Tail = "error") -> "VAEStreamEncoder":
        return VAEStreamEncoder(self, tail)

    def stream_decoder(self) -> "VAEStreamDecoder":
        return VAEStreamDecoder(self)


class VAEStreamEncoder(StreamEncoder):
    """Encodes frame 0 alone, then groups of 4 frames, carrying the causal caches (the official chunking);
    frames after the last complete group are dropped under ``tail="official"``."""

    first_group, group = 1, FRAMES_PER_LATENT

    def __init__(self, vae: WanVAE, tail: Tail = "error"):
        super().__init__(vae, tail)
        self.vae = vae

    def _encode(self, frames: torch.Tensor) -> torch.Tensor:
        moments = self.vae.conv1(self.vae.encoder(frames.to(self.dtype), self.state))
        return self.vae.normalize(moments[:, :self.latent_channels]).transpose(1, 2)

    def _encode_rest(self, frames: torch.Tensor) -> None:
        return None


class VAEStreamDecoder(StreamDecoder):
    """Decodes one latent frame at a time with the causal caches carried over (``use_cache`` decoding of
    the official wrapper; equal to its whole-clip decode). Memory is bounded by the per-layer caches."""

    def __init__(self, vae: WanVAE):
        super().__init__(vae)
        self.vae = vae

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        frames = []
        for i in range(latents.shape[1]):
            z = self.vae.conv2(self.vae.denormalize(latents[:, i:i + 1].transpose(1, 2)))
            frames.append(self.vae.decoder(z, self.state).float().clamp(-1, 1))
        return torch.cat(frames, 2).transpose(1, 2)


def load_vae(path: str | Path, dtype: torch.dtype = torch.bfloat16, device: str | torch.device = "cpu") -> WanVAE:
    """Load ``Wan2.1_VAE.pth`` (read with ``weights_only=True``) or a ``.safetensors`` conversion.

    The base width is inferred from the tensor shapes; the model is built on the meta device, filled with a
    strict key/shape check (:class:`WeightsError` listing the differences), cast to ``dtype`` (bfloat16 in
    production) and moved to ``device``, in eval mode without gradients."""
    model = build_vae(read_state_dict(path), path)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def build_vae(state: Mapping[str, torch.Tensor], path: str | Path | None = None) -> WanVAE:
    """A :class:`WanVAE` holding ``state``'s tensors as they are (width inferred from the shapes, strict keys
    and shapes). With meta tensors this checks a checkpoint without reading its data."""
    try:
        config = VAEConfig.from_state_dict(state)
    except ValueError as exc:
        raise WeightsError(f"not a Wan2.1 VAE checkpoint: {exc}", path) from None
    with torch.device("meta"):
        model = WanVAE(config)
    return load_strict(model, state, path, what="Wan2.1 VAE", assign=True)
