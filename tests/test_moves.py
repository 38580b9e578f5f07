"""The ``moves`` trajectory format: grammar, resolution in the scene's median depth, errors, commands."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from clirun import run
from decoded import read_video
from inspatio_cli.cameras import load_trajectory
from inspatio_cli.cameras.formats.moves import MOVE_SPEED, TURN_SPEED
from inspatio_cli.errors import TrajectoryError
from inspatio_cli.geometry import se3
from inspatio_cli.render.preview import preview
from inspatio_cli.scene import open_scene
from test_preview_pipeline import H, W, scene_files

MEDIAN = 3.0
"""The median depth of ``planar_depth``: a wall at 3 with a nearer box over a sixteenth of the frame."""


def test_grammar_combined_moves_scales_and_files(tmp_path):
    inline = load_trajectory("moves:forward:4,forward+turn-left*0.5:6,look-up*2:2,still:3")
    assert inline.frame_count == 15 and inline.meta["format"] == "moves"
    assert inline.meta["segments"] == ["forward:4", "forward+turn-left*0.5:6", "look-up*2:2", "still:3"]
    c2w = inline.c2w
    assert np.allclose(c2w[0], np.eye(4))
    # pure translation for 4 frames: pose 4 sits 4 steps ahead, unrotated
    assert np.allclose(c2w[4][:3, :3], np.eye(3)) and np.allclose(c2w[4][:3, 3], [0, 0, 4 * MOVE_SPEED])
    # the arc turns 0.25 deg per frame to the left (the optical axis swings to -x) while moving ahead
    yaw = se3.rotation_angle_deg(c2w[4][:3, :3], c2w[10][:3, :3])
    assert yaw == pytest.approx(6 * 0.5 * TURN_SPEED) and c2w[10][0, 2] < 0 < c2w[10][2, 3] - c2w[4][2, 3]
    # looking up pitches the optical axis to -y (up in OpenCV axes); still keeps the pose
    assert c2w[12][1, 2] < c2w[10][1, 2] and np.allclose(c2w[12], c2w[14])
    text = "# a comment\nforward:4, forward+turn-left*0.5:6\nlook-up*2:2\n\nstill:3  # the end\n"
    (tmp_path / "path.moves").write_text(text)
    from_file = load_trajectory(tmp_path / "path.moves")
    assert np.array_equal(from_file.c2w, c2w) and from_file.meta["path"] == str(tmp_path / "path.moves")


@pytest.mark.parametrize("spec,message", [
    ("moves:fwd:3", "unknown move 'fwd'"),
    ("moves:forward:0", "at least 1 frame"),
    ("moves:forward:2.5", "not a whole number"),
    ("moves:forward*abc:3", "scale 'abc'"),
    ("moves:forward*0:3", "scale '0'"),
    ("moves:forward", "expected MOVE"),
    ("moves:", "no moves"),
])
def test_errors_name_the_segment(spec, message):
    with pytest.raises(TrajectoryError, match=message) as info:
        load_trajectory(spec)
    assert "\n" not in str(info.value)


def test_a_moves_file_error_names_its_line(tmp_path):
    path = tmp_path / "bad.moves"
    path.write_text("forward:4\n# fine so far\nturn-left:0\n")
    with pytest.raises(TrajectoryError, match="at least 1 frame") as info:
        load_trajectory(path)
    assert info.value.line == 3


def test_the_scene_resolves_moves_in_its_median_depth(tmp_path):
    """The camera travels 24 steps of MOVE_SPEED median depths, then turns 10 degrees (5 frames at scale 4)."""
    files = scene_files(tmp_path, 30, 10)
    scene = open_scene(files["video"], "moves:forward:24,turn-left*4:5,still:1")
    c2w = scene.trajectory.rel_c2w.numpy()
    assert scene.trajectory.meta["median_depth"] == MEDIAN and scene.num_frames == 30
    assert np.allclose(c2w[24][:3, 3], [0, 0, 24 * MOVE_SPEED * MEDIAN])
    assert np.allclose(c2w[29][:3, 3], c2w[24][:3, 3])
    assert se3.rotation_angle_deg(c2w[24][:3, :3], c2w[29][:3, :3]) == pytest.approx(5 * 4 * TURN_SPEED)
    assert c2w[29][0, 2] == pytest.approx(-math.sin(math.radians(10)))


def test_moves_with_preview_check_and_convert(tmp_path, capsys):
    files = scene_files(tmp_path, 13, 10)
    spec = "moves:forward*4:6,right+look-down:6,still:1"
    result = preview(files["video"], spec, tmp_path / "preview.mp4")
    frames = read_video(tmp_path / "preview.mp4").frames
    assert result.frames == 13 and frames.shape[:2] == (13, H) and frames.shape[2] % W == 0
    code, out, _ = run(capsys, "trajectory", "check", spec, "--depth", files["depth"], "--json")
    assert code == 0 and json.loads(out)["summary"]["format"] == "moves"
    code, _, _ = run(capsys, "trajectory", "convert", spec, "--depth", files["depth"], "-o", tmp_path / "c2w.npy",
                     "--to", "npy")
    converted = np.load(tmp_path / "c2w.npy")
    assert code == 0 and np.allclose(converted[6][:3, 3], [0, 0, 6 * 4 * MOVE_SPEED * MEDIAN])
    code, _, err = run(capsys, "trajectory", "convert", "moves:forward:3,jump:2", "-o", tmp_path / "x.npy",
                       "--to", "npy")
    assert code == 3 and "unknown move 'jump'" in err and len(err.strip().splitlines()) == 1
    assert torch.equal(torch.from_numpy(converted[0]), torch.eye(4, dtype=torch.float64))
