"""``--align-to``: a path written in the coordinate system of the user's own source cameras, fitted (Sim(3))
onto the depth's cameras and mapped into the scene; the fit's report, its doubts and its bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from inspatio_cli.batch import JobDefaults, plan_jobs, read_manifest
from inspatio_cli.cameras import CameraOptions, check_trajectory
from inspatio_cli.cameras.align import LARGE_RESIDUAL_FRACTION
from inspatio_cli.depth import DepthResult
from inspatio_cli.geometry.se3 import euler_to_matrix, make_pose
from inspatio_cli.geometry.sim3 import Sim3
from inspatio_cli.depth.postprocess import resample_depth
from inspatio_cli.scene import open_scene
from inspatio_cli.scene_stream import warped_chunks
from inspatio_cli.video import probe
from clirun import run
from test_preview_pipeline import H, W, planar_depth, scene_files

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "room.mp4"
EXAMPLE_DEPTH = ROOT / "examples" / "room.depth.safetensors.gz"
THEIRS = Sim3(2.5, Rotation.from_euler("xyz", [30.0, -50.0, 110.0], degrees=True).as_matrix(), np.array([3.0, -1.0, 7.5]))
"""The user's coordinate system, from ours: scaled, rotated and shifted."""
CLIP_FRAMES = 12


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_poses(path: Path, c2w: np.ndarray) -> Path:
    """``c2w (n, 4, 4)`` as a c2w matrices text file, one pose per line, at full float64 precision."""
    np.savetxt(path, np.asarray(c2w).reshape(len(c2w), 16), fmt="%.17g")
    return path


def source_cameras(n: int) -> np.ndarray:
    """``(n, 4, 4)`` source c2w that move along a curve and turn, the first one at the origin."""
    k = np.arange(n, dtype=np.float64)
    R = euler_to_matrix(np.stack([1.5 * k, 0.8 * np.sin(k), 0.3 * k], 1), "YXZ")
    return make_pose(R, np.stack([0.05 * k, 0.02 * np.sin(0.7 * k), 0.01 * k ** 1.5], 1))


def path_poses(n: int) -> np.ndarray:
    """A target path ``(n, 4, 4)`` in our convention: relative to the first source camera."""
    k = np.arange(n, dtype=np.float64)
    return make_pose(euler_to_matrix(np.stack([-0.5 * k, 0.2 * k, 0 * k], 1), "YXZ"),
                     np.stack([0.01 * k, -0.003 * k, 0.02 * k], 1))


def depth_with(c2w: np.ndarray, size: tuple[int, int] = (6, 8), distance: float = 4.0) -> DepthResult:
    """A flat scene at ``distance`` (with a nearer box) seen by the cameras ``c2w``."""
    depth = planar_depth(len(c2w), size, distance=distance)
    return DepthResult(depth.depth, depth.K, torch.from_numpy(c2w).float(), None, depth.meta)


def user_files(folder: Path, ours: np.ndarray, path: np.ndarray) -> tuple[Path, Path]:
    """The user's cameras of the source frames and their path, both written in :data:`THEIRS`."""
    return (write_poses(folder / "cams.txt", THEIRS.apply_to_poses(ours)),
            write_poses(folder / "path.txt", THEIRS.apply_to_poses(ours[0] @ path)))


@pytest.mark.parametrize("outliers", [(), (3, 8)])
def test_a_path_in_a_scaled_rotated_shifted_system_is_aligned_back(tmp_path, outliers):
    n = 12
    depth = depth_with(source_cameras(n))
    ours = depth.c2w.double().numpy()
    cams, path = user_files(tmp_path, ours, path_poses(n))
    if outliers:
        theirs = np.loadtxt(cams).reshape(n, 4, 4)
        theirs[outliers[0], :3, 3] += 5.0
        theirs[outliers[1], :3, :3] = Rotation.from_euler("y", 40, degrees=True).as_matrix() @ theirs[outliers[1], :3, :3]
        write_poses(cams, theirs)
    options = CameraOptions(align_to=str(cams))
    aligned = options.align(options.load(path).resolve(n), depth)
    assert torch.allclose(aligned.rel_c2w, torch.from_numpy(path_poses(n)), atol=1e-4, rtol=0)
    fit = aligned.meta["alignment"]
    assert fit["scale"] == pytest.approx(1 / THEIRS.scale, rel=1e-6)
    assert fit["rotation_deg"] == pytest.approx(float(Rotation.from_matrix(THEIRS.R).magnitude() * 180 / np.pi), abs=1e-4)
    assert fit["outliers"] == list(outliers) and fit["inliers"] == n - len(outliers)
    assert max(r for k, r in enumerate(fit["residual"]["per_frame"]) if k not in outliers) < 1e-6
    assert all(fit["residual"]["per_frame"][k] > 1.0 or fit["residual"]["per_frame_deg"][k] > 30 for k in outliers)


