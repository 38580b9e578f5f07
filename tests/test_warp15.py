"""The v1.5 render rules on synthetic data: per-call Lmax, depth validity, distance, the multi-view merge,
the reference-view choice and frame-count padding (what the ``warp15`` golden cases do not pin)."""

from __future__ import annotations

import pytest
import torch

from inspatio_cli.views import (image_to_model, latent_frame_groups, merge_views, overlap_pixels,
                                padded_frame_indices, padded_mask_latents, select_chunk_top3, source_view_per_frame,
                                warp_views)
from inspatio_cli.warp import V1_RULES, V15_RULES, forward_warp, forward_warp_distance, log_depth_max

H, W = 24, 40


def K(batch: int, focal: float = 30.0) -> torch.Tensor:
    return torch.tensor([[focal, 0.0, W / 2], [0.0, focal, H / 2], [0.0, 0.0, 1.0]]).expand(batch, 3, 3).clone()


def moved(tx: float = 0.0, tz: float = 0.0) -> torch.Tensor:
    """A world-to-camera pose (4, 4): the camera shifted by (tx, 0, tz)."""
    w2c = torch.eye(4)
    w2c[0, 3], w2c[2, 3] = -tx, -tz
    return w2c


def clip(frames: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Frames with very different depth ranges, each with a sideways target move."""
    g = torch.Generator().manual_seed(seed)
    depth = torch.rand(frames, H, W, generator=g) + torch.tensor([1.0, 20.0, 3.0, 300.0, 7.0][:frames])[:, None, None]
    return {"frames": torch.rand(frames, 3, H, W, generator=g) * 2 - 1, "depth": depth,
            "source_w2c": torch.eye(4).expand(frames, 4, 4), "target_w2c": torch.stack([moved(0.1 * (i + 1))
                                                                                        for i in range(frames)]),
            "K": K(frames)}


def test_v15_frames_are_independent_calls() -> None:
    """Per-call Lmax: warping several frames at once equals warping each alone; v1 shares one Lmax."""
    c = clip(5)
    together = forward_warp_distance(**c, rules=V15_RULES)
    for i in range(5):
        alone = forward_warp_distance(**{k: v[i:i + 1] for k, v in c.items()}, rules=V15_RULES)
        for a, b in zip(together, alone):
            assert torch.equal(a[i:i + 1], b)
    per_frame = log_depth_max(c["depth"], c["source_w2c"], c["target_w2c"], c["K"], per_frame=True)
    assert per_frame.shape == (5,)
    assert torch.equal(per_frame.max(), log_depth_max(c["depth"], c["source_w2c"], c["target_w2c"], c["K"]))
    assert torch.equal(forward_warp(**c, lmax=per_frame)[0], together[0])
    assert not torch.equal(forward_warp(**c, rules=V1_RULES)[0], together[0])


def test_v1_rules_are_the_default() -> None:
    c = clip(3)
    for a, b in zip(forward_warp(**c), forward_warp(**c, rules=V1_RULES)):
        assert torch.equal(a, b)
    render, mask, _ = forward_warp_distance(**c)
    assert torch.equal(render, forward_warp(**c)[0]) and torch.equal(mask, forward_warp(**c)[1])


def test_distance_is_the_target_depth() -> None:
    """Identity warp of a fronto-parallel plane: every pixel known, distance = depth."""
    depth = torch.full((1, H, W), 4.0)
    render, mask, distance = forward_warp_distance(torch.zeros(1, 3, H, W), depth, torch.eye(4)[None],
                                                   torch.eye(4)[None], K(1), rules=V15_RULES)
    assert mask.all() and torch.allclose(distance, depth)
    forward = forward_warp_distance(torch.zeros(1, 3, H, W), depth, torch.eye(4)[None], moved(tz=1.0)[None], K(1),
                                    rules=V15_RULES)[2]
    assert torch.allclose(forward[forward > 0], torch.tensor(3.0))


def test_unknown_depth_and_points_behind_never_splat() -> None:
    depth = torch.full((1, H, W), 4.0)
    depth[0, :, : W // 2] = 0.0
    frames = torch.ones(1, 3, H, W)
    _, mask, distance = forward_warp_distance(frames, depth, torch.eye(4)[None], torch.eye(4)[None], K(1),
                                              rules=V15_RULES)
    assert not mask[0, 0, :, : W // 2 - 1].any() and mask[0, 0, :, W // 2 + 1:].all()
    assert (distance[0, :, : W // 2 - 1] == 0).all()
    render, mask, distance = forward_warp_distance(frames, depth, torch.eye(4)[None], moved(tz=5.0)[None], K(1),
                                                   rules=V15_RULES)
    assert not mask.any() and (render == -1).all() and (distance == 0).all()


def test_merge_keeps_the_closer_view_and_the_earlier_one_on_ties() -> None:
    red, blue = torch.ones(1, 3, 2, 2), -torch.ones(1, 3, 2, 2)
    d0 = torch.tensor([[[2.0, 5.0], [3.0, 0.0]]])
    d1 = torch.tensor([[[3.0, 4.0], [3.0, 1.0]]])
    m0 = torch.tensor([[[1.0, 1.0], [1.0, 0.0]]])
    m1 = torch.tensor([[[1.0, 1.0], [1.0, 1.0]]])
    render, mask, depth = merge_views([red, blue], [d0, d1], [m0, m1])
    assert render[0, 0].tolist() == [[1.0, -1.0], [1.0, -1.0]]
    assert depth[0].tolist() == [[2.0, 4.0], [3.0, 1.0]] and mask.all()
    render, mask, depth = merge_views([red], [d0], [m0])
    assert render[0, 0].tolist() == [[1.0, 1.0], [1.0, -1.0]]
    assert mask[0, 0].tolist() == m0[0].tolist() and depth[0, 1, 1] == torch.inf
    with pytest.raises(ValueError):
        merge_views([], [], [])


def test_one_view_is_its_own_warp_and_views_merge() -> None:
    c = clip(1)
    targets = torch.stack([moved(0.2), moved(-0.3), moved(tz=0.5)])
    one = warp_views(c["frames"], c["depth"], torch.eye(4)[None], c["K"], targets)
    render, mask, distance = forward_warp_distance(c["frames"].expand(3, -1, -1, -1), c["depth"].expand(3, -1, -1),
                                                   torch.eye(4).expand(3, 4, 4), targets, K(3), rules=V15_RULES)
    assert torch.equal(one.render, render) and torch.equal(one.mask, mask)
    assert torch.equal(one.depth, torch.where(mask[:, 0] > 0, distance, torch.inf))
    assert one.known_per_view.shape == (3, 1, H, W)
    two = warp_views(torch.cat([c["frames"], -c["frames"]]), c["depth"].expand(2, -1, -1),
                     torch.stack([torch.eye(4), moved(0.5)]), torch.cat([K(1), K(1, 40.0)]), targets)
    assert two.known_per_view.shape == (3, 2, H, W)
    assert torch.equal(two.mask[:, 0] > 0, two.known_per_view.any(1))
    assert (two.mask >= one.mask).all()


def test_select_chunk_top3_rules() -> None:
    dominant = [[50, 1, 2, 3], [60, 2, 1, 3], [70, 3, 2, 1]]
    indices, chunks = select_chunk_top3(dominant)
    assert chunks == [[0, 3, 1]] and sorted(indices) == [0, 1, 3] and indices[2] == 0
    tie = [[5, 5, 5, 5]] * 3
    assert select_chunk_top3(tie) == ([0, 1, 2], [[0, 1, 2]])
    assert select_chunk_top3(torch.tensor(tie * 2))[0] == [0, 1, 2, 0, 1, 2]
    for bad in ([[1, 2, 3, 4]] * 2, [[1, 2]] * 3, [[1, 2, 3, 4], [1, 2, 3], [1, 2, 3, 4]]):
        with pytest.raises(ValueError):
            select_chunk_top3(bad)


def test_overlap_and_reference_view_per_frame() -> None:
    known = torch.zeros(9, 4, 2, 2, dtype=torch.bool)
    known[0, 1] = True
    known[1:5, 2, 0] = True
    known[5:, 3, :, 0] = True
    assert overlap_pixels(known).tolist() == [[0, 4, 0, 0], [0, 0, 8, 0], [0, 0, 0, 8]]
    assert source_view_per_frame([1, 2, 3], 9).tolist() == [1, 2, 2, 2, 2, 3, 3, 3, 3]
    with pytest.raises(ValueError):
        source_view_per_frame([1, 2], 9)


def test_frame_counts() -> None:
    assert [len(padded_frame_indices(v)) for v in (1, 9, 10, 130, 139, 141, 247, 300, 753, 1000)] == [
        9, 9, 21, 141, 141, 141, 249, 309, 753, 1005]
    assert [list(g) for g in latent_frame_groups(7)] == [[0], [1, 2, 3, 4], [5, 6]]
    assert [list(g) for g in latent_frame_groups(1)] == [[0]] and len(latent_frame_groups(141)) == 36
    assert padded_frame_indices(6).tolist() == [0, 1, 2, 3, 4, 5, 5, 5, 5]
    with pytest.raises(ValueError):
        padded_frame_indices(0)


def test_padded_mask_latents_repeat_the_last_valid_frame() -> None:
    mask = torch.zeros(7, 1, 16, 16)
    mask[5] = 1.0
    mask[6, :, :8] = 1.0  # rendered beyond valid_frames: never seen
    latents = padded_mask_latents(mask, 6)
    assert latents.shape == (1, 3, 4, 2, 2)
    assert (latents[0, :2] == -1).all()  # frames 0 (x4) and 1..4
    assert (latents[0, 2] == 1).all()  # frame 5 four times, not frame 6


def test_image_to_model() -> None:
    images = torch.tensor([[[[0, 255, 51]]]], dtype=torch.uint8)
    model = image_to_model(images)
    assert model.shape == (1, 3, 1, 1)
    assert model.dtype == torch.float32
    assert torch.equal(model.flatten(), torch.tensor([0.0, 255.0, 51.0]) / 127.5 - 1)
