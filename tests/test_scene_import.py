"""``inspatio scene import|export``: every format round-trips, COLMAP models (text and binary) made from known
cameras import with their cameras and the depth scaled to their points, bad input is one line with exit 3 and
nothing written, and a preview runs on an imported scene along the model's own cameras."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from inspatio_cli.cameras import CameraOptions, load_trajectory
from inspatio_cli.cameras.formats.colmap import write_model_text
from inspatio_cli.depth import estimate
from inspatio_cli.depth.result import DepthResult
from inspatio_cli.depth.scene15 import read_scene_depth
from inspatio_cli.geometry import se3
from inspatio_cli.interchange import export_scene, import_scene
from inspatio_cli.interchange.checks import source_world_c2w
from inspatio_cli.scene import open_scene
from inspatio_cli.scene_stream import warped_chunks
from clirun import run
from media import make_clip, pattern

T, H, W = 4, 48, 80


def cameras(frames: int = T, seed: int = 0) -> np.ndarray:
    """float64 ``(frames, 4, 4)`` camera-to-world poses, frame 0 not at the origin."""
    rng = np.random.default_rng(seed)
    c2w = np.tile(np.eye(4), (frames, 1, 1))
    c2w[:, :3, :3] = Rotation.from_rotvec(rng.normal(size=(frames, 3)) * 0.1).as_matrix()
    c2w[:, :3, 3] = rng.normal(size=(frames, 3))
    return c2w


def scene(frames: int = T, seed: int = 0) -> DepthResult:
    """Random depth in [1, 4], per-frame intrinsics and :func:`cameras`, all exact in float32."""
    g = torch.Generator().manual_seed(seed)
    K = torch.tensor([[60.0, 0.0, 40.5], [0.0, 62.0, 23.25], [0.0, 0.0, 1.0]]).repeat(frames, 1, 1)
    K[:, 0, 0] += torch.arange(frames)
    return DepthResult(1 + 3 * torch.rand(frames, H, W, generator=g), K,
                       torch.from_numpy(cameras(frames, seed)).float(), meta={"fps": "12"})


def stub_depth(monkeypatch, result: DepthResult) -> list[dict]:
    """The depth model replaced by ``result`` (a test needs no weights); returns the calls' arguments."""
    calls = []

    def get_depth(video, **options):
        calls.append({"video": video, **options})
        return result

    monkeypatch.setattr(estimate, "get_depth", get_depth)
    return calls


def clip(folder: Path, frames: int = T) -> Path:
    return make_clip(folder / "clip.mp4", pattern(frames, H, W), fps=12)


def assert_same_cameras(imported: DepthResult, original: DepthResult) -> None:
    """K equal, and the poses (in the source's world) equal within float32 rounding; frame 0 the identity."""
    assert torch.equal(imported.K, original.K)
    np.testing.assert_allclose(source_world_c2w(imported), original.c2w.double().numpy(), atol=2e-6)
    np.testing.assert_allclose(imported.c2w[0].numpy(), np.eye(4), atol=1e-6)


@pytest.mark.parametrize("fmt", ["v15", "v15-community", "npz", "colmap"])
def test_export_then_import_gives_the_same_depth_and_cameras(fmt, tmp_path, monkeypatch):
    original = scene()
    source = original.save(tmp_path / "a.depth.safetensors")
    out = tmp_path / ("a.npz" if fmt == "npz" else fmt)
    written = export_scene(source, fmt, out)
    assert all(p.is_file() for p in written)
    video = None
    if fmt == "colmap":
        video = clip(tmp_path)
        stub_depth(monkeypatch, DepthResult(original.depth / 2.5, original.K * 2, torch.eye(4).repeat(T, 1, 1)))
    imported = import_scene(out, tmp_path / "b.depth.safetensors", video=video)
    assert imported.meta["import_format"] == fmt and DepthResult.load(tmp_path / "b.depth.safetensors").num_frames == T
    assert_same_cameras(imported, original)
    # the v1.5 layouts store depth in 16 bits over the clip's range; the others keep float32
    step = {"v15": 3 / 65535, "v15-community": 3 / 65535, "npz": 0, "colmap": 4 * 2 ** -23}[fmt]
    assert (imported.depth - original.depth).abs().max() <= step
    if fmt == "colmap":
        assert float(imported.meta["import_scale"]) == pytest.approx(2.5, rel=1e-6)


