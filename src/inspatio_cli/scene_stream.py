"""The scene streamed: source frames decoded in output-frame order and warped chunk by chunk.

:func:`warped_chunks` turns a :class:`~inspatio_cli.scene.Scene` (cameras, depth, fit: no pixels) into
:class:`WarpedChunk` s, decoding the source lazily. Memory stays bounded whatever the video length: besides
the depth maps, only a chunk of frames and a small look-back buffer of decoded frames (for time edits that show
a frame again, such as reverse or ping-pong) are held. The chunks are warped with the scene's clip-wide
``Lmax`` (:meth:`Scene.log_depth_max <inspatio_cli.scene.Scene.log_depth_max>`), so the result equals the
official all-frames-at-once render.

A views source (:mod:`inspatio_cli.video.multiview`) is warped per generator chunk of 3 latent frames
(whatever chunk size is asked): every view into each target frame, merged, and each latent frame's
reference image chosen by v1.5's :func:`~inspatio_cli.views.select_chunk_top3` from the views' own coverage.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch

from .errors import VideoError
from .progress import Reporter
from .scene import Scene, frame_ranges, to_device
from .video import Prefetch, iter_frames
from .views import latent_frame_groups, select_chunk_top3

LOOKBACK_FRAMES = 32
"""Decoded frames kept for reuse by time edits that show a frame again (reverse, ping-pong, slow motion);
a frame needed again after being evicted is decoded again."""
PREFETCH_FRAMES = 12
"""Source frames decoded and fitted ahead on a background thread (one generator chunk), so decoding
overlaps the warp, the models and the writer."""


@dataclass
class WarpedChunk:
    """Consecutive output frames ``frames`` (a range) of a scene.

    ``source`` (n, 3, H, W) in [-1, 1]: the source frames shown; ``warped`` (n, 3, H, W) in [-1, 1], holes
    -1; ``mask`` (n, 1, H, W) in {0, 1}; ``source_index`` (n,) int64: which source frame each one shows
    (for views: the reference view of the frame's latent group).
    """

    frames: range
    source: torch.Tensor
    warped: torch.Tensor
    mask: torch.Tensor
    source_index: torch.Tensor


def warped_chunks(scene: Scene, chunks: int | Iterable[range] = 12, *, device: torch.device | str = "cpu",
                  skip_bad_frames: bool = False, stats: dict | None = None,
                  reporter: Reporter | None = None) -> Iterator[WarpedChunk]:
    """Warp ``scene`` chunk by chunk, in output-frame order.

    ``chunks``: a chunk size, or the consecutive frame ranges to yield (e.g. the generator's chunk plan).
    The clip-wide ``Lmax`` is computed first, so the result equals warping all frames in one call.
    ``skip_bad_frames``: source frames that do not decode are replaced by the previous good one
    (:func:`~inspatio_cli.video.iter_frames`) instead of raising :class:`VideoError`;
    ``stats["lost_frames"]`` then counts them (distinct source frames, kept up to date).
    Progress: a ``warp`` stage advancing per frame.
    """
    reporter = reporter or Reporter("silent")
    if scene.views is not None and isinstance(chunks, int):
        chunks = [c.frames for c in scene.trajectory.chunks()]
    ranges = list(frame_ranges(scene.num_frames, chunks) if isinstance(chunks, int) else chunks)
    lmax = scene.log_depth_max(str(device), reporter=reporter)
    with contextlib.closing(ChunkWarper(scene, device, skip_bad_frames, stats)) as warper, \
            reporter.stage("warp", total=sum(len(r) for r in ranges)) as stage:
        for frames in ranges:
            yield _counted(warper.warp(frames, lmax), stage)


def _counted(chunk: WarpedChunk, stage) -> WarpedChunk:
    """``chunk``, its frames counted on the progress ``stage`` (a function of its own, so the suspended
    generator of :func:`warped_chunks` holds no reference to the chunk it handed out)."""
    stage.advance(len(chunk.frames), frame=chunk.frames.stop - 1)
    return chunk


class ChunkWarper:
    """Warps the output frames of ``scene`` one chunk at a time, in output order, decoding the source
    lazily (:func:`warped_chunks` and the render session's steps both use it).

    The scene's cameras are read when a chunk is warped, so a caller that steps through the scene may set
    a chunk's cameras just before warping it (a live render session). ``device``: where the warp runs;
    ``skip_bad_frames`` and ``stats``: as :func:`warped_chunks`. :meth:`close` stops the decoder.
    A views source (``scene.views``) is read once; its chunks must be the generator's (whole latent groups).
    """

    def __init__(self, scene: Scene, device: torch.device | str = "cpu", skip_bad_frames: bool = False,
                 stats: dict | None = None):
        self.scene, self.device = scene, str(device)
        if scene.views is None:
            self.source, self.views = _SourceFrames(scene, scene.cameras.source_index.numpy(), skip_bad_frames,
                                                    stats), None
        else:
            self.source, self.views = None, to_device(scene.fit.frames(scene.views.read()), self.device)
            if stats is not None:
                stats["lost_frames"] = 0

    def warp(self, frames: range, lmax: torch.Tensor | None) -> WarpedChunk:
        """The next chunk, output frames ``frames`` (following the previous chunk), warped with the soft
        z-buffer maximum ``lmax`` (a scalar tensor, see :mod:`inspatio_cli.warp`; ``None``: each frame's own,
        the v1.5 rule)."""
        scene = self.scene
        if self.views is not None:
            return self._warp_views(frames)
        images = to_device(torch.stack([self.source.frame(k) for k in frames]), self.device)
        warped, mask = scene.warp(frames, images, lmax)
        return WarpedChunk(frames, images, warped, mask, scene.cameras.source_index[frames.start:frames.stop])

    def _warp_views(self, frames: range) -> WarpedChunk:
        """A views chunk: the merged warp of every view and, per latent group, the reference view of
        :func:`~inspatio_cli.views.select_chunk_top3` over each view's known pixels in the group."""
        scene, images = self.scene, self.views
        inside = [g for g in latent_frame_groups(scene.num_frames) if frames.start <= g.start and g.stop <= frames.stop]
        if sum(len(g) for g in inside) != len(frames):
            raise ValueError(f"frames {frames} are not whole latent groups of {scene.num_frames} frames")
        render = scene.warp_views(frames, images)
        counts = render.known_per_view.flatten(2).sum(2, dtype=torch.int64).cpu()
        overlap = torch.stack([counts[g.start - frames.start:g.stop - frames.start].sum(0) for g in inside])
        chosen, _ = select_chunk_top3(overlap)
        index = torch.tensor([view for g, view in zip(inside, chosen) for _ in g], dtype=torch.int64)
        return WarpedChunk(frames, images[index.to(images.device)], render.render, render.mask, index)

    def close(self) -> None:
        if self.source is not None:
            self.source.close()


class _SourceFrames:
    """Fitted source frames in the order the output needs them (``order[k]`` for output frame k).

    Decodes sequentially; keeps a decoded frame while a later output frame will show it, up to
    :data:`LOOKBACK_FRAMES` frames (evicting the one needed farthest ahead), and restarts decoding when a
    frame behind the decoder is needed and was not kept. Decoding and fitting run :data:`PREFETCH_FRAMES`
    frames ahead on a background thread (:class:`~inspatio_cli.video.Prefetch`). Memory: at most
    LOOKBACK_FRAMES + PREFETCH_FRAMES + 2 frames.
    ``stats["lost_frames"]``: with ``skip_bad``, the source frames replaced so far (every decoder run starts
    at the first frame, so the run that got furthest has seen them all).
    """

    def __init__(self, scene: Scene, order: np.ndarray, skip_bad: bool = False, stats: dict | None = None):
        self.path, self.fit, self.order = scene.video.path, scene.fit, order
        self.skip_bad, self.stats = skip_bad, stats if stats is not None else {}
        self.stats["lost_frames"] = 0
        self.total = scene.video.frame_count
        self.uses: dict[int, list[int]] = {}
        for k in range(len(order) - 1, -1, -1):
            self.uses.setdefault(int(order[k]), []).append(k)  # reversed: the next use is at the end
        self.kept: dict[int, torch.Tensor] = {}
        self.decoder: Prefetch | None = None
        self.position = -1

    def frame(self, k: int) -> torch.Tensor:
        """The fitted source frame (3, H, W) shown at output frame ``k`` (frames are asked for in order)."""
        s = int(self.order[k])
        image = self.kept.pop(s, None)
        if image is None:
            image = self._decode_until(s, k)
        self.uses[s].pop()
        if self.uses[s]:
            self._keep(s, image)
        return image

    def _next_use(self, s: int) -> int:
        return self.uses[s][-1] if self.uses.get(s) else -1

    def _keep(self, s: int, image: torch.Tensor) -> None:
        self.kept[s] = image
        if len(self.kept) > LOOKBACK_FRAMES:
            farthest = max(self.kept, key=self._next_use)
            del self.kept[farthest]

    def _decode_until(self, s: int, k: int) -> torch.Tensor:
        if s <= self.position:
            self.close()
        if self.decoder is None:
            # start at the earliest frame needed soon, so a reversed run is decoded once, not once per frame
            soon = [int(f) for f in self.order[k:k + LOOKBACK_FRAMES] if int(f) not in self.kept]
            start = min(soon)
            self.decoder = Prefetch(lambda: self._fitted(start), PREFETCH_FRAMES, name="inspatio-decode")
            self.position = start - 1
        while True:
            try:
                image, skipped = next(self.decoder)
            except StopIteration:
                raise VideoError(f"only {self.position + 1} of {self.total} frames could be decoded; the depth "
                                 "and trajectory expect all of them", self.path) from None
            self.stats["lost_frames"] = max(self.stats["lost_frames"], skipped)
            self.position += 1
            if self.position == s:
                return image
            if self._next_use(self.position) > k:
                self._keep(self.position, image)

    def _fitted(self, start: int) -> Iterator[tuple[torch.Tensor, int]]:
        """Fitted frames (3, H, W) from source frame ``start`` on, each with the number of frames replaced
        so far in this run (``skip_bad``); runs on the prefetch thread."""
        run: dict = {}
        for _, raw in iter_frames(self.path, start_frame=start, skip_bad_frames=self.skip_bad, stats=run):
            yield self.fit.frames(raw[None])[0], run.get("skipped", 0)

    def close(self) -> None:
        if self.decoder is not None:
            self.decoder.close()
        self.decoder = None
        self.position = -1
