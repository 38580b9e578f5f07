"""``inspatio trajectory show|check|convert|presets``: outputs, exit codes, one-line errors, lint findings."""

from __future__ import annotations

import dataclasses
import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from inspatio_cli.cameras import CameraOptions, check_trajectory, load_trajectory
from inspatio_cli.cameras.loader import export_losses
from inspatio_cli.depth.result import DepthResult
from clirun import run

EXAMPLE_DEPTH = Path(__file__).resolve().parents[1] / "examples" / "room.depth.safetensors.gz"


@pytest.fixture(scope="module")
def room_depth(tmp_path_factory) -> Path:
    if not EXAMPLE_DEPTH.exists():
        pytest.skip("examples/room.depth.safetensors.gz is not present")
    out = tmp_path_factory.mktemp("depth") / "room.depth.safetensors"
    with gzip.open(EXAMPLE_DEPTH) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return out


def test_show_writes_a_png_for_a_preset_of_each_format(capsys, tmp_path):
    """One preset per file format (every preset resolving is tested in test_trajectory_formats.py)."""
    for name in ("orbit_left", "figure_eight"):
        out = tmp_path / f"{name}.png"
        code, _, err = run(capsys, "trajectory", "show", name, "-n", "49", "-o", str(out), "-q")
        assert code == 0, err
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_show_with_depth_and_time_edits(capsys, tmp_path, room_depth):
    out = tmp_path / "orbit.png"
    code, _, err = run(capsys, "trajectory", "show", "orbit_left", "--depth", str(room_depth), "--freeze", "20:8",
                       "--reverse", "30:40", "-o", str(out))
    assert code == 0 and out.exists() and "wrote" in err


def test_show_writes_the_format_its_name_asks_for(capsys, tmp_path):
    for name, magic in (("path.jpg", b"\xff\xd8\xff"), ("path.svg", b"<?xml"), ("path.pdf", b"%PDF")):
        code, _, err = run(capsys, "trajectory", "show", "orbit_left", "-n", "20", "-o", str(tmp_path / name), "-q")
        assert code == 0 and (tmp_path / name).read_bytes().startswith(magic), err
    code, _, err = run(capsys, "trajectory", "show", "orbit_left", "-n", "20", "-o", str(tmp_path / "path.txt"))
    assert code == 2 and "use png, jpg" in err and not (tmp_path / "path.txt").exists()


