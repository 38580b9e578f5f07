"""TAEHV (madebyollin/taehv), the tiny autoencoder for the Wan2.1 latent space (``taew2_1.pth``).

The fast alternative to :mod:`.vae` (REFERENCE.md section 9.2, ``golden/taehv.md``): 2D convolutions per
frame, with time handled by three kinds of blocks. ``MemBlock``: ``relu(conv(cat[x, past]) + x)`` where
``past`` is the block's input at the previous time step (zeros at t=0). ``TPool(s)``: ``s`` consecutive
frames stacked on channels, 1x1 conv back to ``n``. ``TGrow(s)``: 1x1 conv to ``s*n`` channels whose blocks
become ``s`` consecutive frames. Its latents are the Wan VAE's *normalised* latents (no mean/std here).

It implements the chunked autoencoder interface of :mod:`.streaming` (frames in [-1, 1], latents
``(B, F, 16, h, w)``, ``1 + 4k`` frames <-> ``k + 1`` latents). Differences, all from the official code:

* The encoder pools frames ``4j .. 4j+3`` into latent ``j`` (the Wan VAE: ``4j-3 .. 4j``). The last group is
  completed by repeating the last frame (3 repeats for ``1 + 4k`` frames), so the stream encoder returns
  the last latent at ``finish()``.
* The decoder makes 4 frames per latent and drops the first 3 of the clip, which gives the Wan VAE's
  ``1 + 4(F-1)`` frames with its alignment.
* Each call runs all its frames through one layer at a time (TAEHV's "parallel" mode) with every
  ``MemBlock``'s last input kept between calls, so feeding one latent at a time (its frame-sequential
  streaming mode) and one call over the clip give the same frames up to float rounding.

Production precision is float16 (``load_tae`` default); golden checks run in float32.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..weights.io import load_strict, read_state_dict
from .streaming import Cache, StreamDecoder, StreamEncoder, StreamingAutoencoder, Tail


@dataclass
class TAEConfig:
    """Hyper-parameters; the defaults are ``taew2_1`` (11.3M parameters). Widths are constructor arguments
    so tests can use small models; names follow the official constructor and the golden files."""

    latent_channels: int = 16
    enc_width: int = 64
    dec_widths: tuple[int, ...] = (256, 128, 64, 64)
    encoder_time_downscale: tuple[bool, ...] = (True, True, False)
    decoder_time_upscale: tuple[bool, ...] = (False, True, True)
    decoder_space_upscale: tuple[bool, ...] = (True, True, True)

    def __post_init__(self) -> None:
        for name in ("dec_widths", "encoder_time_downscale", "decoder_time_upscale", "decoder_space_upscale"):
            setattr(self, name, tuple(getattr(self, name)))
        if len(self.dec_widths) != 4 or any(len(getattr(self, n)) != 3 for n in (
                "encoder_time_downscale", "decoder_time_upscale", "decoder_space_upscale")):
            raise ValueError("TAEHV has 4 decoder widths and 3 entries per time/space scale flag")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TAEConfig":
        """Build from a config dict such as the golden files'; unknown entries are ignored, a patch size
        other than 1 (the Wan2.2 variants) is refused."""
        if values.get("patch_size", 1) != 1:
            raise ValueError("patch_size != 1 is a Wan2.2 TAEHV variant, not the Wan2.1 latent space")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor]) -> "TAEConfig":
        """Widths and latent channels from a checkpoint's shapes (first conv of the encoder, the convs that
        open each decoder stage); missing keys keep the defaults and fail the strict load later."""
        config = cls()
        if "encoder.0.weight" in state:
            config.enc_width = state["encoder.0.weight"].shape[0]
        if "decoder.1.weight" in state:
            config.latent_channels = state["decoder.1.weight"].shape[1]
        widths = [state[f"decoder.{i}.weight"].shape[0] for i in (1, 8, 14, 20) if f"decoder.{i}.weight" in state]
        if len(widths) == 4:
            config.dec_widths = tuple(widths)
        return config

    @property
    def time_downscale(self) -> int:
        return 2 ** sum(self.encoder_time_downscale)

    @property
    def frames_to_trim(self) -> int:
        """Leading decoder frames dropped so that latent 0 gives one frame."""
        return 2 ** sum(self.decoder_time_upscale) - 1


def _conv(n_in: int, n_out: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, stride=stride, padding=1, bias=bias)


class Clamp(nn.Module):
    """Soft clamp of the latents to (-3, 3): ``tanh(x / 3) * 3``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class MemBlock(nn.Module):
    """``relu(conv(cat[x, past]) + skip(x))``; ``conv`` = conv3x3, ReLU, conv3x3, ReLU, conv3x3."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.conv = nn.Sequential(_conv(2 * n_in, n_out), nn.ReLU(), _conv(n_out, n_out), nn.ReLU(),
                                  _conv(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor, past: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(torch.cat([x, past], 1)) + self.skip(x))


class TPool(nn.Module):
    """``(N*T, C, H, W)`` -> ``(N*T/s, C, H, W)``: each ``s`` consecutive frames stacked on channels, 1x1 conv."""

    def __init__(self, n: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(n * stride, n, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, c, h, w = x.shape
        return self.conv(x.reshape(-1, self.stride * c, h, w))


class TGrow(nn.Module):
    """``(N*T, C, H, W)`` -> ``(N*T*s, C, H, W)``: 1x1 conv to ``s*C`` channels, channel block ``j`` -> frame ``j``."""

    def __init__(self, n: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(n, n * stride, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, c, h, w = x.shape
        return self.conv(x).reshape(-1, c, h, w)


def _apply(layers: nn.Sequential, x: torch.Tensor, state: Cache) -> torch.Tensor:
    """Run ``x`` ``(N, T, C, H, W)`` through ``layers`` one layer at a time over all frames. A ``MemBlock``'s
    ``past`` is its previous input frame, taken across calls from ``state``. ``T`` must fill the ``TPool``
    strides (whole encoder groups)."""
    for layer in layers:
        n, t = x.shape[:2]
        flat = x.reshape(n * t, *x.shape[2:])
        if isinstance(layer, MemBlock):
            prev = state.get(layer)
            past = torch.cat([torch.zeros_like(x[:, :1]) if prev is None else prev, x[:, :-1]], 1)
            state[layer] = x[:, -1:].clone()
            y = layer(flat, past.reshape(flat.shape))
        else:
            y = layer(flat)
        x = y.reshape(n, -1, *y.shape[1:])
    return x


class TAEHV(nn.Module, StreamingAutoencoder):
    """TAEHV; parameter names equal the keys of ``taew2_1.pth`` (``encoder.N.*``, ``decoder.N.*``: indices
    into the layer sequences, parameter-free layers included)."""

    def __init__(self, config: TAEConfig | None = None):
        super().__init__()
        self.config = c = config or TAEConfig()
        w = c.enc_width
        encoder: list[nn.Module] = [_conv(3, w), nn.ReLU()]
        for down in c.encoder_time_downscale:
            encoder += [TPool(w, 2 if down else 1), _conv(w, w, stride=2, bias=False),
                        MemBlock(w, w), MemBlock(w, w), MemBlock(w, w)]
        self.encoder = nn.Sequential(*encoder, _conv(w, c.latent_channels))
        d = c.dec_widths
        decoder: list[nn.Module] = [Clamp(), _conv(c.latent_channels, d[0]), nn.ReLU()]
        for i, (up_time, up_space) in enumerate(zip(c.decoder_time_upscale, c.decoder_space_upscale)):
            decoder += [MemBlock(d[i], d[i]), MemBlock(d[i], d[i]), MemBlock(d[i], d[i]),
                        nn.Upsample(scale_factor=2 if up_space else 1), TGrow(d[i], 2 if up_time else 1),
                        _conv(d[i], d[i + 1], bias=False)]
        self.decoder = nn.Sequential(*decoder, nn.ReLU(), _conv(d[3], 3))

    @property
    def latent_channels(self) -> int:
        return self.config.latent_channels

    spatial_factor = 8

    def stream_encoder(self, tail: Tail = "error") -> "TAEStreamEncoder":
        return TAEStreamEncoder(self, tail)

    def stream_decoder(self) -> "TAEStreamDecoder":
        return TAEStreamDecoder(self)


class TAEStreamEncoder(StreamEncoder):
    """Encodes groups of 4 frames (``4j .. 4j+3`` -> latent ``j``); at ``finish()`` an incomplete last group
    is completed by repeating the last frame, as the official ``encode_video`` pads the clip."""

    def __init__(self, tae: TAEHV, tail: Tail = "error"):
        super().__init__(tae, tail)
        self.tae = tae
        self.first_group = self.group = tae.config.time_downscale

    def _encode(self, frames: torch.Tensor) -> torch.Tensor:
        x = (frames.transpose(1, 2) * 0.5 + 0.5).clamp(0, 1).to(self.dtype)
        return _apply(self.tae.encoder, x, self.state)

    def _encode_rest(self, frames: torch.Tensor) -> torch.Tensor:
        repeats = frames[:, :, -1:].expand(-1, -1, self.group - frames.shape[2], -1, -1)
        return self._encode(torch.cat([frames, repeats], 2))


class TAEStreamDecoder(StreamDecoder):
    """Decodes any number of latents per call (4 frames each), dropping the clip's first 3 frames."""

    def __init__(self, tae: TAEHV):
        super().__init__(tae)
        self.tae = tae

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        frames = _apply(self.tae.decoder, latents, self.state)
        if self.latents_in == 0:
            frames = frames[:, self.tae.config.frames_to_trim:]
        return frames.float().clamp(0, 1) * 2 - 1