def test_two_frames_and_centres_on_a_line_still_fit_with_a_warning(tmp_path):
    k = np.arange(5, dtype=np.float64)
    turning = make_pose(euler_to_matrix(np.stack([3 * k, k, 0 * k], 1), "YXZ"), np.outer(k, [0.1, 0.0, 0.05]))
    for n, doubt in ((2, "rests on 2 frames"), (5, "lie on a line")):
        depth = depth_with(turning[:n])
        cams, path = user_files(tmp_path, depth.c2w.double().numpy(), path_poses(n))
        options = CameraOptions(align_to=str(cams))
        aligned = options.align(options.load(path).resolve(n), depth)
        assert torch.allclose(aligned.rel_c2w, torch.from_numpy(path_poses(n)), atol=1e-4, rtol=0)
        report = check_trajectory(path, options=options, depth=depth).as_dict()
        assert any(doubt in issue["message"] for issue in report["issues"] if issue["level"] == "warning")


@pytest.fixture(scope="module")
def example_scene(tmp_path_factory) -> dict:
    """The bundled example's depth moved onto a 48x80 canvas once (its committed cameras kept as they are)."""
    if not EXAMPLE.exists() or not EXAMPLE_DEPTH.exists():
        pytest.skip("the bundled example is not present")
    folder = tmp_path_factory.mktemp("example")
    info = probe(EXAMPLE)
    small = resample_depth(DepthResult.load(EXAMPLE_DEPTH), (info.height, info.width), (H, W))
    return {"dir": folder, "depth": small.save(folder / "room.depth.safetensors"), "c2w": small.c2w.double().numpy()}


def test_acceptance_a_path_in_another_system_warps_like_the_same_path_in_ours(example_scene):
    """The bundled example: our path, and the same path written in a known Sim(3)-transformed system with the
    source cameras in that system, give the same warped frames (the warp golden tolerance: per frame at
    most 0.5% of the mask differs, and the render within 1e-4 on 99% of the pixels both cover)."""
    folder, ours = example_scene["dir"], example_scene["c2w"]
    n = len(ours)
    ours_path = write_poses(folder / "ours.txt", path_poses(n))
    cams, theirs_path = user_files(folder, ours, path_poses(n))
    plain = open_scene(EXAMPLE, ours_path, depth=example_scene["depth"])
    aligned = open_scene(EXAMPLE, theirs_path, camera=CameraOptions(align_to=str(cams)), depth=example_scene["depth"])
    lmax = aligned.log_depth_max()
    for chunk in warped_chunks(plain, 25):
        render, mask = aligned.warp(chunk.frames, chunk.source, lmax)
        both = (mask * chunk.mask).bool().expand_as(render)
        assert ((mask != chunk.mask).flatten(1).float().mean(1) <= 0.005).all()
        close = ((render - chunk.warped).abs() <= 1e-4) | ~both
        assert (close.flatten(1).float().sum(1) - (~both).flatten(1).float().sum(1)
                >= 0.99 * both.flatten(1).float().sum(1)).all()
        assert mask.float().mean() > 0.5  # the path sees the scene: the comparison is not of empty frames


@pytest.fixture
def moving_clip(tmp_path: Path) -> dict:
    """The 48x80 test clip (:data:`CLIP_FRAMES`) with a sidecar depth whose cameras move, the user's cameras
    and path."""
    files = scene_files(tmp_path, CLIP_FRAMES, 12)
    depth = depth_with(source_cameras(CLIP_FRAMES), (H, W))
    depth.save(files["depth"])
    files["cams"], files["path"] = user_files(tmp_path, depth.c2w.double().numpy(), path_poses(CLIP_FRAMES))
    return files


