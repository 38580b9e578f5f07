"""The resolved camera path: one target camera and one source frame per output frame, and how the
generator will consume those frames in chunks.

Frame/latent arithmetic (REFERENCE.md section 7): the Wan VAE folds pixel frame 0 into latent frame 0 and
pixel frames ``4j-3 .. 4j`` into latent frame ``j >= 1``; ``T`` pixel frames give ``1 + (T-1)//4`` latent
frames. The generator denoises chunks of 3 latent frames and drops the latent frames that do not fill a
last chunk, so only the first ``4*L' - 3`` pixel frames (``L'`` = latent frames used) reach the output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..video import MODEL_SIZE

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
    """How ``num_frames`` output frames are consumed: the chunks in order, the latent frame count the
    VAE produces, and the trailing pixel frames that no chunk covers (``dropped``, possibly empty)."""

    num_frames: int
    latent_frames: int
    chunks: tuple[Chunk, ...]
    dropped: range

    @property
    def used_frames(self) -> int:
        """Pixel frames that reach the output (``4 * latent frames used - 3``, or 0)."""
        return self.num_frames - len(self.dropped)

    @property
    def latent_frames_used(self) -> int:
        return LATENTS_PER_CHUNK * len(self.chunks)

    def __iter__(self):
        return iter(self.chunks)

    def __len__(self) -> int:
        return len(self.chunks)


def latent_frame_range(j: int) -> range:
    """The pixel frames folded into latent frame ``j``: ``[0]`` for ``j = 0``, else ``4j-3 .. 4j``."""
    return range(0, 1) if j == 0 else range(FRAMES_PER_LATENT * j - 3, FRAMES_PER_LATENT * j + 1)


def chunk_plan(num_frames: int) -> ChunkPlan:
    """The chunk layout for ``num_frames`` pixel frames (see the module docstring). Fewer than 9
    frames give no chunk at all: every frame is reported as dropped."""
    if num_frames < 0:
        raise ValueError("num_frames must be >= 0")
    latent = 1 + (num_frames - 1) // FRAMES_PER_LATENT if num_frames > 0 else 0
    used_latent = latent - latent % LATENTS_PER_CHUNK
    chunks = []
    for c in range(used_latent // LATENTS_PER_CHUNK):
        lat = range(LATENTS_PER_CHUNK * c, LATENTS_PER_CHUNK * (c + 1))
        chunks.append(Chunk(c, lat, range(latent_frame_range(lat[0])[0], latent_frame_range(lat[-1])[-1] + 1)))
    used = FRAMES_PER_LATENT * used_latent - 3 if used_latent else 0
    return ChunkPlan(num_frames, latent, tuple(chunks), range(used, num_frames))


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
        """How the generator will consume these frames, including the trailing frames it drops."""
        return chunk_plan(len(self))

    def K_at(self, size: tuple[int, int]) -> torch.Tensor | None:
        """The per-frame target intrinsics rescaled to ``size`` (H, W), or ``None`` without them."""
        if self.K is None:
            return None
        K = self.K.clone()
        K[:, 0] *= size[1] / self.size[1]
        K[:, 1] *= size[0] / self.size[0]
        return K
