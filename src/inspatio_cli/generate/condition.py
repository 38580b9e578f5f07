"""The generator's latent condition, built chunk by chunk from the warped scene.

Per generator chunk the STAR loop needs three latents of the same 3 latent frames (:class:`~.star.ChunkInput`):
the source frames encoded, the warped frames encoded, and the validity mask folded into its 4 latent
channels. :class:`ChunkFeeder` makes them from :class:`~inspatio_cli.scene_stream.WarpedChunk` s with two stream
encoders:

* the warped frames reach the encoder on the 8-bit levels of the official render video
  (:func:`quantize`), without its H.264 noise;
* the mask goes in exactly (:func:`~inspatio_cli.warp.mask_to_latent_channels`), not through the official
  lossy mask video;
* the encoders emit latents in their own groupings (the Wan VAE with a chunk's own frames, TAEHV 3 frames
  late), so :class:`LatentQueue` regroups them into chunks of 3 latent frames.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch

from ..meter import StageMeter
from ..models.vae import StreamingAutoencoder
from ..scene_stream import WarpedChunk
from ..warp import mask_to_latent_channels
from .star import FRAMES_PER_CHUNK, ChunkInput


def quantize(frames: torch.Tensor) -> torch.Tensor:
    """Frames ``(..., 3, H, W)`` in [-1, 1] moved onto the 8-bit levels of the official render video:
    ``trunc((x+1)*127.5)`` clamped to 0..255 (as :func:`video.to_uint8`), read back as ``u8/255*2-1``.
    Returns float32 in [-1, 1] of the same shape, on the frames' device."""
    return torch.trunc(((frames.float() + 1.0) * 127.5).clamp(0, 255)) / 255 * 2 - 1


class LatentQueue:
    """Latents ``(B, F, C, h, w)`` that arrive in any grouping along F, handed out ``count`` latent frames
    (default one generator chunk, 3) at a time, in order."""

    def __init__(self) -> None:
        self.parts: list[torch.Tensor] = []

    def __len__(self) -> int:
        """Latent frames held."""
        return sum(p.shape[1] for p in self.parts)

    def put(self, latents: torch.Tensor) -> None:
        """Append ``latents`` ``(B, F, C, h, w)``; an empty group (F = 0) is ignored."""
        if latents.shape[1]:
            self.parts.append(latents)

    def take(self, count: int = FRAMES_PER_CHUNK) -> torch.Tensor:
        """The next ``count`` latent frames ``(B, count, C, h, w)`` (fewer when fewer are held)."""
        joined = torch.cat(self.parts, 1)
        self.parts = [joined[:, count:]] if joined.shape[1] > count else []
        return joined[:, :count]


class ChunkFeeder:
    """Warped chunks in, generator inputs out.

    ``chunks``: the scene's warped chunks in output order (:func:`~inspatio_cli.scene_stream.warped_chunks` over the
    generator's chunk plan); ``autoencoder``: makes the two stream encoders (source frames, quantised warped
    frames); ``meter``: times pulling the next warped chunk as ``warp`` and encoding as ``encode``;
    ``on_chunk``: sees every warped chunk before it is encoded (coverage, condition videos).

    :meth:`next` pulls warped chunks until the encoders have produced one chunk's latents, so at most two
    chunks of latents are ever held (TAEHV emits a chunk's latents only with the next chunk's first frames,
    or at the end).
    """

    def __init__(self, autoencoder: StreamingAutoencoder, chunks: Iterator[WarpedChunk], meter: StageMeter,
                 on_chunk: Callable[[WarpedChunk], None]):
        self.source, self.warped = autoencoder.stream_encoder(), autoencoder.stream_encoder()
        self.chunks, self.meter, self.on_chunk = chunks, meter, on_chunk
        self.queues = {"reference": LatentQueue(), "warped": LatentQueue(), "mask": LatentQueue()}
        self.finished = False

    def next(self) -> ChunkInput:
        """The next chunk's latents, each ``(1, 3, C, H/8, W/8)`` float32: the source frames' (C = 16), the
        quantised warped frames' (C = 16) and the mask's channels (C = 4, values in {-1, -0.5, 0, 0.5, 1})."""
        queues, meter = self.queues, self.meter
        while len(queues["reference"]) < FRAMES_PER_CHUNK and not self.finished:
            with meter("warp"):
                chunk = next(self.chunks, None)
            if chunk is None:
                with meter("encode"):
                    queues["reference"].put(self.source.finish())
                    queues["warped"].put(self.warped.finish())
                self.finished = True
                continue
            self.on_chunk(chunk)
            with meter("encode"):
                queues["reference"].put(self.source.feed(chunk.source))
                queues["warped"].put(self.warped.feed(quantize(chunk.warped)))
                queues["mask"].put(mask_to_latent_channels(chunk.mask[:, 0][None], first=chunk.frames.start == 0))
        return ChunkInput(queues["reference"].take(), queues["warped"].take(), queues["mask"].take())