def test_check_exit_codes_and_json(capsys, tmp_path):
    code, out, _ = run(capsys, "trajectory", "check", "orbit_left", "-n", "57", "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["summary"]["frames"] == 57 and report["summary"]["padded_frames"] == 57
    code, out, _ = run(capsys, "trajectory", "check", "orbit_left", "-n", "20", "--json")
    issues = {i["code"]: i for i in json.loads(out)["issues"]}
    assert code == 0 and issues["speed"]["level"] == "warning" and issues["padded"]["level"] == "info"
    code, out, _ = run(capsys, "trajectory", "check", "orbit_left", "-n", "5", "--json")
    assert code == 0 and any(i["code"] == "short" for i in json.loads(out)["issues"])
    bad = tmp_path / "bad.txt"
    bad.write_text("0 1\n0 x\n1 1\n")
    code, _, err = run(capsys, "trajectory", "check", str(bad))
    assert code == 1 and f"error: {bad}:2: 'x' is not a number" in err


def test_check_count_mismatch_is_an_error(capsys, tmp_path):
    path = tmp_path / "poses.txt"
    path.write_text((" ".join(f"{v:g}" for v in np.eye(4).reshape(16)) + "\n") * 20)
    code, out, _ = run(capsys, "trajectory", "check", str(path), "-n", "30", "--json")
    report, failure = map(json.loads, out.splitlines())
    assert code == 1 and report["issues"][-1]["code"] == "count" and failure["event"] == "error"
    code, _, _ = run(capsys, "trajectory", "check", str(path), "-n", "30", "--resample", "-q")
    assert code == 0


def test_check_depth_findings(room_depth):
    depth = DepthResult.load(room_depth)
    far = check_trajectory("dolly_in", options=CameraOptions(scale=14.0), depth=depth)
    codes = {i.code: i.level for i in far.issues}
    assert not far.ok and codes["inside-geometry"] == "error" and codes["large-move"] == "warning"
    near = check_trajectory("pan_left", depth=depth)
    assert near.ok and "inside-geometry" not in {i.code for i in near.issues}


def test_check_warns_about_foreign_start(tmp_path):
    poses = np.repeat(np.eye(4)[None], 9, axis=0)
    poses[:, :3, 3] = [5.0, 0.0, 2.0]
    np.save(tmp_path / "p.npy", poses)
    report = check_trajectory(tmp_path / "p.npy")
    assert any(i.code == "start" and "--anchor first" in i.message for i in report.issues)
    report = check_trajectory(tmp_path / "p.npy", options=CameraOptions(anchor="first"))
    assert not any(i.code == "start" for i in report.issues)


@pytest.mark.parametrize("to,suffix", [("tcw", ".txt"), ("c2w", ".txt"), ("npy", ".npy"), ("json", ".json"),
                                       ("nerfstudio", ".json")])
def test_convert_round_trip_through_the_cli(capsys, tmp_path, to, suffix):
    out = tmp_path / f"path{suffix}"
    code, _, err = run(capsys, "trajectory", "convert", "push_in_orbit", "-n", "33", "--to", to, "-o", str(out))
    assert code == 0, err
    fmt = {"tcw": "tcw", "c2w": "matrices"}.get(to)
    back = load_trajectory(out, fmt=fmt).resolve(33)
    original = load_trajectory("push_in_orbit").resolve(33)
    assert np.allclose(back.rel_c2w.numpy(), original.rel_c2w.numpy(), atol=1e-6)


def test_convert_says_which_intrinsics_a_format_cannot_keep(capsys, tmp_path):
    source = tmp_path / "path.json"
    source.write_text('{"keyframes": [{"at": 0, "position": [0, 0, 0], "fov": 60}, '
                      '{"at": 1, "position": [0.1, 0, 0], "fov": 60}]}')
    for to, name, lost in (("tcw", "a.txt", "hold poses only"), ("npy", "a.npy", "hold poses only"),
                           ("npy", "a.npz", None), ("json", "a.json", None), ("nerfstudio", "n.json", None)):
        code, _, err = run(capsys, "trajectory", "convert", source, "-n", "9", "--to", to, "-o", tmp_path / name)
        assert code == 0 and (lost in err if lost else "warning" not in err), (to, err)


def test_convert_keyframes_need_a_length(capsys, tmp_path):
    code, _, err = run(capsys, "trajectory", "convert", "orbit_left", "--to", "tcw", "-o", str(tmp_path / "x.txt"))
    assert code == 2 and "--frames" in err


def test_presets_command(capsys):
    code, out, _ = run(capsys, "trajectory", "presets", "--json")
    presets = json.loads(out)
    assert code == 0 and "orbit_left" in presets and presets["orbit_left"]["description"].startswith("Orbit left")


@pytest.mark.parametrize("data", [b"", b"0 1\n1 2\n", b"0 1\nzz 1\n1 1\n", b"0 1\n0 nan\n1 1\n", b"0 1\n3\n1 1\n",
                                  b"\x00\x01binary", b'{"keyframes": 3}'])
def test_bad_files_give_one_line_errors(capsys, tmp_path, data):
    path = tmp_path / ("bad.json" if data.startswith(b"{") else "bad.txt")
    path.write_bytes(data)
    code, _, err = run(capsys, "trajectory", "show", str(path), "-o", str(tmp_path / "x.png"))
    lines = err.strip().splitlines()
    assert code == 3 and len(lines) == 1 and lines[0].startswith(f"error: {path}:") and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_bad_options_are_usage_errors(capsys):
    for args in (["--freeze", "3"], ["--extend", "bounce"], ["--direction", "w2c"], ["--slow", "5:2:2"]):
        code, _, err = run(capsys, "trajectory", "check", "orbit_left", "-n", "20", *args)
        assert code == 2 and err.startswith("error:"), (args, err)


def test_nerfstudio_export_names_an_off_centre_principal_point(tmp_path):
    source = tmp_path / "path.json"
    source.write_text('{"keyframes": [{"at": 0, "position": [0, 0, 0], "fov": 60}, '
                      '{"at": 1, "position": [0.1, 0, 0], "fov": 60}]}')
    traj = load_trajectory(source).resolve(9)
    assert export_losses(traj, "nerfstudio", "n.json") is None
    shifted = traj.K.clone()
    shifted[:, 0, 2] += 12.0
    lost = export_losses(dataclasses.replace(traj, K=shifted), "nerfstudio", "n.json")
    assert lost is not None and "12.0 px off centre" in lost