def test_rerender_reports_the_fit_in_its_json_and_sidecar(moving_clip, tiny_weights, capsys):
    out = moving_clip["dir"] / "r.mp4"
    code, stdout, err = run(capsys, "rerender", moving_clip["video"], "-t", moving_clip["path"], "-o", out,
                            "--align-to", moving_clip["cams"], "--weights-dir", tiny_weights, "--size", f"{H}x{W}",
                            "--device", "cpu", "--decoder", "tae", "--prompt", "x", "--no-audio", "--json")
    assert code == 0, err
    events = [json.loads(line) for line in stdout.splitlines()]
    sidecar = json.loads(out.with_suffix(".json").read_text())
    scene = next(e for e in events if e["event"] == "scene")
    assert scene["trajectory"]["alignment"] == sidecar["scene"]["trajectory"]["alignment"]
    fit = sidecar["scene"]["trajectory"]["alignment"]
    assert fit["scale"] == pytest.approx(1 / THEIRS.scale, rel=1e-6) and fit["residual"]["max"] < 1e-6
    assert fit["cameras"] == str(moving_clip["cams"]) and len(fit["residual"]["per_frame_relative"]) == CLIP_FRAMES
    assert sidecar["settings"]["trajectory"]["align_to"]["path"] == str(moving_clip["cams"])


def test_trajectory_check_and_convert_with_align_to(moving_clip, tmp_path, capsys):
    cams, depth = moving_clip["cams"], moving_clip["depth"]
    out = tmp_path / "ours.txt"
    code, _, err = run(capsys, "trajectory", "convert", moving_clip["path"], "--align-to", cams, "--depth", depth,
                       "--to", "c2w", "-o", out)
    assert code == 0 and "aligned to" in err and "scale 0.4, rotation" in err, err  # the log line open_scene prints too
    assert np.allclose(np.loadtxt(out).reshape(-1, 4, 4), path_poses(CLIP_FRAMES), atol=1e-4)
    noisy = np.loadtxt(cams).reshape(CLIP_FRAMES, 4, 4)
    noisy[:, :3, 3] += np.random.default_rng(0).normal(0.0, 2.0, (CLIP_FRAMES, 3))
    write_poses(cams, noisy)
    near = depth_with(source_cameras(CLIP_FRAMES), distance=0.5).save(tmp_path / "near.depth.safetensors")
    code, stdout, err = run(capsys, "trajectory", "check", moving_clip["path"], "--align-to", cams, "--depth", near,
                            "--json")
    report = json.loads(stdout)
    assert code == 0 and report["summary"]["alignment"]["residual"]["median_relative"] > LARGE_RESIDUAL_FRACTION, err
    assert any("median scene depth" in i["message"] for i in report["issues"] if i["level"] == "warning")
    code, _, err = run(capsys, "trajectory", "check", moving_clip["path"], "--align-to", cams)
    assert code == 2 and "--depth" in err


DAMAGE = {
    "nan": lambda c2w: c2w.__setitem__((4, 0, 3), np.nan),
    "sheared": lambda c2w: c2w.__setitem__((2, slice(0, 3), slice(0, 3)), 1.5 * c2w[2, :3, :3]),
    "static": lambda c2w: c2w.__setitem__((slice(None), slice(0, 3), 3), c2w[0, :3, 3]),
    "short": None, "orbit": None, "--relative-to-source": None,
}


@pytest.mark.parametrize("damage,code,words", [
    ("nan", 3, "not a finite number"), ("sheared", 3, "not a rigid transform"), ("short", 3, f"{CLIP_FRAMES - 1} cameras"),
    ("static", 3, "do not move"), ("orbit", 2, "orbit"), ("--relative-to-source", 2, "relative"),
])
def test_bad_cameras_or_options_fail_in_one_line_and_write_nothing(moving_clip, capsys, damage, code, words):
    cams = moving_clip["cams"]
    theirs = np.loadtxt(cams).reshape(CLIP_FRAMES, 4, 4)
    args = ["preview", moving_clip["video"], "-t", moving_clip["path"], "-o", moving_clip["dir"] / "p.mp4",
            "--align-to", cams]
    if damage == "orbit":
        args[3] = moving_clip["traj"]
    elif damage.startswith("--"):
        args.append(damage)
    elif damage == "short":
        write_poses(cams, theirs[:-1])
    else:
        DAMAGE[damage](theirs)
        write_poses(cams, theirs)
    got, _, err = run(capsys, *args)
    assert got == code and words in err and len(err.strip().splitlines()) == 1, err
    assert not (moving_clip["dir"] / "p.mp4").exists()


