"""The render rules of each model, and the v1.5 render stage around the warp: several source views,
reference views and frame counts.

:class:`RenderRules` (:func:`render_rules`) is what ``--model world|world-1.5`` changes in the render,
chosen once per render and carried by the plan, the scene and the stream.

InSpatio-World v1.5 (REFERENCE-v1.5.md R4-R7) renders a video, one image or several images ("views") of
one scene into a target camera path:

* every target frame warps each view in its own call (:data:`inspatio_cli.warp.V15_RULES`: per-call soft
  z-buffer, each view's own K for unprojection, frame 0's K for the target) and the views are merged in
  view order, the closer point winning (strict ``<``) (:func:`warp_views`, :func:`merge_views`). A video
  scene is the one-view case per frame and calls :func:`inspatio_cli.warp.forward_warp` directly;
* for each chunk of 3 latent frames, :func:`select_chunk_top3` chooses which view image is the reference
  frame of each latent (the render still merges all views);
* the generator sees whole chunks: the valid frames, then the last valid one repeated up to
  :func:`inspatio_cli.cameras.chunk_plan`'s ``padded_frames`` (:func:`padded_frame_indices`), the rule this
  tool already applies to v1 (:meth:`inspatio_cli.scene.Scene.padded`); only the valid frames are written
  out. :func:`padded_mask_latents` is the mask channels of that padded stream.

Frames are float ``(T, 3, H, W)`` in [-1, 1]; depth is z-depth in model units, 0 (or less) where unknown;
cameras are OpenCV world-to-camera ``(4, 4)`` and ``K (3, 3)`` in pixels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from itertools import permutations
from typing import Sequence

import torch

from .cameras.render import RenderCameras
from .cameras.trajectory import LATENTS_PER_CHUNK, chunk_plan, latent_frame_range
from .errors import UsageError
from .warp import HOLE, V1_RULES, V15_RULES, WarpRules, forward_warp_distance, mask_to_latent_channels


@dataclass(frozen=True)
class RenderRules:
    """How a model release renders its condition (REFERENCE-v1.5.md R0, R4, R5): chosen once per render by
    the ``--model`` name (:func:`render_rules`) and carried by the plan, the scene and the stream.

    ``model``: the ``--model`` name; ``warp``: the splat rules (:class:`~inspatio_cli.warp.WarpRules`);
    ``stored_k``: unproject each source frame or view with its own K as the depth stage stored it and
    render every target with frame 0's (v1.5), rather than frame 0's K recentred for both (v1);
    ``clip_depth``: clip depth to :data:`inspatio_cli.scene.DEPTH_RANGE` before warping (v1; v1.5 keeps
    it as it is and never splats depth <= 0); ``cover_crop``: a source whose aspect differs from the
    canvas is scaled to cover it and centre-cropped instead of stretched (v1.5, :meth:`fit_mode`).
    """

    model: str
    warp: WarpRules
    stored_k: bool
    clip_depth: bool
    cover_crop: bool

    def fit_mode(self, requested: str, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> str:
        """The fit this model uses for ``requested`` (a ``--fit`` mode) from ``src_hw`` onto ``dst_hw``:
        with :attr:`cover_crop`, ``stretch`` (the default) becomes ``crop`` where the aspects differ, as
        v1.5 prepares a video; any other request, and every v1 request, is kept."""
        if not self.cover_crop or requested != "stretch":
            return requested
        (sh, sw), (dh, dw) = src_hw, dst_hw
        return "stretch" if sw * dh == dw * sh else "crop"

    def for_source(self, kind: str) -> "RenderRules":
        """The rules for a source of ``kind``: views are warped by v1.5's rules whatever the model (only
        v1.5 defines the multi-view merge), with :attr:`model` kept (it chooses the generator)."""
        if kind != "views" or self.stored_k:
            return self
        return dataclasses.replace(RENDER_RULES["world-1.5"], model=self.model)


RENDER_RULES = {
    "world": RenderRules("world", V1_RULES, stored_k=False, clip_depth=True, cover_crop=False),
    "world-1.5": RenderRules("world-1.5", V15_RULES, stored_k=True, clip_depth=False, cover_crop=True),
}
"""The render rules of each ``--model`` (the names of :data:`inspatio_cli.render.needs.GENERATOR_WEIGHTS`)."""


def render_rules(model: str = "world") -> RenderRules:
    """The :class:`RenderRules` of ``model``; :class:`UsageError` for an unknown name."""
    if model not in RENDER_RULES:
        raise UsageError(f"unknown model {model!r} (choose {' or '.join(RENDER_RULES)})")
    return RENDER_RULES[model]


def stored_intrinsics(cameras: RenderCameras, K: torch.Tensor, own_target: bool = False) -> RenderCameras:
    """``cameras`` with v1.5's intrinsics (REFERENCE-v1.5.md R0 #4): each output frame unprojects its source
    frame with that frame's own ``K`` as stored (``K`` (T, 3, 3) or (3, 3), pixels of the canvas, not
    recentred) and every target uses frame 0's, unless the trajectory brings its own (``own_target``)."""
    stored = K.float().reshape(-1, 3, 3)
    index = cameras.source_index if len(stored) > 1 else torch.zeros_like(cameras.source_index)
    target = cameras.target_K if own_target else stored[0].expand(len(index), 3, 3).clone()
    return dataclasses.replace(cameras, K=stored[index].clone(), target_K=target)


