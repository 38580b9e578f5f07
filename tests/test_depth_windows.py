"""Windowed depth: Sim(3) chaining math on exact synthetic poses, and the streaming window plumbing with a
fake network whose per-window worlds and scales are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from inspatio_cli.geometry.se3 import invert, make_pose
from inspatio_cli.depth.da3 import DA3Output
from inspatio_cli.depth.estimate import estimate_depth
from inspatio_cli.depth.preprocess import IMAGENET_MEAN, IMAGENET_STD
from inspatio_cli.depth.windows import depth_scale, fit_sim3
from inspatio_cli.geometry.sim3 import Sim3
from inspatio_cli.video import Fit


def trajectory(n: int, seed: int = 0) -> np.ndarray:
    """A smooth camera-to-world path (n, 4, 4): a wobbling forward dolly with a slow yaw."""
    t = np.arange(n, dtype=np.float64)
    rot = Rotation.from_euler("yxz", np.stack([0.02 * t, 0.05 * np.sin(0.3 * t + seed), 0.01 * t], 1)).as_matrix()
    centres = np.stack([0.3 * np.sin(0.1 * t), 0.05 * np.cos(0.2 * t), 0.04 * t], 1)
    return make_pose(rot, centres)


def random_sim3(rng: np.random.Generator) -> Sim3:
    return Sim3(float(rng.uniform(0.3, 3.0)), Rotation.random(random_state=rng).as_matrix(), rng.normal(size=3))


def test_fit_sim3_recovers_a_known_similarity() -> None:
    rng = np.random.default_rng(1)
    world_a = trajectory(12)
    truth = random_sim3(rng)
    inverse = Sim3(1 / truth.scale, truth.R.T, -truth.R.T @ truth.t / truth.scale)
    world_b = inverse.apply_to_poses(world_a)
    found = fit_sim3(world_a[-5:], world_b[-5:], truth.scale)
    np.testing.assert_allclose(found.R, truth.R, atol=1e-12)
    np.testing.assert_allclose(found.t, truth.t, atol=1e-12)
    np.testing.assert_allclose(found.apply_to_poses(world_b), world_a, atol=1e-12)


def test_depth_scale_is_robust_to_outliers_and_uses_confident_pixels() -> None:
    depth_b = torch.rand(3, 8, 9) + 0.5
    depth_a = 2.5 * depth_b
    depth_a[0, :2] = 1000.0  # a sky region filled differently in the two windows
    conf = torch.full_like(depth_b, 3.0)
    conf[0, :2] = 1.0
    assert depth_scale(depth_a, depth_b, conf, conf) == pytest.approx(2.5, rel=1e-12)
    assert depth_scale(depth_a, depth_b) == pytest.approx(2.5, rel=1e-12)


class WindowWorldNet(torch.nn.Module):
    """Stands in for DA3: frame ``i`` (a constant image of value ``i``) gets the true pose of frame ``i``,
    expressed in a random world per call (a random similarity), and depth ``(i + 1) * s`` with that call's
    scale ``s``; K is fixed. Records the number of views of every call."""

    def __init__(self, truth: np.ndarray, seed: int = 0):
        super().__init__()
        self.truth, self.rng, self.calls = truth, np.random.default_rng(seed), []

    def forward(self, images: torch.Tensor) -> DA3Output:
        _, s, _, h, w = images.shape
        self.calls.append(s)
        value = images[0, :, 0, 0, 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
        index = torch.round(value * 255).long().numpy()
        world = random_sim3(self.rng)
        c2w = world.apply_to_poses(self.truth[index])
        w2c = torch.from_numpy(invert(c2w)[:, :3]).float()[None]
        depth = torch.from_numpy(index + 1.0).float()[:, None, None].expand(s, h, w) * world.scale
        K = torch.tensor([[50.0, 0, w / 2], [0, 50.0, h / 2], [0, 0, 1]]).expand(1, s, 3, 3)
        return DA3Output(depth=depth[None].clone(), conf=torch.full((1, s, h, w), 2.0), extrinsics=w2c,
                         intrinsics=K.clone())


@pytest.mark.parametrize("frames,window,overlap", [(40, 10, 4), (37, 8, 3), (5, 16, 4), (1, 8, 4), (9, 2, 1)])
def test_windows_chain_into_one_consistent_trajectory(frames: int, window: int, overlap: int) -> None:
    truth = trajectory(frames)
    net = WindowWorldNet(truth)
    video = [np.full((28, 42, 3), i, np.uint8) for i in range(frames)]
    fit = Fit.make((28, 42), (28, 42), "stretch")
    result = estimate_depth(iter(video), net, fit, window=window, overlap=overlap, process_res=42,
                            smooth_sigma=0.0)
    assert max(net.calls) <= window
    assert result.num_frames == frames
    expected = invert(truth[0])[None] @ truth
    got = result.c2w.double().numpy()
    scale = result.depth[0, 0, 0].item()  # depth of frame 0 is 1 in true units: the chain's global scale
    got[:, :3, 3] /= scale
    np.testing.assert_allclose(got, expected, atol=2e-5)
    np.testing.assert_allclose(result.depth[:, 0, 0].numpy() / scale, np.arange(1, frames + 1), rtol=1e-5)
    assert np.allclose(result.K[:, 0, 0].numpy(), 50.0)