def test_batch_key_align_to_is_relative_to_the_manifest(moving_clip):
    folder = moving_clip["dir"]
    manifest = folder / "jobs.jsonl"
    manifest.write_text(json.dumps({"video": "clip.mp4", "trajectory": "path.txt", "align_to": "cams.txt"}) + "\n")
    read = read_manifest(manifest)
    (job,) = plan_jobs(read.rows, JobDefaults(), base=read.base, output=str(folder / "out"))
    assert job.camera.align_to == str(folder / "cams.txt")



@pytest.mark.fuzz
def test_sweep_random_systems_and_outliers_are_aligned_back(tmp_path):
    """Random similarities (scale 1e-3..1e3), random camera paths of 4 to 40 frames and up to a quarter of
    outlier frames: the path comes back within 1e-4 and exactly the damaged frames are outliers."""
    rng = np.random.default_rng(7)
    for trial in range(200):
        n = int(rng.integers(4, 41))
        ours = make_pose(Rotation.random(n, random_state=trial).as_matrix(), rng.normal(0.0, 1.0, (n, 3)))
        ours[0] = np.eye(4)
        system = Sim3(float(10 ** rng.uniform(-3, 3)), Rotation.random(random_state=1000 + trial).as_matrix(),
                      rng.normal(0.0, 100.0, 3))
        depth = depth_with(ours)
        theirs = system.apply_to_poses(depth.c2w.double().numpy())
        bad = rng.choice(n, int(rng.integers(0, n // 4 + 1)), replace=False)
        theirs[bad, :3, 3] += system.scale * rng.choice([-1, 1], (len(bad), 3)) * rng.uniform(2.0, 5.0, (len(bad), 3))
        cams = write_poses(tmp_path / "cams.txt", theirs)
        path = write_poses(tmp_path / "path.txt", system.apply_to_poses(depth.c2w.double().numpy()[0] @ path_poses(n)))
        options = CameraOptions(align_to=str(cams))
        aligned = options.align(options.load(path).resolve(n), depth)
        assert torch.allclose(aligned.rel_c2w, torch.from_numpy(path_poses(n)), atol=1e-4, rtol=0), trial
        assert aligned.meta["alignment"]["outliers"] == sorted(bad.tolist()), trial


@pytest.mark.fuzz
def test_sweep_hostile_cameras_fail_only_as_input_errors(tmp_path):
    """Random pose files (huge, tiny, repeated, mirrored, non-finite values): a fit or one InspatioError."""
    from inspatio_cli.errors import InspatioError

    rng = np.random.default_rng(3)
    depth = depth_with(source_cameras(8))
    path = write_poses(tmp_path / "path.txt", path_poses(8))
    for trial in range(300):
        poses = make_pose(Rotation.random(8, random_state=trial).as_matrix(), rng.normal(0.0, 1.0, (8, 3)))
        kind = trial % 5
        if kind == 0:
            poses[:, :3, 3] *= 10.0 ** rng.uniform(-300, 300)
        elif kind == 1:
            poses[:, :3, 3] = poses[0, :3, 3]
        elif kind == 2:
            poses[:, :3, 0] *= -1.0
        elif kind == 3:
            poses[rng.integers(8), rng.integers(3), rng.integers(4)] = rng.choice([np.nan, np.inf, -np.inf])
        options = CameraOptions(align_to=str(write_poses(tmp_path / "cams.txt", poses)))
        try:
            aligned = options.align(options.load(path).resolve(8), depth)
        except InspatioError:
            continue
        assert torch.isfinite(aligned.rel_c2w).all(), trial