def test_an_image_scene_keeps_its_unknown_depth(tmp_path):
    """v1.5 image scenes store unknown depth as 0: imported as the frame's largest depth with confidence 0,
    and written back as 0."""
    depth = np.full((2, H, W), 2.0, np.float32)
    depth[0, :5] = 0.0
    depth[1, :, :3] = 0.0
    depth[1, 20, 30] = 5.0
    folder = tmp_path / "v15" / "depth"
    folder.mkdir(parents=True)
    for view in range(2):
        Image.fromarray(np.rint(depth[view] / 5.0 * 65535).astype(np.uint16)).save(folder / f"depth_0{view}.png")
    (folder / "metadata.txt").write_text("0 5\n")
    (folder / "source_intrinsics.txt").write_text("60 0 40 0 60 24 0 0 1\n" * 2)
    (folder / "source_tcw.txt").write_text("1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1\n1 0 0 -0.5 0 1 0 0 0 0 1 0 0 0 0 1\n")
    imported = import_scene(tmp_path / "v15", tmp_path / "i.depth.safetensors")
    unknown = torch.from_numpy(depth == 0)
    assert imported.meta["unknown_depth"] == str(int(unknown.sum())) and imported.meta["scene_kind"] == "image"
    assert torch.equal(imported.confidence == 0, unknown)
    assert torch.equal(imported.depth[0][unknown[0]], torch.full((5 * W,), 2.0))
    assert torch.equal(imported.depth[1][unknown[1]], torch.full((H * 3,), 5.0))
    np.testing.assert_allclose(imported.c2w[1, :3, 3].numpy(), [0.5, 0, 0])
    export_scene(tmp_path / "i.depth.safetensors", "v15", tmp_path / "back")
    again = read_scene_depth(tmp_path / "back" / "depth")
    assert again.kind == "image" and np.array_equal(again.depth().numpy() == 0, depth == 0)


def write_model_bin(folder: Path, K: np.ndarray, w2c: np.ndarray, size: tuple[int, int], names: list[str],
                    observations: list[tuple[np.ndarray, np.ndarray]], points: np.ndarray) -> None:
    """A binary COLMAP model (COLMAP's own layout) with one PINHOLE camera per image."""
    folder.mkdir(parents=True)
    h, w = size
    cams = struct.pack("<Q", len(K)) + b"".join(
        struct.pack("<iiQQdddd", i, 1, w, h, k[0, 0], k[1, 1], k[0, 2], k[1, 2]) for i, k in enumerate(K, 1))
    images = struct.pack("<Q", len(w2c))
    for i, (pose, name, (xy, ids)) in enumerate(zip(w2c, names, observations), 1):
        q = se3.matrix_to_quaternion(pose[:3, :3])
        images += struct.pack("<idddddddi", i, *q, *pose[:3, 3], i) + name.encode() + b"\0"
        images += struct.pack("<Q", len(ids)) + b"".join(struct.pack("<ddq", x, y, p + 1) for (x, y), p in zip(xy, ids))
    pts = struct.pack("<Q", len(points)) + b"".join(
        struct.pack("<QdddBBBdQ", p + 1, *xyz, 0, 0, 0, 0.0, 0) for p, xyz in enumerate(points))
    for name, data in (("cameras", cams), ("images", images), ("points3D", pts)):
        (folder / f"{name}.bin").write_bytes(data)


@pytest.mark.parametrize("form", ["text", "bin"])
def test_a_colmap_model_of_known_cameras(form, tmp_path, monkeypatch):
    """Cameras of images twice the video's size, points on the true depth: the import gives the cameras
    (K halved to the video), the true depth from the model's depth at another scale, and the model is a
    trajectory too."""
    truth = scene(seed=1)
    c2w = truth.c2w.double().numpy()
    K_cam = truth.K.double().numpy() * np.array([[2.0], [2.0], [1.0]])
    rng = np.random.default_rng(2)
    observations, points = [], []
    for frame in range(T):
        pixel = np.stack([rng.integers(0, W, 30), rng.integers(0, H, 30)], axis=1)
        d = truth.depth[frame].double().numpy()[pixel[:, 1], pixel[:, 0]]
        camera = np.linalg.solve(truth.K[frame].double().numpy(), np.c_[pixel, np.ones(30)].T).T * d[:, None]
        points.append(camera @ c2w[frame, :3, :3].T + c2w[frame, :3, 3])
        observations.append((pixel * 2.0, np.arange(30 * frame, 30 * frame + 30)))
    points = np.concatenate(points)
    points[:5] += 10.0  # outliers: the median ignores them
    names = [f"img_{i}.jpg" for i in (1, 2, 3, 10)]  # natural order: 10 is last
    model = tmp_path / "model"
    writer = write_model_text if form == "text" else write_model_bin
    writer(model, K_cam, se3.invert(c2w), (2 * H, 2 * W), names, observations, points)
    calls = stub_depth(monkeypatch, DepthResult(truth.depth * 0.2, truth.K, torch.eye(4).repeat(T, 1, 1)))
    imported = import_scene(model, tmp_path / "m.depth.safetensors", video=clip(tmp_path), size=(H, W))
    assert calls[0]["size"] == (H, W) and calls[0]["fit"] == "stretch"
    assert float(imported.meta["import_scale"]) == pytest.approx(5.0, rel=1e-6)
    assert ((imported.depth - truth.depth).abs() <= 1e-6 * truth.depth).all()
    assert_same_cameras(imported, truth)
    trajectory = load_trajectory(model)
    assert trajectory.meta["format"] == "colmap"
    poses, K = trajectory.sample(T, size=(H, W))
    np.testing.assert_allclose(poses, c2w, atol=1e-9)
    np.testing.assert_allclose(K, truth.K.double().numpy(), atol=1e-9)