def latent_frame_groups(frames: int) -> list[range]:
    """The pixel frames of each latent frame of a ``frames``-frame clip: ``[0]``, ``[1..4]``, ``[5..8]``, ...
    (the last group may be shorter), as the official ``latent_frame_groups``."""
    groups = (latent_frame_range(j) for j in range(frames))
    return [range(group.start, min(group.stop, frames)) for group in groups if group.start < frames]


def padded_frame_indices(valid_frames: int) -> torch.Tensor:
    """Which frame the generator sees at each padded position: ``min(p, valid_frames - 1)`` for ``p`` in
    ``0 .. P - 1``, ``P`` the whole chunks' frames (:func:`inspatio_cli.cameras.chunk_plan`; 139 -> 141,
    247 -> 249, 1000 -> 1005), so the last valid frame is repeated. (P,) int64."""
    if valid_frames < 1:
        raise ValueError(f"a clip has at least one frame, got {valid_frames}")
    return torch.arange(chunk_plan(valid_frames).padded_frames).clamp_max(valid_frames - 1)


def padded_mask_latents(mask: torch.Tensor, valid_frames: int) -> torch.Tensor:
    """The generator's mask channels for the padded stream: ``mask`` (T, H, W) or (T, 1, H, W) in {0, 1}
    with ``T >= valid_frames`` -> (1, L, 4, H/8, W/8) float32, ``L`` a multiple of 3
    (:func:`inspatio_cli.warp.mask_to_latent_channels` of the frames :func:`padded_frame_indices` picks)."""
    frames = mask.reshape(mask.shape[0], *mask.shape[-2:])
    return mask_to_latent_channels(frames[padded_frame_indices(valid_frames).to(frames.device)][None])


def image_to_model(images: torch.Tensor) -> torch.Tensor:
    """uint8 RGB ``(..., H, W, 3)`` -> float32 ``(..., 3, H, W)`` in [-1, 1] as v1.5 prepares a source
    (``u8 / 127.5 - 1``; v1's video path divides by 255 first, which rounds differently)."""
    return images.movedim(-1, -3).float() / 127.5 - 1


@dataclass(frozen=True)
class ViewsRender:
    """Target frames rendered from several views. ``render`` (T, 3, H, W) in [-1, 1], holes -1; ``mask``
    (T, 1, H, W) float32 {0, 1}, known in any view; ``depth`` (T, H, W) the merged target z (inf where no
    view is known); ``known_per_view`` (T, V, H, W) bool: each view's own coverage before the merge."""

    render: torch.Tensor
    mask: torch.Tensor
    depth: torch.Tensor
    known_per_view: torch.Tensor


