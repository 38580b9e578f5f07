"""Golden checks for ``warp15_*`` (component ``warp15``): the v1.5 render stage (REFERENCE-v1.5.md R4-R7).

Dispatched on the ``case`` metadata (``video_``, ``image_``, ``multiview_``, ``select_top3``,
``framecount``), never on the file name. Tolerances (``warp15.md``): per frame the mask may differ on at
most 0.5% of pixels; render within 1e-4 and distance within 1e-4 * distance on at least 99% of the pixels
known in both; ``render_uint8`` within 1 on at least 99% of all pixels; mask channels within 1e-6 given the
same mask; indices, counts and view choices exact.
"""

from __future__ import annotations

import torch

from inspatio_cli.cameras import chunk_plan
from inspatio_cli.scene import padded_length
from inspatio_cli.video import to_uint8
from inspatio_cli.views import (image_to_model, latent_frame_groups, overlap_pixels, padded_frame_indices,
                                padded_mask_latents, select_chunk_top3, source_view_per_frame, warp_views)
from inspatio_cli.warp import V15_RULES, forward_warp_distance, log_depth_max, mask_to_video
from media import mask_from_video

from .common import GoldenCase, assert_close
from .warp import MASK_FLIP_FRACTION, RENDER_FRACTION, assert_warp_close

DISTANCE_RTOL = 1e-4
UINT8_FRACTION = 0.99


def check(case: GoldenCase) -> None:
    name = case.meta["case"]
    for prefix, run in (("video_", _check_video), ("image_", _check_views), ("multiview_", _check_views),
                        ("select_top3", _check_select), ("framecount", _check_framecount)):
        if name.startswith(prefix):
            run(case)
            return
    raise AssertionError(f"unknown warp15 case {name!r}")


def _check_video(case: GoldenCase) -> None:
    """One call per frame: source frame i with its own K, target i with frame 0's K."""
    depth, k, source, target = (case[f"input.{n}"] for n in ("depth", "source_k", "source_tcw", "target_tcw"))
    n = depth.shape[0]
    k_target = k[:1].expand(n, 3, 3)
    assert_close("target_k", k[0], case["output.target_k"], 0.0, 0.0)
    images = image_to_model(case["input.frames_uint8"])
    render, mask, distance = forward_warp_distance(images, depth, source, target, k, k_target, rules=V15_RULES)
    assert_close("log_depth_max", log_depth_max(depth, source, target, k, k_target, per_frame=True),
                 case["output.log_depth_max"], 1e-6, 1e-6)
    _check_render(case, render, mask, distance, "distance")
    valid = case.config["valid_frames"]
    assert_close("padded_source_index", padded_frame_indices(valid), case["output.padded_source_index"], 0, 0)


def _check_views(case: GoldenCase) -> None:
    """One image or 4 views, each splatted into every target frame and merged closer-wins; the reference
    view of every latent group (multi-view), or the image (single)."""
    cfg = case.config
    if "input.images_uint8" in case:
        images, depth = case["input.images_uint8"], case["input.depth"]
    else:
        images, depth = case["input.image_uint8"][None], case["input.depth"][None]
    out = warp_views(image_to_model(images), depth, case["input.source_tcw"], case["input.source_k"],
                     case["input.target_tcw"])
    depth_name = "fused_depth" if "output.fused_depth" in case else "distance"
    _check_render(case, out.render, out.mask, out.depth, depth_name)
    padded = padded_frame_indices(cfg["valid_frames"])
    if cfg["views"] == 1:
        assert_close("padded_source_index", torch.zeros_like(padded), case["output.padded_source_index"], 0, 0)
        return
    for v in range(cfg["views"]):
        _assert_masks_close(out.known_per_view[:, v], case["output.known_per_view"][:, v] > 0, f"known_per_view[{v}]")
    overlap = overlap_pixels(out.known_per_view)
    assert_close("overlap_pixels", overlap, case["output.overlap_pixels"], 0, 0)
    expected_indices, expected_chunks = case["output.source_indices"], case["output.chunk_views"]
    for label, table in (("ours", overlap), ("official", case["output.overlap_pixels"])):
        indices, chunks = select_chunk_top3(table)
        assert_close(f"source_indices ({label} overlap)", torch.tensor(indices), expected_indices, 0, 0)
        assert_close(f"chunk_views ({label} overlap)", torch.tensor(chunks), expected_chunks, 0, 0)
    per_frame = source_view_per_frame(expected_indices.tolist(), cfg["frames"])
    assert_close("source_view_per_frame", per_frame, case["output.source_view_per_frame"], 0, 0)
    assert_close("padded_source_index", per_frame[padded], case["output.padded_source_index"], 0, 0)