def _npz(path: Path, **change) -> Path:
    arrays = {"depth": np.full((3, H, W), 2.0, np.float32), "K": np.float32([[60, 0, 40], [0, 60, 24], [0, 0, 1]]),
              "c2w": np.tile(np.eye(4, dtype=np.float32), (3, 1, 1)), "convention": np.array("opengl")}
    arrays.update(change)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def _reflected() -> np.ndarray:
    c2w = np.tile(np.eye(4, dtype=np.float32), (3, 1, 1))
    c2w[1, 0, 0] = -1.0
    return c2w


def _bad_v15(folder: Path, *, second: tuple[int, int] = (H, W), poses: int = 2) -> Path:
    depth = folder / "depth"
    depth.mkdir(parents=True)
    for view, size in enumerate([(H, W), second]):
        Image.fromarray(np.full(size, 1000, np.uint16)).save(depth / f"depth_0{view}.png")
    (depth / "metadata.txt").write_text("0 5\n")
    (depth / "source_intrinsics.txt").write_text("60 0 40 0 60 24 0 0 1\n" * 2)
    (depth / "source_tcw.txt").write_text("1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1\n" * poses)
    return folder


def _bad_colmap(folder: Path, *, images: int = T, quaternion: float = 1.0) -> Path:
    w2c = np.tile(np.eye(4), (images, 1, 1))
    names = [f"{i}.png" for i in range(images)]
    write_model_text(folder, np.tile(np.diag([60.0, 60.0, 1.0]), (images, 1, 1)), w2c, (H, W), names,
                     [(np.zeros((0, 2)), np.zeros(0, np.int64))] * images, np.zeros((0, 3)))
    text = (folder / "images.txt").read_text().replace("\n1 1 0 0 0 ", f"\n1 {quaternion} 0 0 0 ", 1)
    (folder / "images.txt").write_text(text)
    return folder