def merge_views(renders: Sequence[torch.Tensor], distances: Sequence[torch.Tensor],
                masks: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Merge per-view warps of the same target frames, the closer point winning.

    Per view ``v`` in order: ``renders[v]`` (T, 3, H, W), ``distances[v]`` (T, H, W) the splatted target z,
    ``masks[v]`` (T, 1, H, W) or (T, H, W) in {0, 1}. The first view sets the result; a later view replaces
    it where it is known and strictly closer, so an exact tie keeps the earlier view. Returns ``render``
    (T, 3, H, W) with holes -1, ``mask`` (T, 1, H, W) float32 and ``depth`` (T, H, W) (inf in holes).
    """
    fused = fused_depth = fused_mask = None
    for rgb, distance, mask in zip(renders, distances, masks, strict=True):
        known = mask.reshape(distance.shape) > 0
        if fused is None:
            fused, fused_depth, fused_mask = rgb, torch.where(known, distance, torch.inf), known
            continue
        closer = known & (distance < fused_depth)
        fused = torch.where(closer[:, None], rgb, fused)
        fused_depth = torch.where(closer, distance, fused_depth)
        fused_mask = fused_mask | known
    if fused is None:
        raise ValueError("merge_views needs at least one view")
    return torch.where(fused_mask[:, None], fused, HOLE), fused_mask[:, None].float(), fused_depth


def warp_views(images: torch.Tensor, depth: torch.Tensor, source_w2c: torch.Tensor, K: torch.Tensor,
               target_w2c: torch.Tensor, K_target: torch.Tensor | None = None) -> ViewsRender:
    """Render target frames from still views (one image, or the views of a multi-image scene).

    ``images`` (V, 3, H, W) in [-1, 1]; ``depth`` (V, H, W) z-depth, <= 0 where unknown (never splatted);
    ``source_w2c`` (V, 4, 4) and ``K`` (V, 3, 3): each view's camera, ``K`` used to unproject it;
    ``target_w2c`` (T, 4, 4); ``K_target`` (3, 3) or per frame (T, 3, 3), default ``K[0]`` (v1.5 renders
    every target with the first view's K). Each (target frame, view) pair is its own warp (own ``Lmax``);
    the views are merged by :func:`merge_views`. With one view the result is that view's warp. Target
    frames are independent, so a long path can be rendered a chunk of ``target_w2c`` at a time (the whole path at once needs
    a few tens of floats per pixel of every target frame on a GPU).
    """
    t, v = target_w2c.shape[0], images.shape[0]
    k_target = (K[0] if K_target is None else K_target).expand(t, 3, 3)
    renders, distances, masks = [], [], []
    for i in range(v):
        render, mask, distance = forward_warp_distance(
            images[i].expand(t, *images.shape[1:]), depth[i].expand(t, *depth.shape[1:]),
            source_w2c[i].expand(t, 4, 4), target_w2c, K[i].expand(t, 3, 3), k_target, rules=V15_RULES)
        renders.append(render)
        distances.append(distance)
        masks.append(mask)
    render, mask, fused_depth = merge_views(renders, distances, masks)
    return ViewsRender(render, mask, fused_depth, torch.cat(masks, 1) > 0)


def overlap_pixels(known_per_view: torch.Tensor) -> torch.Tensor:
    """Known pixels of each view per latent group: ``known_per_view`` (T, V, H, W) -> (G, V) int64, row
    ``g`` summing the frames of :func:`latent_frame_groups` ``(T)[g]`` (the input of :func:`select_chunk_top3`)."""
    counts = known_per_view.flatten(2).sum(2, dtype=torch.int64)
    return torch.stack([counts[group.start:group.stop].sum(0) for group in latent_frame_groups(counts.shape[0])])


def select_chunk_top3(overlap: Sequence[Sequence[int]] | torch.Tensor) -> tuple[list[int], list[list[int]]]:
    """The reference view of each latent group (v1.5's ``select_chunk_top3``).

    ``overlap`` (G, V): known pixels of view ``v`` in latent group ``g`` (:func:`overlap_pixels`), with G a
    multiple of 3 and V >= 3. Per chunk of 3 groups, the 3 views with the largest totals (ties: lower index)
    are assigned one per group so that the summed overlap is largest (ties: the lexicographically smallest
    view tuple). Returns ``source_indices`` (one view per group) and ``chunk_views`` (per chunk, its 3 views
    by decreasing total).
    """
    rows = [[int(x) for x in row] for row in (overlap.tolist() if isinstance(overlap, torch.Tensor) else overlap)]
    if len(rows) % LATENTS_PER_CHUNK or any(len(row) != len(rows[0]) for row in rows) or (
            rows and len(rows[0]) < LATENTS_PER_CHUNK):
        raise ValueError(f"overlap must be (G, V) with G a multiple of {LATENTS_PER_CHUNK} and V >= "
                         f"{LATENTS_PER_CHUNK}, got {len(rows)} rows of {sorted({len(r) for r in rows})}")
    choices: list[int] = []
    chunk_views: list[list[int]] = []
    for start in range(0, len(rows), LATENTS_PER_CHUNK):
        chunk = rows[start:start + LATENTS_PER_CHUNK]
        totals = [sum(column) for column in zip(*chunk)]
        top = sorted(range(len(totals)), key=lambda view: (-totals[view], view))[:LATENTS_PER_CHUNK]
        best = min(permutations(top), key=lambda views: (-sum(row[view] for row, view in zip(chunk, views)), views))
        choices.extend(best)
        chunk_views.append(top)
    return choices, chunk_views


def source_view_per_frame(source_indices: Sequence[int], frames: int) -> torch.Tensor:
    """The view shown as the reference image at each pixel frame: the view of the frame's latent group.
    ``source_indices`` (G,) from :func:`select_chunk_top3`; returns (frames,) int64."""
    groups = latent_frame_groups(frames)
    if len(groups) != len(source_indices):
        raise ValueError(f"{frames} frames make {len(groups)} latent groups, got {len(source_indices)} views")
    return torch.tensor([view for group, view in zip(groups, source_indices) for _ in group], dtype=torch.int64)