def keep_last_tgrow_rows(model: TAEHV, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The official loader's rule for checkpoints trained with more temporal upscaling than the model
    uses: a stored ``TGrow`` weight with more output rows than the model's keeps its **last** rows (the
    latest output frame). A no-op for ``taew2_1`` with the default settings."""
    out = dict(state)
    for index, layer in enumerate(model.decoder):
        key = f"decoder.{index}.conv.weight"
        if isinstance(layer, TGrow) and key in out and out[key].shape[0] > layer.conv.weight.shape[0]:
            out[key] = out[key][-layer.conv.weight.shape[0]:]
    return out


def load_tae(path: str | Path, dtype: torch.dtype = torch.float16, device: str | torch.device = "cpu") -> TAEHV:
    """Load ``taew2_1.pth`` (read with ``weights_only=True``) or ``taew2_1.safetensors``.

    Widths are inferred from the tensor shapes; the model is built on the meta device, the TGrow rows are
    trimmed (:func:`keep_last_tgrow_rows`), the weights are loaded with a strict key/shape check
    (:class:`WeightsError` listing the differences), cast to ``dtype`` (float16 in production) and moved to
    ``device``, in eval mode without gradients."""
    model = build_tae(read_state_dict(path), path)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def build_tae(state: Mapping[str, torch.Tensor], path: str | Path | None = None) -> TAEHV:
    """A :class:`TAEHV` holding ``state``'s tensors as they are (widths inferred from the shapes, TGrow rows
    trimmed, strict keys and shapes). With meta tensors this checks a checkpoint without reading its data."""
    with torch.device("meta"):
        model = TAEHV(TAEConfig.from_state_dict(state))
    return load_strict(model, keep_last_tgrow_rows(model, state), path, what="TAEHV (taew2_1)", assign=True)
