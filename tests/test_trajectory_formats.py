"""Trajectory file formats: detection, hand-computed nerfstudio / RealEstate10K / keyframe examples,
export round trips, presets, and one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from inspatio_cli.cameras import TimeControl, list_presets, load_trajectory, write_trajectory
from inspatio_cli.choices import EXPORTS
from inspatio_cli.geometry import se3
from inspatio_cli.errors import TrajectoryError, UsageError

ROT_Y90 = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_orbit_file_with_comments(tmp_path):
    path = write(tmp_path, "t.txt", "# my orbit\n\n0 10  # pitch\n0 0\n# r:\n1 1\n")
    src = load_trajectory(path)
    assert src.meta["format"] == "orbit" and src.lines == (3, 4, 6)
    assert np.allclose(src.x_up, [0, 10])


def test_matrix_text_and_tcw_detection(tmp_path):
    pose = se3.make_pose(ROT_Y90, [1.0, 2.0, 3.0])
    row16 = " ".join(f"{v:g}" for v in pose.reshape(16))
    row12 = " ".join(f"{v:g}" for v in pose[:3].reshape(12))
    c2w = load_trajectory(write(tmp_path, "path.txt", f"{row16}\n{row16}\n"))
    assert c2w.meta["format"] == "matrices" and np.allclose(c2w.c2w[0], pose)
    assert np.allclose(load_trajectory(write(tmp_path, "p12.txt", f"{row12}\n" * 4)).c2w[3], pose)
    tcw = load_trajectory(write(tmp_path, "target_tcw.txt", f"{row16}\n" * 4))
    assert tcw.meta["format"] == "tcw" and np.allclose(tcw.c2w[0], np.linalg.inv(pose))
    forced = load_trajectory(write(tmp_path, "x.txt", f"{row16}\n" * 4), direction="w2c")
    assert np.allclose(forced.c2w[0], np.linalg.inv(pose))


def test_three_lines_of_sixteen_numbers_are_orbit_unless_rigid(tmp_path):
    keys = " ".join(str(v) for v in range(16))
    assert load_trajectory(write(tmp_path, "a.txt", f"{keys}\n{keys}\n{keys}\n")).meta["format"] == "orbit"
    eye = " ".join(f"{v:g}" for v in np.eye(4).reshape(16))
    assert load_trajectory(write(tmp_path, "b.txt", f"{eye}\n" * 3)).meta["format"] == "matrices"


def test_nerfstudio_by_hand(tmp_path):
    # camera 0: OpenGL identity at (1, 2, 3); camera 1: rotated +90 deg about +y (looking along -x)
    gl0 = se3.make_pose(np.eye(3), [1.0, 2.0, 3.0])
    gl1 = se3.make_pose(ROT_Y90, [0.0, 0.0, 0.0])
    doc = {"render_height": 480, "render_width": 832, "camera_type": "perspective",
           "camera_path": [{"camera_to_world": gl0.reshape(16).tolist(), "fov": 90},
                           {"camera_to_world": gl1.tolist(), "fov": 60}]}
    src = load_trajectory(write(tmp_path, "camera_path.json", json.dumps(doc)))
    assert src.meta["format"] == "nerfstudio" and src.meta["convention"] == "opengl"
    traj = src.resolve(2)
    c2w = traj.rel_c2w.numpy()
    assert np.allclose(c2w[0], se3.make_pose(np.eye(3), [1.0, -2.0, -3.0]))      # y and z flip
    assert np.allclose(c2w[1, :3, :3], [[0, 0, -1], [0, 1, 0], [1, 0, 0]])
    assert np.allclose(c2w[1, :3, 2], [-1.0, 0.0, 0.0])                          # still looks along -x
    K = traj.K.numpy()
    assert np.allclose(K[0], [[240, 0, 416], [0, 240, 240], [0, 0, 1]])          # (480/2) / tan(45 deg)
    assert np.isclose(K[1, 1, 1], 240 / np.tan(np.radians(30)))


def test_re10k_by_hand(tmp_path):
    # frame 0: identity rotation, centre (1, 0, 0) -> w2c translation (-1, 0, 0)
    # frame 1: c2w rotation ROT_Y90 at centre (0, 0, 2) -> w2c = [R^T | -R^T C] = [R^T | (2, 0, 0)]
    line0 = "0 0.5 0.9 0.5 0.5 0 0 1 0 0 -1 0 1 0 0 0 0 1 0"
    line1 = "33366 0.5 0.9 0.5 0.5 0 0 0 0 -1 2 0 1 0 0 1 0 0 0"
    src = load_trajectory(write(tmp_path, "clip.txt", f"https://www.youtube.com/watch?v=abc\n{line0}\n{line1}\n"))
    assert src.meta["format"] == "re10k" and src.meta["url"].startswith("https://")
    traj = src.resolve(2)
    c2w = traj.rel_c2w.numpy()
    assert np.allclose(c2w[0], se3.make_pose(np.eye(3), [1.0, 0.0, 0.0]))
    assert np.allclose(c2w[1], se3.make_pose(ROT_Y90, [0.0, 0.0, 2.0]))
    assert np.allclose(traj.K.numpy()[0], [[416, 0, 416], [0, 432, 240], [0, 0, 1]])
    first = load_trajectory(src.meta["path"], anchor="first").resolve(2).rel_c2w.numpy()
    assert np.allclose(first[0], np.eye(4)) and np.allclose(first[1, :3, 3], [-1.0, 0.0, 2.0])


def test_keyframe_json(tmp_path):
    doc = {"units": "frames", "interpolation": "linear", "keyframes": [
        {"at": 0, "position": [0, 0, 0], "fov": 60},
        {"at": 10, "position": [1, 0, 0], "euler_deg": [30, 0, 0]},
        {"at": 20, "position": [1, 0, 1], "quaternion": [1, 0, 0, 0], "fov": 40}]}
    traj = load_trajectory(write(tmp_path, "k.json", json.dumps(doc))).resolve(25)
    c2w = traj.rel_c2w.numpy()
    assert np.allclose(c2w[5, :3, 3], [0.5, 0, 0]) and np.allclose(c2w[22], c2w[20])   # hold after the last key
    assert abs(se3.rotation_angle_deg(np.eye(3), c2w[5, :3, :3]) - 15.0) < 1e-9       # SLERP halfway
    fy = traj.K.numpy()[:, 1, 1]
    assert np.isclose(fy[0], 240 / np.tan(np.radians(30))) and np.isclose(fy[20], 240 / np.tan(np.radians(20)))


def test_keyframe_orbit_and_seconds(tmp_path):
    doc = {"units": "seconds", "keyframes": [{"at": 0, "orbit": {"yaw": 0}}, {"at": 1, "orbit": {"yaw": 20}},
                                             {"at": 2, "orbit": {"yaw": 0}}]}
    path = write(tmp_path, "o.json", json.dumps(doc))
    with pytest.raises(TrajectoryError, match="--fps"):
        load_trajectory(path).resolve(49)
    traj = load_trajectory(path).resolve(49, fps=24)
    yaw = [se3.rotation_angle_deg(np.eye(3), m[:3, :3]) for m in traj.rel_c2w.numpy()]
    assert np.isclose(yaw[24], 20.0) and np.isclose(yaw[48], 0.0, atol=1e-6)   # passes through the keys
    dolly = {"units": "normalized", "keyframes": [{"at": 0, "orbit": {"displacement": 0}},
                                                  {"at": 1, "orbit": {"displacement": 0.5}}]}
    end = load_trajectory(write(tmp_path, "d.json", json.dumps(dolly))).resolve(9).rel_c2w[-1].numpy()
    assert np.allclose(end[:3, 3], [0, 0, 0.5])                                # all-zero angles: a dolly


def _sample_trajectories():
    orbit = load_trajectory("x_y_circle_cycle").resolve(33, TimeControl(extend="pingpong", min_frames=40))
    zoom = load_trajectory("dolly_zoom").resolve(21)
    return {"orbit": orbit, "with_K": zoom}


@pytest.mark.parametrize("to", EXPORTS)
@pytest.mark.parametrize("which", ["orbit", "with_K"])
def test_export_round_trip(tmp_path, to, which):
    traj = _sample_trajectories()[which]
    suffix = {"npy": ".npz", "json": ".json", "nerfstudio": ".json"}.get(to, ".txt")
    out = write_trajectory(traj, tmp_path / f"out_{to}{suffix}", to)
    back = load_trajectory(out, fmt={"c2w": "matrices", "json": "keyframes"}.get(to, to)).resolve(len(traj))
    assert torch.allclose(back.rel_c2w, traj.rel_c2w, atol=1e-6)
    if traj.K is not None and to in ("npy", "json", "nerfstudio"):
        assert back.K is not None and torch.allclose(back.K, traj.K, atol=1e-6)


def test_npy_plain_and_w2c_npz(tmp_path):
    poses = se3.make_pose(np.stack([np.eye(3), ROT_Y90]), [[0, 0, 0], [1, 2, 3]])
    np.save(tmp_path / "p.npy", poses)
    assert np.allclose(load_trajectory(tmp_path / "p.npy").c2w, poses)
    np.savez(tmp_path / "p.npz", w2c=poses[:, :3])
    assert np.allclose(load_trajectory(tmp_path / "p.npz").c2w, np.linalg.inv(poses))


def test_per_frame_count_mismatch_and_resample(tmp_path):
    row = " ".join(f"{v:g}" for v in np.eye(4).reshape(16))
    path = write(tmp_path, "p.txt", f"{row}\n" * 10)
    with pytest.raises(TrajectoryError, match="10 poses but the output has 12 frames"):
        load_trajectory(path).resolve(12)
    assert len(load_trajectory(path, resample=True).resolve(12)) == 12
    assert len(load_trajectory(path).resolve(8, TimeControl(extend="hold", min_frames=10))) == 10


def test_scale_anchor_rotation_only(tmp_path):
    poses = se3.make_pose(np.stack([ROT_Y90, ROT_Y90]), [[1, 0, 0], [1, 0, 2]])
    np.save(tmp_path / "p.npy", poses)
    scaled = load_trajectory(tmp_path / "p.npy", scale=0.5).c2w
    assert np.allclose(scaled[1, :3, 3], [0.5, 0, 1])
    first = load_trajectory(tmp_path / "p.npy", anchor="first").c2w
    assert np.allclose(first[0], np.eye(4)) and np.allclose(first[1, :3, 3], [-2, 0, 0])
    assert np.allclose(load_trajectory(tmp_path / "p.npy", rotation_only=True).c2w[:, :3, 3], 0)
    orbit = load_trajectory("orbit_left", scale=2.0).resolve(5).rel_c2w.numpy()
    assert np.allclose(orbit[-1, :3, 3], 2 * load_trajectory("orbit_left").resolve(5).rel_c2w.numpy()[-1, :3, 3])


def test_option_errors(tmp_path):
    with pytest.raises(UsageError, match="does not apply"):
        load_trajectory("orbit_left", direction="w2c")
    with pytest.raises(UsageError, match="--convention"):
        load_trajectory("orbit_left", convention="directx")
    with pytest.raises(UsageError, match="--scale"):
        load_trajectory("orbit_left", scale=0.0)
    with pytest.raises(TrajectoryError, match="no such file or preset"):
        load_trajectory("no_such_preset")


def test_every_preset_resolves_and_describes_itself():
    from inspatio_cli.cameras.loader import preset_description

    presets = list_presets()
    assert {"x_y_circle_cycle", "zoom_out_in", "orbit_left", "orbit_right", "orbit_up", "orbit_down", "dolly_in",
            "dolly_out", "pan_left", "pan_right", "tilt_up", "tilt_down", "crane_up", "figure_eight",
            "push_in_orbit"} <= set(presets)
    for name, path in presets.items():
        assert preset_description(path), f"{name} has no header comment"
        traj = load_trajectory(name).resolve(121)
        assert len(traj) == 121 and se3.is_rigid(traj.rel_c2w.numpy()).all()
        assert np.allclose(traj.rel_c2w[0].numpy(), np.eye(4), atol=0.02), f"{name} must start at the source camera"


def test_official_presets_match_the_reference_values():
    circle = load_trajectory("x_y_circle_cycle")
    cycle = [0, 10, 20, 10, 0, -10, -20, -10, 0]
    assert circle.x_up.tolist() == cycle + [0] * 5 + cycle + [0] * 5 + cycle
    assert circle.y_left.tolist() == [0] * 5 + cycle * 3 + [0] * 5 and circle.r.tolist() == [1] * 45
    zoom = load_trajectory("zoom_out_in")
    assert zoom.x_up.tolist() == [0] * 4 and zoom.y_left.tolist() == [0] * 4
    assert zoom.r.tolist() == [0, -0.25, -0.5, -0.75, -1, -0.75, -0.5, -0.25, 0, 0, 0.25, 0.5, 0.75, 1, 0.75, 0.5,
                               0.25, 0]


def test_presets_look_at_their_subject():
    crane = load_trajectory("crane_up").resolve(9).rel_c2w.numpy()
    assert crane[-1, 1, 3] < 0 and crane[-1, 1, 2] > 0                          # rose (-y), tilted down (+y view)
    assert crane[-1, 1, 1] > 0.9                                                # not upside down
    pan = load_trajectory("pan_left").resolve(9).rel_c2w.numpy()
    assert pan[-1, 0, 2] < 0                                                    # view turned to the left


BAD_INPUTS = [
    ("empty.txt", b"", 1, "empty"),
    ("two.txt", b"0 10\n0 5\n", 2, "only 2 line"),
    ("word.txt", b"0 10\n0 abc\n1 1\n", 2, "'abc' is not a number"),
    ("nan.txt", b"0 10\n0 nan\n1 1\n", 2, "not a finite number"),
    ("single.txt", b"0 10\n5\n1 1\n", 2, "single keyframe"),
    ("huge.txt", b"0 1\n" + b"0 " * 1_000_000 + b"\n1 1\n", 2, "at most"),
    ("binary.txt", b"0 1\n\x00\x01\x02\xff", 2, "binary file"),
    ("huge.json", b'{"keyframes": [\n' + b'{"at": 0, "position": [0, 0, 0]},\n' * 40_000 + b'{"at": 1}]}', 1,
     "40001 keyframes; at most"),  # line numbers were found in quadratic time: this took minutes
    ("schema.json", b'{"keyframes": [\n {"at": 0, "position": [0, 0, 0]},\n {"at": 5, "positon": [1, 0, 0]}\n]}', 3,
     "unknown field"),
    ("unknown.json", b'{\n "cameras": []\n}', 1, "unknown JSON trajectory"),
    ("badjson.json", b'{"keyframes": [\n {"at": 0,,}\n]}', 2, "invalid JSON"),
    ("one_key.json", b'{"keyframes": [\n {"at": 0, "orbit": {"yaw": 3}}\n]}', 2, "at least 2"),
    ("nerf.json", b'{"render_height": 480, "render_width": 832, "camera_path": [\n {"fov": 50}\n]}', 2,
     "camera_to_world"),
    ("poses.txt", b"1 0 0 0 0 1 0 0 0 0 1 0\n1 0 0 0 0 1 0 0 0 0 1\n", 2, "11 numbers"),
    ("skew.txt", b"2 0 0 0 0 1 0 0 0 0 1 0\n" * 4, 1, "not a rigid transform"),
]


@pytest.mark.parametrize("name,data,line,message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_one_line_with_file_and_line(tmp_path, name, data, line, message):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(TrajectoryError) as info:
        load_trajectory(path).resolve(20)
    text = info.value.one_line()
    assert message in text and f"{path}:{line}:" in text and "\n" not in text