BAD = {
    "frame count": (lambda p: _npz(p / "s.npz", K=np.tile(np.eye(3, dtype=np.float32), (2, 1, 1))),
                    "2 intrinsics (K) for 3 depth frames"),
    "nan depth": (lambda p: _npz(p / "s.npz", depth=np.full((3, H, W), np.nan, np.float32)), "non-finite"),
    "inf pose": (lambda p: _npz(p / "s.npz", c2w=np.full((3, 4, 4), np.inf, np.float32)), "non-finite"),
    "not a rotation": (lambda p: _npz(p / "s.npz", c2w=np.tile(np.diag(np.float32([1.2, 1, 1, 1])), (3, 1, 1))),
                       "pose 0 is not a rotation"),
    "reflection": (lambda p: _npz(p / "s.npz", c2w=_reflected()), "pose 1 is a reflection"),
    "mixed conventions": (lambda p: _npz(p / "s.npz", convention=np.array(["opencv", "opengl", "opencv"])),
                          "mixed conventions"),
    "two pose arrays": (lambda p: _npz(p / "s.npz", w2c=np.tile(np.eye(4), (3, 1, 1))), "exactly one of c2w or w2c"),
    "depth of another size": (lambda p: _bad_v15(p / "v15", second=(H, W - 8)), "expected 80x48"),
    "v15 pose count": (lambda p: _bad_v15(p / "v15", poses=3), "3 matrices for 2 depth views"),
    "colmap frame count": (lambda p: _bad_colmap(p / "col", images=T - 1), f"{T - 1} images in the model for a video "
                           f"of {T} frames"),
    "colmap quaternion": (lambda p: _bad_colmap(p / "col", quaternion=1.5), "is not a rotation"),
    "colmap without points": (lambda p: _bad_colmap(p / "col"), "cannot scale the depth"),
    "not a scene": (lambda p: p, "not a scene this tool reads"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_3_and_nothing_written(case, tmp_path, capsys, monkeypatch):
    make, message = BAD[case]
    (tmp_path / "in").mkdir()
    source = make(tmp_path / "in")
    stub_depth(monkeypatch, scene())
    out = tmp_path / "out.depth.safetensors"
    extra = ["--video", clip(tmp_path)] if case.startswith("colmap") else []
    code, stdout, err = run(capsys, "scene", "import", source, "-o", out, *extra)
    assert code == 3 and stdout == "" and err.count("\n") == 1 and err.startswith("error: "), err
    assert message in err, err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith("out")]


def test_cli_import_json_no_overwrite_and_a_preview_along_the_models_own_cameras(tmp_path, capsys, monkeypatch):
    """A COLMAP model imported on the command line; previewing the imported scene with the model itself as
    the trajectory (relative to its first camera) puts every target camera on its source camera: full
    coverage and the source frames back. (The warp uses frame 0's K, centred, for every frame, as the
    official code: the cameras here have that K.)"""
    original = scene()
    original.depth[:] = 3.0
    original.K[:] = torch.tensor([[60.0, 0.0, W / 2], [0.0, 60.0, H / 2], [0.0, 0.0, 1.0]])  # as the warp uses it
    export_scene(original.save(tmp_path / "a.depth.safetensors"), "colmap", tmp_path / "col")
    video = clip(tmp_path)
    stub_depth(monkeypatch, DepthResult(original.depth / 2, original.K, torch.eye(4).repeat(T, 1, 1)))
    out = tmp_path / "imported.depth.safetensors"
    code, stdout, err = run(capsys, "scene", "import", tmp_path / "col", "--video", video, "-o", out, "--json",
                            "--size", f"{H}x{W}")
    assert code == 0, err
    summary = json.loads(stdout.splitlines()[-1])
    assert summary["output"] == str(out) and summary["import_format"] == "colmap" and summary["frames"] == T
    code, _, err = run(capsys, "scene", "import", tmp_path / "col", "--video", video, "-o", out)
    assert code == 2 and "already exists (give --overwrite" in err
    code, stdout, err = run(capsys, "preview", video, "-t", tmp_path / "col", "--anchor", "first", "--depth", out,
                            "-o", tmp_path / "p.mp4", "--json")
    assert code == 0, err
    assert json.loads(stdout.splitlines()[-1])["coverage"]["min"] == 1.0
    warped = list(warped_chunks(open_scene(video, tmp_path / "col", depth=out, camera=CameraOptions(anchor="first"))))
    assert sum(len(chunk.frames) for chunk in warped) == T
    for chunk in warped:
        assert (chunk.warped - chunk.source).abs().max() < 1e-4


@pytest.mark.fuzz
def test_damaged_binary_models_are_one_line_errors(tmp_path):
    """Every truncation and many byte changes of a binary model read as a model or as a one-line input error."""
    from inspatio_cli.cameras.formats.colmap import read_model
    from inspatio_cli.errors import InputError

    c2w = cameras()
    pixels = np.array([[10.0, 12.0], [30.0, 7.0]])
    write_model_bin(tmp_path / "good", np.tile(np.diag([60.0, 60.0, 1.0]), (T, 1, 1)), se3.invert(c2w), (H, W),
                    [f"{i}.png" for i in range(T)], [(pixels, np.arange(2))] * T, np.ones((2, 3)))
    rng = np.random.default_rng(0)
    for name in ("cameras", "images", "points3D"):
        data = (tmp_path / "good" / f"{name}.bin").read_bytes()
        damaged = [data[:cut] for cut in range(len(data))]
        for _ in range(200):
            changed = bytearray(data)
            changed[rng.integers(len(data))] = rng.integers(256)
            damaged.append(bytes(changed))
        for number, blob in enumerate(damaged):
            folder = tmp_path / f"{name}{number}"
            folder.mkdir()
            for other in ("cameras", "images", "points3D"):
                (folder / f"{other}.bin").write_bytes(blob if other == name else
                                                      (tmp_path / "good" / f"{other}.bin").read_bytes())
            try:
                read_model(folder, points=True)
            except InputError as exc:
                assert "\n" not in str(exc)
