"""The chunked autoencoder interface that both autoencoders implement (the Wan2.1 VAE in :mod:`.vae`, TAEHV
in :mod:`.tae`), so the pipeline switches between them without special cases.

* ``enc = ae.stream_encoder()``; ``enc.feed(frames)`` takes pixel frames, float ``(T, 3, H, W)`` (one video)
  or ``(B, 3, T, H, W)`` in [-1, 1], any split, buffered internally, and returns the latents completed so
  far, float32 ``(B, F, C, H/8, W/8)`` (``F`` may be 0); ``enc.finish()`` ends the clip and returns the last
  ones. ``dec = ae.stream_decoder()``; ``dec.feed(latents)`` returns float32 pixel frames
  ``(B, T, 3, H, W)`` in [-1, 1]; a decoder carries its cache until ``reset()``. Latent 0 gives 1 frame,
  every later latent gives 4 (``1 + 4(F-1)`` frames for ``F`` latents).
* ``ae.encode(frames)`` / ``ae.decode(latents)`` are thin wrappers over one stream and give identical
  results.

**Frame counts.** Both autoencoders map ``T = 1 + 4k`` frames to ``k + 1`` latents and back. Any other
``T`` is an :class:`InputError` at ``encode``/``finish`` unless ``tail="official"``, which reproduces the
official handling: the Wan VAE drops the ``(T - 1) mod 4`` frames after the last complete group, TAEHV pads
its last group by repeating the last frame; both then give ``ceil(T / 4)`` latents. The pipeline should
pad its clips itself (repeat the last frame up to ``1 + 4k`` frames with ``k + 1`` a multiple of the
generator's 3-latent chunk) and trim the decoded video back to the input length, so no frame is lost.

**Alignment.** Wan VAE latent 0 is frame 0 and latent ``j >= 1`` covers frames ``4j-3 .. 4j``, so its
stream encoder emits latent ``j`` as soon as frame ``4j`` arrives. A TAEHV latent ``j`` pools frames
``4j .. 4j+3`` (for ``1 + 4k`` frames its last group is frame ``4k`` repeated 4 times), so its stream lags
by three frames and emits the last latent only at ``finish()``. Both decoders use the Wan alignment.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import torch
from torch import nn

from ..errors import InputError, UsageError

Tail = Literal["error", "official"]
TAILS = ("error", "official")
FRAMES_PER_LATENT = 4

Cache = dict[nn.Module, torch.Tensor]
"""Per-layer streaming state: each layer that looks back in time keeps its last input frames here."""


def latent_count(num_frames: int, tail: Tail = "error") -> int:
    """Latents an autoencoder makes from ``num_frames`` frames: ``k + 1`` for ``1 + 4k`` frames.

    Other counts raise :class:`InputError` unless ``tail="official"`` (then ``ceil(T / 4)``)."""
    _check_tail(tail)
    if num_frames < 1:
        raise InputError("no frames to encode")
    surplus = (num_frames - 1) % FRAMES_PER_LATENT
    if surplus and tail == "error":
        usable = num_frames - surplus
        raise InputError(f"{num_frames} frames: the autoencoders need 1+4k frames (e.g. {usable} or "
                         f"{usable + FRAMES_PER_LATENT}); pad the clip by repeating its last frame, or pass "
                         f"tail='official' (the Wan VAE then drops the last {surplus}, TAEHV pads)")
    return 1 + (num_frames - 1) // FRAMES_PER_LATENT


def _check_tail(tail: str) -> None:
    if tail not in TAILS:
        raise UsageError(f"unknown tail policy {tail!r}; expected one of {', '.join(TAILS)}")


def frame_count(num_latents: int) -> int:
    """Frames a decoder makes from ``num_latents`` latents: ``1 + 4(F - 1)``."""
    return 1 + FRAMES_PER_LATENT * (num_latents - 1) if num_latents else 0


def video_frames(frames: torch.Tensor, multiple: int = 8) -> torch.Tensor:
    """Pixel frames as ``(B, 3, T, H, W)``: accepts ``(T, 3, H, W)`` (one video) or ``(B, 3, T, H, W)``.

    Raises :class:`InputError` for another rank, a channel count other than 3, a non-float tensor or a
    height/width that is not a multiple of ``multiple`` (the spatial compression)."""
    if frames.ndim == 4:
        frames = frames.transpose(0, 1).unsqueeze(0)
    elif frames.ndim != 5:
        raise InputError(f"frames of shape {tuple(frames.shape)}: expected (T, 3, H, W) or (B, 3, T, H, W)")
    if frames.shape[1] != 3:
        raise InputError(f"frames of shape {tuple(frames.shape)} have {frames.shape[1]} channels; expected 3 "
                         "(RGB, channel axis 1)")
    if not frames.is_floating_point():
        raise InputError(f"frames are {frames.dtype}; expected float in [-1, 1]")
    if frames.shape[-2] % multiple or frames.shape[-1] % multiple:
        raise InputError(f"frames of size {frames.shape[-2]}x{frames.shape[-1]}: height and width must be "
                         f"multiples of {multiple}")
    return frames


def check_latents(latents: torch.Tensor, channels: int) -> None:
    """Raise :class:`InputError` unless ``latents`` is float ``(B, F, channels, h, w)`` with ``F >= 1``."""
    if latents.ndim != 5 or latents.shape[2] != channels or not latents.is_floating_point() or not latents.shape[1]:
        raise InputError(f"latents of shape {tuple(latents.shape)} ({latents.dtype}): expected float "
                         f"(B, F, {channels}, h, w) with F >= 1")


class _Stream:
    """Shared bookkeeping of the stream encoders and decoders: target device/dtype, layer state, and the
    batch/spatial shape that every later call must keep."""

    def __init__(self, model: "StreamingAutoencoder"):
        weight = next(model.parameters())
        self.device, self.dtype = weight.device, weight.dtype
        self.latent_channels, self.spatial_factor = model.latent_channels, model.spatial_factor
        self.state: Cache = {}
        self._shape: tuple[int, int, int] | None = None

    def _same_shape(self, batch: int, h: int, w: int, what: str) -> None:
        if self._shape is None:
            self._shape = (batch, h, w)
        elif self._shape != (batch, h, w):
            raise InputError(f"{what}: batch {batch} at {h}x{w}, but this stream started with batch "
                             f"{self._shape[0]} at {self._shape[1]}x{self._shape[2]}")

    def state_bytes(self) -> int:
        """Bytes held by the layer caches: bounded by a few frames per layer, whatever the clip length."""
        return sum(t.numel() * t.element_size() for t in self.state.values())


class StreamEncoder(_Stream, ABC):
    """Pixel frames in, latents out, in groups: ``first_group`` frames give the first latent(s), then every
    ``group`` frames give the next. :meth:`feed` buffers what does not fill a group; :meth:`finish` applies
    the tail policy (module docstring) to the rest."""

    first_group: int
    group: int

    def __init__(self, model: "StreamingAutoencoder", tail: Tail = "error"):
        super().__init__(model)
        _check_tail(tail)
        self.tail = tail
        self.frames_in = self.groups_done = 0
        self._pending: torch.Tensor | None = None
        self._finished = False

    @torch.no_grad()
    def feed(self, frames: torch.Tensor) -> torch.Tensor:
        """Add frames (``(T, 3, H, W)`` or ``(B, 3, T, H, W)`` in [-1, 1]); return the latents completed by
        them, float32 ``(B, F, C, H/8, W/8)``."""
        if self._finished:
            raise UsageError("this stream encoder has finished; start a new one")
        x = video_frames(frames, self.spatial_factor).to(self.device)
        self._same_shape(x.shape[0], x.shape[3], x.shape[4], "frames")
        pending = x if self._pending is None else torch.cat([self._pending, x], 2)
        self.frames_in += x.shape[2]
        out = []
        while pending.shape[2] >= (need := self.group if self.groups_done else self.first_group):
            out.append(self._encode(pending[:, :, :need]).float())
            pending = pending[:, :, need:]
            self.groups_done += 1
        self._pending = pending.clone()
        return self._latents(out)

    @torch.no_grad()
    def finish(self) -> torch.Tensor:
        """End the clip: check the frame count (:func:`latent_count`), encode or drop the frames left over
        and free the caches. Returns the remaining latents (possibly none)."""
        if self._finished:
            raise UsageError("this stream encoder has already finished")
        latent_count(self.frames_in, self.tail)
        rest = self._encode_rest(self._pending) if self._pending.shape[2] else None
        out = [] if rest is None else [rest.float()]
        self._finished, self._pending, self.state = True, None, {}
        return self._latents(out)

    def _latents(self, out: list[torch.Tensor]) -> torch.Tensor:
        if out:
            return torch.cat(out, 1)
        batch, h, w = self._shape
        return torch.zeros(batch, 0, self.latent_channels, h // self.spatial_factor, w // self.spatial_factor,
                           device=self.device)

    @abstractmethod
    def _encode(self, frames: torch.Tensor) -> torch.Tensor:
        """One group of frames ``(B, 3, t, H, W)`` in [-1, 1] -> latents ``(B, F, C, h, w)``."""

    @abstractmethod
    def _encode_rest(self, frames: torch.Tensor) -> torch.Tensor | None:
        """The frames left after the last complete group (1 to ``group - 1``) at the end of the clip ->
        their latents, or None when the model drops them."""


class StreamDecoder(_Stream, ABC):
    """Latents in, pixel frames out; the cache carries over between calls until :meth:`reset`."""

    def __init__(self, model: "StreamingAutoencoder"):
        super().__init__(model)
        self.latents_in = 0

    def reset(self) -> None:
        """Forget the previous latents: the next call starts a new clip."""
        self.state, self._shape, self.latents_in = {}, None, 0

    @torch.no_grad()
    def feed(self, latents: torch.Tensor) -> torch.Tensor:
        """Decode the next latents ``(B, F, C, h, w)`` -> float32 frames ``(B, T, 3, 8h, 8w)`` in [-1, 1]
        (``T = 1 + 4(F-1)`` for the first call after a reset, ``4F`` afterwards)."""
        check_latents(latents, self.latent_channels)
        self._same_shape(latents.shape[0], latents.shape[3], latents.shape[4], "latents")
        frames = self._decode(latents.to(self.device, self.dtype))
        self.latents_in += latents.shape[1]
        return frames

    @abstractmethod
    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, F, C, h, w)`` in the model dtype -> float32 frames ``(B, T, 3, H, W)`` in [-1, 1]."""


class StreamingAutoencoder(ABC):
    """Whole-clip ``encode``/``decode`` as thin wrappers over one stream (identical results). Implemented by
    ``nn.Module`` subclasses that also define ``latent_channels`` and ``spatial_factor``."""

    latent_channels: int
    spatial_factor: int

    @abstractmethod
    def stream_encoder(self, tail: Tail = "error") -> StreamEncoder:
        """A new stream encoder (see the module docstring for ``tail``)."""

    @abstractmethod
    def stream_decoder(self) -> StreamDecoder:
        """A new stream decoder with an empty cache."""

    def encode(self, frames: torch.Tensor, tail: Tail = "error") -> torch.Tensor:
        """Frames ``(T, 3, H, W)`` or ``(B, 3, T, H, W)`` in [-1, 1] -> float32 latents ``(B, F, C, H/8, W/8)``.
        The frame count is checked before any work."""
        latent_count(video_frames(frames, self.spatial_factor).shape[2], tail)
        stream = self.stream_encoder(tail)
        return torch.cat([stream.feed(frames), stream.finish()], 1)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, F, C, h, w)`` -> float32 frames ``(B, 1 + 4(F-1), 3, 8h, 8w)`` in [-1, 1]."""
        return self.stream_decoder().feed(latents)
