"""Cameras: SE(3) helpers and conventions, chunk layout, time control, the official orbit maths and the
render-path composition (also against the end-to-end ``warp_pipeline_*`` golden poses when available)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from inspatio_cli.cameras import (Freeze, Reverse, Slow, TimeControl, bounce_indices, chunk_plan,
                                  official_adaptive_indices, orbit_poses, recenter_K, render_cameras)
from inspatio_cli.geometry import se3
from inspatio_cli.cameras.formats.orbit import parse_orbit
from inspatio_cli.cameras.official import interpolate_keys, sample_orbit
from inspatio_cli.errors import UsageError

RNG = np.random.default_rng(0)


def random_poses(n: int) -> np.ndarray:
    R = se3.quaternion_to_matrix(RNG.normal(size=(n, 4)))
    return se3.make_pose(R, RNG.normal(size=(n, 3)))


# --- SE(3) -----------------------------------------------------------------------------------------

def test_invert_and_compose():
    T = random_poses(5)
    assert np.allclose(se3.compose(T, se3.invert(T)), np.eye(4), atol=1e-12)
    assert np.allclose(se3.invert(T), np.linalg.inv(T), atol=1e-12)


@pytest.mark.parametrize("conv", ["opengl", "blender", "unreal"])
def test_convention_round_trip_and_identity(conv):
    T = random_poses(4)
    there = se3.convert_convention(T, "opencv", conv)
    assert np.allclose(se3.convert_convention(there, conv, "opencv"), T, atol=1e-12)
    assert np.allclose(se3.convert_convention(np.eye(4), conv, "opencv"), np.eye(4))
    assert se3.is_rigid(there).all()


def test_opengl_axes_by_hand():
    # an OpenGL camera 1 unit "up" (+y) looking down its -z: in OpenCV it is 1 unit up (-y), looking +z
    gl = se3.make_pose(np.eye(3), [0.0, 1.0, 0.0])
    cv = se3.convert_convention(gl, "opengl", "opencv")
    assert np.allclose(cv[:3, 3], [0.0, -1.0, 0.0]) and np.allclose(cv[:3, :3], np.eye(3))


def test_unreal_axes_by_hand():
    # Unreal: x forward, y right, z up. A camera 2 units forward (+x) and 1 up (+z) is OpenCV (0, -1, 2).
    ue = se3.make_pose(np.eye(3), [2.0, 0.0, 1.0])
    cv = se3.convert_convention(ue, "unreal", "opencv")
    assert np.allclose(cv[:3, 3], [0.0, -1.0, 2.0]) and np.allclose(cv[:3, :3], np.eye(3))


def test_quaternions_euler_look_at():
    R = random_poses(6)[:, :3, :3]
    assert np.allclose(se3.quaternion_to_matrix(se3.matrix_to_quaternion(R)), R, atol=1e-12)
    assert np.allclose(se3.quaternion_to_matrix(np.array([1.0, 0, 0, 0])), np.eye(3))
    pan = se3.euler_to_matrix([20.0, 0.0, 0.0])           # YXZ: positive yaw turns the view to the right
    assert pan[0, 2] > 0.3 and abs(se3.rotation_angle_deg(np.eye(3), pan) - 20.0) < 1e-9
    cam = se3.look_at([0.0, 0.0, 0.0], [1.0, 0.0, 1.0])
    assert np.allclose(cam[:3, 2], np.array([1.0, 0.0, 1.0]) / np.sqrt(2)) and np.allclose(cam[:3, 1], [0, 1, 0])
    with pytest.raises(ValueError):
        se3.look_at([0, 0, 0], [0, 1, 0])


def test_interpolate_poses_hits_keys_and_slerps():
    keys = se3.make_pose(np.stack([np.eye(3), se3.euler_to_matrix([90.0, 0.0, 0.0])]), [[0, 0, 0], [2, 0, 0]])
    out = se3.interpolate_poses(np.array([0.0, 10.0]), keys, np.array([0.0, 5.0, 10.0, 12.0]))
    assert np.allclose(out[0], keys[0]) and np.allclose(out[2], keys[1]) and np.allclose(out[3], keys[1])
    assert abs(se3.rotation_angle_deg(np.eye(3), out[1, :3, :3]) - 45.0) < 1e-9
    assert np.allclose(out[1, :3, 3], [1.0, 0.0, 0.0])


# --- chunks ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 8, 9, 10, 20, 21, 49, 129, 301])
def test_chunk_plan_pads_the_last_chunk_and_keeps_the_official_counts(n):
    plan = chunk_plan(n)
    latent = 1 + (n - 1) // 4 if n else 0
    official = latent - latent % 3
    assert plan.latent_frames == latent and plan.official_latent_frames == official
    assert plan.official_frames == (4 * official - 3 if official else 0)
    covered = [f for c in plan for f in c.frames]
    assert covered == list(range(plan.padded_frames))                    # contiguous, no gaps, no overlap
    assert plan.padded_frames >= n and plan.padding == plan.padded_frames - n
    assert plan.padding < 12 or n < 9                                      # the smallest whole-chunk cover
    assert (plan.padded_frames - 1) % 4 == 0 if n else plan.padded_frames == 0
    for c in plan:
        assert len(c.latents) == 3 and len(c.frames) == (9 if c.index == 0 else 12)


# --- time control ----------------------------------------------------------------------------------

def test_freeze_matches_official_insertion():
    tm = TimeControl(freezes=(Freeze(3, 2),)).edited_map(6)
    assert tm.tolist() == [0, 1, 2, 3, 3, 3, 4, 5]
    assert TimeControl(freezes=(Freeze(None, 1),)).edited_map(5).tolist() == [0, 1, 2, 2, 3, 4]


def test_multiple_edits_slow_reverse():
    tc = TimeControl(freezes=(Freeze(1, 1),), slows=(Slow(3, 4, 2.0),), reverses=(Reverse(6, 8),))
    assert tc.edited_map(10).tolist() == [0, 1, 1, 2, 3, 3, 4, 4, 5, 8, 7, 6, 9]
    assert TimeControl(slows=(Slow(0, 5, 0.5),)).edited_map(6).tolist() == [0, 2, 4]


def test_time_edit_errors():
    with pytest.raises(UsageError, match="overlap"):
        TimeControl(freezes=(Freeze(4, 2),), reverses=(Reverse(3, 6),)).edited_map(10)
    with pytest.raises(UsageError, match="outside the video"):
        TimeControl(freezes=(Freeze(10, 2),)).edited_map(10)
    with pytest.raises(UsageError, match="START <= END"):
        TimeControl(reverses=(Reverse(5, 2),)).edited_map(10)
    with pytest.raises(UsageError, match="min-frames"):
        TimeControl(min_frames=10)
    with pytest.raises(UsageError, match="--extend pingpong needs --min-frames N"):
        TimeControl(extend="pingpong")  # it would do nothing: say so instead
    with pytest.raises(UsageError, match="FRAME:COUNT"):
        TimeControl.from_options(freeze=["12"])
    with pytest.raises(UsageError, match="not a whole number"):
        TimeControl.from_options(freeze=["a:3"])


@pytest.mark.parametrize("mode,expected", [
    ("pingpong", [0, 1, 2, 3, 2, 1, 0, 1]),
    ("loop", [0, 1, 2, 3, 0, 1, 2, 3]),
    ("hold", [0, 1, 2, 3, 3, 3, 3, 3]),
])
def test_extend_modes_never_shorten(mode, expected):
    tc = TimeControl(extend=mode, min_frames=8)
    assert tc.extend_map(tc.edited_map(4)).tolist() == expected
    assert len(tc.extend_map(tc.edited_map(20))) == 20


def test_official_adaptive_rule():
    assert bounce_indices(3, 7).tolist() == [0, 1, 2, 1, 0, 1, 2]
    assert len(official_adaptive_indices(240.0, 49)) == 301                    # bounce to ceil(240/0.8)+1
    assert official_adaptive_indices(240.0, 500).tolist() == list(range(500))  # OK branch
    sub = official_adaptive_indices(240.0, 1000)                               # subsample to floor(240/0.3)+1
    assert len(sub) == 801 and sub[0] == 0 and sub[-1] == 999
    assert len(official_adaptive_indices(0.0, 17)) == 121                      # pure zoom: at least 121


def test_camera_keeps_moving_through_time_edits():
    orbit = parse_orbit("0 0\n0 30\n1 1\n", None)
    traj = orbit.resolve(20, TimeControl(freezes=(Freeze(5, 10),)))
    assert len(traj) == 30 and traj.time_map[5:16].tolist() == [5] * 11
    yaw_step = se3.rotation_angle_deg(traj.rel_c2w[:-1, :3, :3].numpy(), traj.rel_c2w[1:, :3, :3].numpy())
    assert np.allclose(yaw_step, 30.0 / 29.0, atol=1e-3)  # constant speed over all 30 frames (float32 sines)
    official = orbit.resolve(20, TimeControl(extend="official"))               # replays the camera with the frames
    assert len(official) == 121 and torch.equal(official.rel_c2w[38], orbit.resolve(20).rel_c2w[0])


def test_extend_official_needs_an_orbit_file(tmp_path):
    from inspatio_cli.cameras import load_trajectory

    path = tmp_path / "poses.txt"
    path.write_text("1 0 0 0 0 1 0 0 0 0 1 0\n" * 12)
    with pytest.raises(UsageError, match="3-line orbit"):
        load_trajectory(path).resolve(12, TimeControl(extend="official"))


# --- official orbit maths ----------------------------------------------------------------------------

def test_orbit_pose_geometry():
    poses = orbit_poses(np.array([10.0, -5.0]), np.array([20.0, 30.0]), np.array([2.0, 1.5]))
    for pose, r in zip(poses, (2.0, 1.5)):
        # the camera looks at the orbit centre (0, 0, r) from distance r (to float32 rounding, as officially)
        assert np.allclose(pose[:3, 3] + r * pose[:3, 2], [0.0, 0.0, r], atol=1e-6)
    left = orbit_poses(np.zeros(1), np.array([30.0]), np.ones(1))[0]
    up = orbit_poses(np.array([20.0]), np.zeros(1), np.ones(1))[0]
    assert left[0, 3] < 0 and up[1, 3] < 0                                    # +yaw orbits left, +pitch orbits up
    dolly = orbit_poses(np.zeros(2), np.zeros(2), np.array([0.5, -0.5]), is_zoom=True, rotation_only=True)
    assert np.allclose(dolly[:, :3, 3], [[0, 0, 0.5], [0, 0, -0.5]])          # zoom overrides rotation_only
    tripod = orbit_poses(np.ones(2), np.ones(2), np.ones(2), rotation_only=True)
    assert np.allclose(tripod[:, :3, 3], 0.0)


def test_resampling_rules():
    keys = np.array([0.0, -0.25, -0.5, -1.0, 0.0, 1.0, 0.5, 0.0])
    assert np.allclose(interpolate_keys(np.array([0.0, 10.0, 0.0]), 5), [0, 5, 10, 5, 0])   # m <= 3: linear
    smooth = interpolate_keys(keys, 30)
    pinned = interpolate_keys(keys, 30, pin_ends=True)
    assert smooth[0] != 0.0 and pinned[0] == 0.0 and pinned[-1] == 0.0 and np.allclose(smooth[1:-1], pinned[1:-1])
    s = sample_orbit(np.zeros(4), np.zeros(4), keys[:4], 9)
    assert s.is_zoom and s.x_up.dtype == np.float32


def test_recenter_K():
    K = np.array([[500.0, 0, 400.0], [0, 510.0, 250.0], [0, 0, 1]])
    out = recenter_K(K, 832, 480)
    assert np.allclose(out, [[500.0 * 832 / 800, 0, 416], [0, 510.0 * 480 / 500, 240], [0, 0, 1]])


# --- render composition ------------------------------------------------------------------------------

def test_render_cameras_default_and_relative():
    orbit = parse_orbit("0 5\n0 -10\n1 1\n", None)
    S = random_poses(4)
    traj = orbit.resolve(4)
    K = np.array([[600.0, 0, 416], [0, 600.0, 240], [0, 0, 1]])
    rel = traj.rel_c2w.numpy()
    C0i = np.linalg.inv(S[0])
    default = render_cameras(traj, torch.from_numpy(S), K)
    assert torch.allclose(default.target_c2w.double(), torch.from_numpy(C0i @ rel), atol=1e-5)
    assert torch.allclose(default.source_w2c.double(), torch.from_numpy(np.linalg.inv(S)), atol=1e-5)
    assert default.K.shape == (4, 3, 3) and torch.equal(default.K, default.target_K)
    relative = render_cameras(traj, S, K, relative_to_source=True)
    expect = C0i @ S @ C0i @ rel
    assert torch.allclose(relative.target_c2w.double(), torch.from_numpy(expect), atol=1e-5)
    # with C0 = I the relative mode applies rel^-1 to every source camera
    S_id = S @ np.linalg.inv(S[0])
    cams = render_cameras(traj, S_id, K, relative_to_source=True)
    warp = cams.target_w2c.double() @ torch.linalg.inv(cams.source_w2c.double())
    assert torch.allclose(warp, torch.linalg.inv(traj.rel_c2w), atol=1e-5)
    with pytest.raises(UsageError):
        render_cameras(traj, S[:3], K)


def _warp_pipeline_cases() -> list[Path]:
    folder = os.environ.get("INSPATIO_GOLDEN_DIR")
    return sorted(Path(folder).glob("warp_pipeline_*.safetensors")) if folder else []


@pytest.mark.skipif(not _warp_pipeline_cases(), reason="INSPATIO_GOLDEN_DIR with warp_pipeline_* files not set")
@pytest.mark.parametrize("path", _warp_pipeline_cases(), ids=lambda p: p.stem)
def test_render_cameras_against_warp_pipeline_golden(path):
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        cfg = json.loads(fh.metadata()["config"])
        tensors = {k: fh.get_tensor(k) for k in fh.keys() if not k.startswith("input.da3_frames")}
    if "output.source_w2c" not in tensors:
        pytest.skip("no poses in this case (ply backend)")
    n = cfg["N"]
    w2c = torch.zeros(n, 4, 4)
    w2c[:, :3] = tensors["input.extrinsic_w2c"]
    w2c[:, 3, 3] = 1.0
    freezes = (Freeze(cfg["freeze_frame"], cfg["freeze_repeat"]),) if cfg["freeze_repeat"] else ()
    traj = parse_orbit(cfg["traj_txt"], None, rotation_only=cfg["rotation_only"]).resolve(n, TimeControl(freezes))
    cams = render_cameras(traj, torch.linalg.inv(w2c), tensors["input.intrinsic"],
                          relative_to_source=cfg["relative_to_source"], width=cfg["width"], height=cfg["height"])
    assert torch.allclose(cams.source_w2c, tensors["output.source_w2c"], atol=1e-5)
    assert torch.allclose(cams.target_w2c, tensors["output.target_w2c"], atol=1e-5)
    assert torch.allclose(cams.K[0], tensors["output.K_render"], atol=1e-3)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60), frame=st.integers(0, 59), count=st.integers(0, 20), factor=st.floats(0.25, 4.0),
       mode=st.sampled_from(["none", "pingpong", "loop", "hold"]), min_frames=st.integers(1, 150))
def test_time_map_properties(n, frame, count, factor, mode, min_frames):
    frame = frame % n
    slow = (Slow(frame + 1, n - 1, factor),) if frame + 1 < n else ()
    tc = TimeControl(freezes=(Freeze(frame, count),), slows=slow, extend=mode,
                     min_frames=min_frames if mode != "none" else 0)
    edited = tc.edited_map(n)
    tm = tc.extend_map(edited)
    assert tm.min() >= 0 and tm.max() < n and tm.dtype == np.int64
    assert (edited == frame).sum() >= count + 1 and np.all(np.diff(edited) >= 0)    # forward edits keep order
    assert len(tm) == max(len(edited), tc.min_frames)
