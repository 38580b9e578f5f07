"""Depth-warp renderer: streaming equality, geometry on a synthetic scene, edge cases, mask channels."""

from __future__ import annotations

import math

import pytest
import torch

from inspatio_cli.warp import coverage, forward_warp, log_depth_max, mask_to_latent_channels, project
from media import mask_from_video

H, W = 48, 80
FOCAL = 60.0


def intrinsics(batch: int) -> torch.Tensor:
    K = torch.tensor([[FOCAL, 0.0, W / 2], [0.0, FOCAL, H / 2], [0.0, 0.0, 1.0]])
    return K.expand(batch, 3, 3).clone()


def yaw_pose(degrees: float, tx: float = 0.0, tz: float = 0.0) -> torch.Tensor:
    """c2w (4, 4) float64: a yaw about the camera's y axis, then a translation."""
    a = math.radians(degrees)
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, :3] = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]],
                               dtype=torch.float64)
    c2w[0, 3], c2w[2, 3] = tx, tz
    return c2w


# A synthetic scene: a slanted wall z = 4 + 0.3 x with a smooth colour texture tied to world coordinates,
# rendered exactly by ray casting, so any camera's image and depth are known.
WALL_Z, WALL_SLOPE = 4.0, 0.3


def render_wall(c2w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Image (3, H, W) in [-1, 1] and z-depth (H, W) of the wall seen from ``c2w`` (float64 math)."""
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64),
                          indexing="ij")
    d_cam = torch.stack([(u - W / 2) / FOCAL, (v - H / 2) / FOCAL, torch.ones_like(u)], -1)
    d = d_cam @ c2w[:3, :3].T
    o = c2w[:3, 3]
    # plane: z - slope * x = WALL_Z  ->  t = (WALL_Z - (o_z - slope o_x)) / (d_z - slope d_x)
    t = (WALL_Z - (o[2] - WALL_SLOPE * o[0])) / (d[..., 2] - WALL_SLOPE * d[..., 0])
    p = o + t[..., None] * d
    image = torch.stack([torch.sin(1.3 * p[..., 0]) * torch.cos(0.9 * p[..., 1]),
                         torch.cos(0.7 * p[..., 0] + 0.5 * p[..., 1]),
                         torch.sin(0.8 * p[..., 1] - 0.4 * p[..., 0])], 0)
    return (0.9 * image).float(), (t * d_cam[..., 2]).float()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB for images in [-1, 1] (peak-to-peak 2)."""
    return 10 * math.log10(4.0 / float(((a - b) ** 2).mean()))


def random_clip(frames: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Frames with a box in front of a far wall (very different depth ranges per frame) and orbit-like
    cameras, including one that puts part of the scene behind the target camera."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(frames, 3, H, W, generator=g) * 2 - 1
    depth = torch.full((frames, H, W), 6.0) + torch.rand(frames, 1, 1, generator=g) * 4
    depth[0] = 30.0  # the farthest frame sets the clip-wide Lmax
    depth[:, 12:30, 20:50] = 2.0 + torch.rand(frames, 1, 1, generator=g)
    source = torch.stack([torch.linalg.inv(yaw_pose(2.0 * i, 0.1 * i)) for i in range(frames)]).float()
    target = torch.stack([torch.linalg.inv(yaw_pose(-6.0 * i, -0.2 * i, 0.8 * (i % 4))) for i in range(frames)])
    return {"frames": image, "depth": depth, "source_w2c": source, "target_w2c": target.float(),
            "K": intrinsics(frames)}


def test_chunked_warp_equals_whole_clip_bit_for_bit():
    clip = random_clip(10)
    whole_render, whole_mask = forward_warp(**clip)
    bounds = [(0, 3), (3, 4), (4, 10)]
    chunk = [{k: v[a:b] for k, v in clip.items()} for a, b in bounds]
    lmax = torch.stack([log_depth_max(c["depth"], c["source_w2c"], c["target_w2c"], c["K"]) for c in chunk]).max()
    parts = [forward_warp(**c, lmax=lmax) for c in chunk]
    assert torch.equal(torch.cat([p[0] for p in parts]), whole_render)
    assert torch.equal(torch.cat([p[1] for p in parts]), whole_mask)
    # without the clip-wide Lmax the z-buffer sharpness changes, which is why the first pass exists
    alone = forward_warp(**chunk[2])[0]
    assert not torch.equal(alone, whole_render[4:])


def test_identity_warp_gives_the_source_back_with_a_full_mask():
    c2w = yaw_pose(3.0, 0.2)
    image, depth = render_wall(c2w)
    w2c = torch.linalg.inv(c2w).float()[None]
    render, mask = forward_warp(image[None], depth[None], w2c, w2c, intrinsics(1))
    assert mask.min() == 1.0
    assert (render[0] - image).abs().max() < 1e-4


def test_warp_reproduces_another_view_of_a_known_scene():
    """Warping frame i of a rendered sequence into the camera of frame j reproduces frame j where visible."""
    cams = [yaw_pose(0.0), yaw_pose(-4.0, 0.3, 0.2), yaw_pose(5.0, -0.25, -0.3)]
    views = [render_wall(c) for c in cams]
    w2c = [torch.linalg.inv(c).float() for c in cams]
    pairs = [(0, 1), (0, 2), (1, 2), (2, 0)]
    frames = torch.stack([views[i][0] for i, _ in pairs])
    depth = torch.stack([views[i][1] for i, _ in pairs])
    render, mask = forward_warp(frames, depth, torch.stack([w2c[i] for i, _ in pairs]),
                                torch.stack([w2c[j] for _, j in pairs]), intrinsics(len(pairs)))
    for k, (_, j) in enumerate(pairs):
        known = mask[k, 0] > 0
        assert known.float().mean() > 0.75
        inner = known.clone()
        inner[[0, -1]], inner[:, [0, -1]] = False, False  # border pixels get only partial splats
        value = psnr(render[k][:, inner], views[j][0][:, inner])
        assert value > 45.0, f"pair {pairs[k]}: PSNR {value:.1f} dB"  # about 52-59 dB
        assert (render[k][:, ~known] == -1).all()
    assert coverage(mask).min() < 0.9  # some views reveal a border strip that no source pixel covers


def test_exact_integer_coordinates_deposit_twice_and_weights_are_not_renormalised():
    """An identity warp lands on integer pixels: floor == ceil, so each point's weight counts 4 times;
    normalisation divides it out again, and one known pixel among holes keeps its colour."""
    frames = torch.full((1, 3, 4, 5), -1.0)
    frames[0, :, 1, 2] = torch.tensor([0.2, 0.4, 0.6])
    K = torch.eye(3)[None]
    x, y, z = project(torch.ones(1, 4, 5), torch.eye(4)[None], torch.eye(4)[None], K)
    assert torch.equal(x[0, 0], torch.arange(5.0)) and torch.equal(y[0, :, 0], torch.arange(4.0))
    render, mask = forward_warp(frames, torch.ones(1, 4, 5), torch.eye(4)[None], torch.eye(4)[None], K)
    assert mask.min() == 1.0
    assert torch.allclose(render[0, :, 1, 2], torch.tensor([0.2, 0.4, 0.6]))


def test_camera_behind_all_geometry_gives_an_empty_warp():
    clip = random_clip(2)
    behind = torch.linalg.inv(yaw_pose(180.0, 0.0, 1.0)).float().expand(2, 4, 4)
    render, mask = forward_warp(clip["frames"], clip["depth"], clip["source_w2c"], behind, clip["K"])
    assert mask.sum() == 0 and (render == -1).all()
    assert coverage(mask).tolist() == [0.0, 0.0]
    assert log_depth_max(clip["depth"], clip["source_w2c"], behind, clip["K"]).item() == pytest.approx(1e-6)


def test_foreground_wins_the_soft_z_buffer():
    """A near and a far point splat onto the same pixel; the near one has the smaller bilinear weight
    (0.5 against 0.95) and still sets the colour: the soft z-buffer ratio here is about 1e15."""
    frames = torch.zeros(1, 3, 1, 2)
    frames[0, :, 0, 0], frames[0, :, 0, 1] = 0.8, -0.8
    depth = torch.tensor([[[1.0, 10.0]]])
    K = torch.eye(3)[None]
    target = torch.eye(4)[None].clone()
    target[0, 0, 3] = 0.5  # near point (u=0, z=1) -> x = 0.5; far point (u=1, z=10) -> x = 1.05
    render, mask = forward_warp(frames, depth, torch.eye(4)[None], target, K)
    assert mask[0, 0, 0].tolist() == [1.0, 1.0]
    assert render[0, 0, 0, 1] > 0.799


def test_non_finite_projection_is_a_hole_not_a_crash():
    frames = torch.zeros(1, 3, 4, 4)
    target = torch.eye(4)[None].clone()
    target[0, 2, 3] = -1.0  # moves the plane at depth 1 onto z = 0
    render, mask = forward_warp(frames, torch.ones(1, 4, 4), torch.eye(4)[None], target, torch.eye(3)[None])
    assert torch.isfinite(render).all() and mask.sum() == 0


def test_mask_channels_stream_by_chunk():
    g = torch.Generator().manual_seed(1)
    mask = (torch.rand(1, 33, 16, 24, generator=g) > 0.3).float()
    whole = mask_to_latent_channels(mask)
    assert whole.shape == (1, 9, 4, 2, 3)
    parts = [mask_to_latent_channels(mask[:, :9])] + [mask_to_latent_channels(mask[:, a:a + 12], first=False)
                                                      for a in (9, 21)]
    assert torch.equal(torch.cat(parts, 1), whole)
    # latent frame 0 is pixel frame 0 four times; latent j >= 1 holds frames 4j-3 .. 4j
    single = mask_to_latent_channels(mask[:, :1])
    assert torch.equal(whole[:, 0], single[:, 0])
    assert torch.equal(whole[:, 2, 3], mask_to_latent_channels(mask[:, 8:9])[:, 0, 0])


def test_mask_from_video_thresholds_at_half():
    u8 = torch.tensor([0, 127, 128, 255], dtype=torch.uint8)
    assert mask_from_video(u8).tolist() == [0.0, 0.0, 1.0, 1.0]