def _check_render(case: GoldenCase, render: torch.Tensor, mask: torch.Tensor, depth: torch.Tensor,
                  depth_name: str) -> None:
    """Render, mask, target depth, encoder bytes, padded indices and mask channels of a warp case."""
    expected_mask = case["output.mask"]
    assert_warp_close(render, mask, case["output.render"], expected_mask)
    _assert_depth_close(depth, mask[:, 0] > 0.5, case[f"output.{depth_name}"], expected_mask > 0, depth_name)
    ours_u8 = torch.from_numpy(to_uint8(render))
    differ = ((ours_u8.int() - case["output.render_uint8"].int()).abs() > 1).flatten(1).float().mean(1)
    assert differ.max() <= 1 - UINT8_FRACTION, f"render_uint8 differs by more than 1 on {differ.max():.4%} of a frame"
    mask_u8 = mask_to_video(mask)[..., 0]
    _assert_masks_close(mask_u8 > 127, case["output.mask_uint8"] > 127, "mask_uint8")

    valid = case.config["valid_frames"]
    assert_close("padded_render_index", padded_frame_indices(valid), case["output.padded_render_index"], 0, 0)
    official_mask = mask_from_video(case["output.mask_uint8"])
    assert_close("mask_latent", padded_mask_latents(official_mask, valid), case["output.mask_latent"], 1e-6, 0.0)
    if torch.equal(mask_u8, case["output.mask_uint8"]):
        assert_close("mask_latent (ours)", padded_mask_latents(mask, valid), case["output.mask_latent"], 1e-6, 0.0)


def _assert_masks_close(mask: torch.Tensor, expected: torch.Tensor, name: str) -> None:
    """Per frame, boolean (T, H, W) masks differ on at most 0.5% of the pixels."""
    flips = (mask != expected).flatten(1).float().mean(1).max().item()
    assert flips <= MASK_FLIP_FRACTION, f"{name} differs on {flips:.4%} of a frame's pixels"


def _assert_depth_close(depth: torch.Tensor, known: torch.Tensor, expected: torch.Tensor, expected_known: torch.Tensor,
                        name: str) -> None:
    """Per frame: ``|diff| <= 1e-4 * depth`` on at least 99% of the pixels known in both."""
    for i in range(depth.shape[0]):
        both = known[i] & expected_known[i]
        if not both.any():
            continue
        a, e = depth[i][both].double(), expected[i][both].double()
        good = ((a - e).abs() <= DISTANCE_RTOL * e.abs()).float().mean().item()
        assert good >= RENDER_FRACTION, f"{name} frame {i}: only {good:.4%} within {DISTANCE_RTOL} (relative)"


def _check_select(case: GoldenCase) -> None:
    indices, chunks = select_chunk_top3(case["input.overlap_pixels"])
    assert_close("source_indices", torch.tensor(indices), case["output.source_indices"], 0, 0)
    assert_close("chunk_views", torch.tensor(chunks), case["output.chunk_views"], 0, 0)


def _check_framecount(case: GoldenCase) -> None:
    """v1.5's ``padded_frame_count`` is the padding this tool applies (``padded_length``, ``chunk_plan``)."""
    valid = case["input.valid_frames"].tolist()
    padded = [padded_length(v) for v in valid]
    assert_close("padded_frames", torch.tensor(padded), case["output.padded_frames"], 0, 0)
    assert [len(padded_frame_indices(v)) for v in valid] == padded
    plans = [chunk_plan(p) for p in padded]
    assert_close("latent_frames", torch.tensor([p.latent_frames for p in plans]), case["output.latent_frames"], 0, 0)
    assert_close("blocks", torch.tensor([len(p) for p in plans]), case["output.blocks"], 0, 0)
    groups = latent_frame_groups(141)
    assert_close("groups141_start", torch.tensor([g.start for g in groups]), case["output.groups141_start"], 0, 0)
    assert_close("groups141_stop", torch.tensor([g.stop for g in groups]), case["output.groups141_stop"], 0, 0)

