"""The resolved camera path: one target camera and one source frame per output frame, and how the
generator will consume those frames in chunks.

Frame/latent arithmetic (REFERENCE.md section 7): the Wan VAE folds pixel frame 0 into latent frame 0 and
pixel frames ``4j-3 .. 4j`` into latent frame ``j >= 1``; ``T`` pixel frames give ``1 + (T-1)//4`` latent
frames. The generator denoises chunks of 3 latent frames. The official pipeline drops the latent frames
that do not fill a last chunk (so only ``4*L' - 3`` pixel frames reach its output); we instead repeat the
last frame (source frame and pose) up to ``1 + 4(L-1)`` frames with ``L`` a multiple of 3 and trim the
decoded video, so every output frame is generated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..choices import MODEL_SIZE

LATENTS_PER_CHUNK = 3
FRAMES_PER_LATENT = 4


@dataclass(frozen=True)
class Chunk:
    """One generator chunk: latent frames ``latents`` and the pixel frames ``frames`` they cover."""

    index: int
    latents: range
    frames: range


@dataclass(frozen=True)
class ChunkPlan:
    """How ``num_frames`` output frames are consumed: the chunks in order, covering ``padded_frames``
    pixel frames (``padding`` repeats of the last frame complete the last chunk and are trimmed after
    decoding). ``latent_frames``, ``official_latent_frames`` and ``official_frames`` are the counts of the
    official pipeline, which drops the frames of an incomplete last chunk instead (for reports and parity)."""

    num_frames: int
    chunks: tuple[Chunk, ...]

    @property
    def padded_frames(self) -> int:
        """Pixel frames the chunks cover: ``1 + 4(L-1)`` with ``L`` latent frames a multiple of 3."""
        return self.chunks[-1].frames.stop if self.chunks else 0

    @property
    def padding(self) -> int:
        """Repeats of the last frame that complete the last chunk."""
        return self.padded_frames - self.num_frames

    @property
    def latent_frames(self) -> int:
        """Latent frames of the clip as it is: ``1 + (T-1)//4``."""
        return 1 + (self.num_frames - 1) // FRAMES_PER_LATENT if self.num_frames else 0

    @property
    def official_latent_frames(self) -> int:
        """Latent frames the official pipeline generates (whole chunks only)."""
        return self.latent_frames - self.latent_frames % LATENTS_PER_CHUNK

    @property
    def official_frames(self) -> int:
        """Output frames of the official pipeline (``4L' - 3``, or 0): it drops the rest."""
        return FRAMES_PER_LATENT * self.official_latent_frames - 3 if self.official_latent_frames else 0

    def __iter__(self):
        return iter(self.chunks)

    def __len__(self) -> int:
        return len(self.chunks)


def latent_frame_range(j: int) -> range:
    """The pixel frames folded into latent frame ``j``: ``[0]`` for ``j = 0``, else ``4j-3 .. 4j``."""
    return range(0, 1) if j == 0 else range(FRAMES_PER_LATENT * j - 3, FRAMES_PER_LATENT * j + 1)


def chunk_plan(num_frames: int) -> ChunkPlan:
    """The chunk layout for ``num_frames`` pixel frames (see the module docstring): the first chunk covers
    9 frames, every later one 12; the last one may reach past ``num_frames`` (padding)."""
    if num_frames < 0:
        raise ValueError("num_frames must be >= 0")
    latents = 1 + -(-(num_frames - 1) // FRAMES_PER_LATENT) if num_frames else 0
    chunks = []
    for c in range(-(-latents // LATENTS_PER_CHUNK)):
        lat = range(LATENTS_PER_CHUNK * c, LATENTS_PER_CHUNK * (c + 1))
        chunks.append(Chunk(c, lat, range(latent_frame_range(lat[0])[0], latent_frame_range(lat[-1])[-1] + 1)))
    return ChunkPlan(num_frames, tuple(chunks))


@dataclass(frozen=True)
class Trajectory:
    """Per output frame: where the target camera is and which source frame it shows.

    * ``rel_c2w`` ``(N, 4, 4)`` float64: target camera-to-world relative to the source's first camera,
      OpenCV axes, translations in the depth model's units (metres for metric depth);
    * ``time_map`` ``(N,)`` int64: the source frame shown at each output frame (freeze, slow motion,
      reverse and extension all live here; the identity for a plain rerender);
    * ``K`` ``(N, 3, 3)`` float64 or ``None``: per-frame target intrinsics in pixels of ``size``
      (``None``: the target uses the source intrinsics);
    * ``size`` ``(H, W)``: the image size ``K`` refers to;
    * ``num_source_frames``: frames of the source video the time map indexes;
    * ``meta``: how the path was made (format, file, conventions, interpolation...), for reports.
    """

    rel_c2w: torch.Tensor
    time_map: torch.Tensor
    num_source_frames: int
    K: torch.Tensor | None = None
    size: tuple[int, int] = MODEL_SIZE
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.rel_c2w.shape[0]
        if tuple(self.rel_c2w.shape) != (n, 4, 4) or self.rel_c2w.dtype != torch.float64:
            raise ValueError(f"rel_c2w must be float64 (N, 4, 4), got {self.rel_c2w.dtype} {tuple(self.rel_c2w.shape)}")
        if tuple(self.time_map.shape) != (n,) or self.time_map.dtype != torch.int64:
            raise ValueError(f"time_map must be int64 ({n},), got {self.time_map.dtype} {tuple(self.time_map.shape)}")
        if n and (int(self.time_map.min()) < 0 or int(self.time_map.max()) >= self.num_source_frames):
            raise ValueError(f"time_map indexes outside the {self.num_source_frames} source frames")
        if self.K is not None and (tuple(self.K.shape) != (n, 3, 3) or self.K.dtype != torch.float64):
            raise ValueError(f"K must be float64 ({n}, 3, 3), got {self.K.dtype} {tuple(self.K.shape)}")

    def __len__(self) -> int:
        return int(self.rel_c2w.shape[0])

    @property
    def num_frames(self) -> int:
        return len(self)

    def chunks(self) -> ChunkPlan:
        """How the generator will consume these frames, including the padding of the last chunk."""
        return chunk_plan(len(self))

    def K_at(self, size: tuple[int, int]) -> torch.Tensor | None:
        """The per-frame target intrinsics rescaled to ``size`` (H, W), or ``None`` without them."""
        if self.K is None:
            return None
        K = self.K.clone()
        K[:, 0] *= size[1] / self.size[1]
        K[:, 1] *= size[0] / self.size[0]
        return K
