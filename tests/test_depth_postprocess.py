"""Post-processing of DA3 outputs: canvas intrinsics and nearest depth as the official stretch, pose
normalisation and the sigma-2 smoothing (official recipe, plus sign continuity)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation

from inspatio_cli.geometry.se3 import make_pose, rotation_angle_deg
from inspatio_cli.depth.postprocess import (intrinsics_to_canvas, maps_to_canvas, normalize_to_first,
                                            processed_to_canvas, smooth_poses, w2c_to_c2w)
from inspatio_cli.depth.preprocess import process_sizes
from inspatio_cli.video import Fit


def test_stretch_matches_the_official_scaling_and_nearest_resize() -> None:
    src = (1080, 1920)
    proc = process_sizes(src)[1]
    assert proc == (280, 504)
    transform = processed_to_canvas(Fit.make(src, (480, 832), "stretch"), proc)
    K = torch.tensor([[[300.0, 0.0, 252.0], [0.0, 310.0, 140.0], [0.0, 0.0, 1.0]]])
    official = K.clone()
    official[:, 0] *= 832 / 504
    official[:, 1] *= 480 / 280
    assert torch.allclose(intrinsics_to_canvas(K, transform), official, rtol=1e-6)
    depth = torch.arange(280 * 504, dtype=torch.float32).reshape(1, 280, 504)
    out = maps_to_canvas(depth, transform, (480, 832), 0.0)
    rows = [int(Fraction(y * 280, 480)) for y in range(480)]
    cols = [int(Fraction(x * 504, 832)) for x in range(832)]
    assert torch.equal(out[0], depth[0][rows][:, cols])


def test_pad_fills_the_letterbox_with_the_given_value() -> None:
    fit = Fit.make((100, 400), (60, 60), "pad")
    transform = processed_to_canvas(fit, (126, 504))
    out = maps_to_canvas(torch.ones(2, 126, 504), transform, (60, 60), torch.tensor([5.0, 7.0]))
    top, height = fit.offset[0], fit.content_hw[0]
    assert torch.equal(out[:, top:top + height], torch.ones(2, height, 60))
    assert (out[0, :top] == 5.0).all() and (out[1, top + height:] == 7.0).all()


def test_poses_are_normalised_to_frame_zero() -> None:
    rng = np.random.default_rng(0)
    c2w = make_pose(Rotation.random(5, random_state=rng).as_matrix(), rng.normal(size=(5, 3)))
    w2c = np.linalg.inv(c2w)[:, :3]
    rel = normalize_to_first(w2c_to_c2w(w2c))
    np.testing.assert_allclose(rel[0], np.eye(4), atol=1e-12)
    np.testing.assert_allclose(rel[3], np.linalg.inv(c2w[0]) @ c2w[3], atol=1e-12)


def official_smoothing(c2w: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """REFERENCE.md 3.3 step 4 as written: scipy quaternions without sign handling, filtered per component."""
    quats = Rotation.from_matrix(c2w[:, :3, :3]).as_quat()
    quats = gaussian_filter1d(quats, sigma, axis=0, mode="reflect", truncate=4.0)
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    trans = gaussian_filter1d(c2w[:, :3, 3], sigma, axis=0, mode="reflect", truncate=4.0)
    return make_pose(Rotation.from_quat(quats).as_matrix(), trans)


def test_smoothing_equals_the_official_recipe_on_ordinary_paths() -> None:
    t = np.arange(30)
    rot = Rotation.from_euler("yxz", np.stack([0.05 * t, 0.1 * np.sin(0.4 * t), 0.02 * t], 1)).as_matrix()
    noisy = make_pose(rot, np.stack([0.1 * t, np.sin(t), 0.01 * t ** 2], 1))
    np.testing.assert_allclose(smooth_poses(noisy), official_smoothing(noisy), atol=1e-12)
    np.testing.assert_allclose(smooth_poses(noisy, 0.0), noisy)
    np.testing.assert_allclose(smooth_poses(noisy[:1]), noisy[:1])


def test_smoothing_survives_quaternion_sign_flips() -> None:
    """A yaw sweep through 270 degrees flips the sign of scipy's quaternion mid-sequence; the
    official filter then averages q with -q and bends the path, ours keeps it."""
    yaw = np.linspace(240, 300, 31)
    c2w = make_pose(Rotation.from_euler("y", yaw[:, None], degrees=True).as_matrix(), np.zeros((31, 3)))
    ours = smooth_poses(c2w)
    inner = slice(6, -6)  # the ends of a ramp move under any reflect-mode filter
    assert rotation_angle_deg(ours[inner, :3, :3], c2w[inner, :3, :3]).max() < 0.01
    bent = official_smoothing(c2w)
    assert rotation_angle_deg(bent[inner, :3, :3], c2w[inner, :3, :3]).max() > 10
