"""The v1.5 scene depth folder on synthetic data: encode -> decode round trips, and bad input as one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inspatio_cli.depth.scene15 import (INTRINSICS_FILE, MAX_UINT16, POSES_FILE, RANGE_FILE, decode_depth,
                                        depth_to_rgb, encode_depth, image_depth_codes, image_depth_range,
                                        iter_depth_video, load_matrix, read_depth_png, read_scene_depth,
                                        rgb_to_depth, save_matrix, write_depth_video, write_scene_depth)
from inspatio_cli.errors import DepthError, InputError

H, W = 16, 24


def cameras(views: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Float32 K (V, 3, 3) and world-to-camera (V, 4, 4) with awkward values (many significant digits)."""
    rng = np.random.default_rng(seed)
    K = np.zeros((views, 3, 3), dtype=np.float32)
    K[:, 0, 0], K[:, 1, 1] = rng.uniform(20, 40, views), rng.uniform(20, 40, views)
    K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = W / 2, H / 2, 1
    tcw = np.tile(np.eye(4, dtype=np.float32), (views, 1, 1))
    tcw[:, :3, :] += rng.normal(0, 1e-3, (views, 3, 4)).astype(np.float32)
    return K, tcw


def depth_maps(views: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.5, 30.0, (views, H, W)).astype(np.float32)


def assert_one_line(exc: pytest.ExceptionInfo, names: str) -> None:
    """The error is an input error (exit 3) on one line that names the file."""
    assert isinstance(exc.value, InputError) and exc.value.exit_code == 3
    text = exc.value.one_line()
    assert "\n" not in text and names in text, text


def test_quantisation_round_trip_is_within_half_a_step() -> None:
    depth = depth_maps(3)
    low, high = float(depth.min()), float(depth.max())
    codes = encode_depth(depth, low, high)
    assert codes.dtype == np.uint16 and codes.min() == 0 and codes.max() == MAX_UINT16
    back = decode_depth(codes, low, high)
    assert back.dtype == np.float32
    assert np.abs(back.astype(np.float64) - depth).max() <= (high - low) / MAX_UINT16 / 2 + 1e-5
    np.testing.assert_array_equal(encode_depth(back, low, high), codes)


def test_quantisation_rounds_half_to_even_and_handles_an_empty_range() -> None:
    step = 1.0 / MAX_UINT16
    np.testing.assert_array_equal(encode_depth(np.array([0.5 * step, 1.5 * step, 2.5 * step]), 0.0, 1.0), [0, 2, 2])
    np.testing.assert_array_equal(encode_depth(np.array([-1.0, 2.0, np.nan]), 0.0, 1.0), [0, MAX_UINT16, 0])
    np.testing.assert_array_equal(encode_depth(np.array([3.0, 4.0]), 5.0, 5.0), [0, 0])


def test_image_codes_store_unknown_depth_as_zero() -> None:
    depth = np.array([[[2.0, np.nan, -1.0], [np.inf, 0.0, 4.0]]], dtype=np.float32)
    codes, (low, high) = image_depth_codes(depth)
    assert (low, high) == (0.0, 4.0)
    np.testing.assert_array_equal(codes, [[[32768, 0, 0], [0, 0, MAX_UINT16]]])
    assert image_depth_range(np.full((1, 2, 2), np.nan)) == (0.0, 1.0)
    assert image_depth_range(np.zeros((1, 2, 2))) == (0.0, 1e-6)


def test_rgb_split_is_exactly_invertible() -> None:
    codes = np.arange(0, MAX_UINT16 + 1, dtype=np.uint16).reshape(256, 256)
    rgb = depth_to_rgb(codes)
    assert rgb.dtype == np.uint8 and (rgb[..., 2] == 0).all()
    np.testing.assert_array_equal(rgb_to_depth(rgb), codes)


def test_matrices_survive_text_exactly(tmp_path: Path) -> None:
    K, tcw = cameras(5)
    for matrices, side in ((K, 3), (tcw, 4)):
        path = save_matrix(tmp_path / f"m{side}.txt", matrices)
        assert len(path.read_text().splitlines()) == 5
        read = load_matrix(path, side)
        assert read.dtype == np.float32
        np.testing.assert_array_equal(read, matrices)


@pytest.mark.parametrize("views", [1, 4])
def test_image_scene_round_trip(tmp_path: Path, views: int) -> None:
    depth = depth_maps(views)
    depth[0, :3, :3] = np.nan
    K, tcw = cameras(views)
    written = write_scene_depth(tmp_path / "depth", depth, K, tcw[:, :3], kind="image")
    names = sorted(p.name for p in (tmp_path / "depth").iterdir())
    pngs = ["depth.png"] if views == 1 else [f"depth_{v:02d}.png" for v in range(views)]
    assert names == sorted(pngs + [INTRINSICS_FILE, RANGE_FILE, POSES_FILE])
    with Image.open(tmp_path / "depth" / pngs[0]) as image:
        assert image.mode == "I;16" and image.size == (W, H)
    scene = read_scene_depth(tmp_path / "depth", size=(H, W))
    assert scene.kind == "image" and scene.num_views == views and scene.size == (H, W)
    np.testing.assert_array_equal(scene.codes, written.codes)
    np.testing.assert_array_equal(scene.K.numpy(), K)
    np.testing.assert_array_equal(scene.source_tcw.numpy(), tcw)
    back = scene.depth().numpy()
    assert (back[0, :3, :3] == 0).all()
    known = np.isfinite(depth)
    assert np.abs(back[known] - depth[known]).max() <= scene.depth_range[1] / MAX_UINT16
    assert scene.depth([1 % views]).shape == (1, H, W)


def test_video_scene_round_trip_is_lossless(tmp_path: Path) -> None:
    depth = depth_maps(6, seed=1)
    K, tcw = cameras(6, seed=1)
    written = write_scene_depth(tmp_path / "depth", depth, K, tcw, kind="video", fps=24)
    assert written.depth_range == (float(f"{depth.min():.9g}"), float(f"{depth.max():.9g}"))
    scene = read_scene_depth(tmp_path / "depth", size=(H, W))
    assert scene.kind == "video" and scene.num_views == 6
    np.testing.assert_array_equal(scene.codes, written.codes)
    np.testing.assert_array_equal(scene.source_tcw.numpy(), tcw)
    assert np.abs(scene.depth().numpy() - depth).max() <= (depth.max() - depth.min()) / MAX_UINT16


def test_depth_video_keeps_every_code(tmp_path: Path) -> None:
    """Lossless RGB: codes whose high and low bytes change independently come back bit for bit."""
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, MAX_UINT16 + 1, (H, W)).astype(np.uint16) for _ in range(3)]
    frames[0][:] = MAX_UINT16
    frames[1][:, ::2] = 0
    assert write_depth_video(tmp_path / "depth.mp4", frames, fps=15) == 3
    np.testing.assert_array_equal(np.stack(list(iter_depth_video(tmp_path / "depth.mp4"))), np.stack(frames))


def image_scene(folder: Path, views: int = 1) -> Path:
    write_scene_depth(folder, depth_maps(views), *cameras(views), kind="image")
    return folder


def test_a_depth_png_without_metadata_is_refused(tmp_path: Path) -> None:
    folder = image_scene(tmp_path / "depth")
    (folder / RANGE_FILE).unlink()
    with pytest.raises(DepthError) as exc:
        read_scene_depth(folder)
    assert_one_line(exc, str(folder / RANGE_FILE))
    assert "min max" in str(exc.value)


@pytest.mark.parametrize("text", ["", "3 1\n", "nan 2\n", "0 1 2\n", "zero one\n"])
def test_bad_metadata_is_refused(tmp_path: Path, text: str) -> None:
    folder = image_scene(tmp_path / "depth")
    (folder / RANGE_FILE).write_text(text)
    with pytest.raises(DepthError) as exc:
        read_scene_depth(folder)
    assert_one_line(exc, RANGE_FILE)


def test_wrong_sizes_are_refused(tmp_path: Path) -> None:
    folder = image_scene(tmp_path / "depth", views=4)
    with pytest.raises(DepthError) as exc:
        read_scene_depth(folder, size=(H + 2, W))
    assert_one_line(exc, "depth_00.png")
    Image.fromarray(np.zeros((H, W + 2), dtype=np.uint16)).save(folder / "depth_02.png")
    with pytest.raises(DepthError) as exc:
        read_scene_depth(folder)
    assert_one_line(exc, "depth_02.png")
    assert f"{W + 2}x{H}" in str(exc.value)


def test_video_frames_of_the_wrong_size_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "depth"
    write_scene_depth(folder, depth_maps(2), *cameras(2), kind="video", fps=10)
    with pytest.raises(DepthError) as exc:
        read_scene_depth(folder, size=(H, W + 8))
    assert_one_line(exc, "depth.mp4")


def test_an_eight_bit_png_is_not_depth(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((H, W), dtype=np.uint8)).save(tmp_path / "depth.png")
    with pytest.raises(DepthError) as exc:
        read_depth_png(tmp_path / "depth.png")
    assert_one_line(exc, "depth.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DepthError) as exc:
        read_depth_png(tmp_path / "broken.png")
    assert_one_line(exc, "broken.png")


def test_camera_files_must_match_the_depth(tmp_path: Path) -> None:
    folder = image_scene(tmp_path / "depth", views=4)
    lines = (folder / POSES_FILE).read_text().splitlines()
    (folder / POSES_FILE).write_text("\n".join(lines[:3]) + "\n")
    with pytest.raises(DepthError) as exc:
        read_scene_depth(folder)
    assert_one_line(exc, POSES_FILE)
    assert "3 matrices for 4 depth views" in str(exc.value)
    (folder / POSES_FILE).write_text("\n".join(lines[:3] + [" ".join(lines[3].split()[:15])]) + "\n")
    with pytest.raises(DepthError, match="matrix 4 has 15 numbers"):
        read_scene_depth(folder)
    (folder / INTRINSICS_FILE).write_text("1 0 0 0 one 0 0 0 1\n" * 4)
    with pytest.raises(DepthError, match="not a number") as exc:
        read_scene_depth(folder)
    assert_one_line(exc, INTRINSICS_FILE)
    (folder / INTRINSICS_FILE).write_text("1 0 0 0 nan 0 0 0 1\n" * 4)
    with pytest.raises(DepthError, match="non-finite"):
        read_scene_depth(folder)


def test_the_depth_files_must_be_unambiguous(tmp_path: Path) -> None:
    folder = image_scene(tmp_path / "depth", views=4)
    (folder / "depth_02.png").unlink()
    with pytest.raises(DepthError, match="without gaps") as exc:
        read_scene_depth(folder)
    assert_one_line(exc, str(folder))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DepthError, match="found none"):
        read_scene_depth(empty)
    both = image_scene(tmp_path / "both")
    (both / "depth.mp4").write_bytes(b"")
    with pytest.raises(DepthError, match="found depth.mp4, depth.png"):
        read_scene_depth(both)
    with pytest.raises(DepthError, match="no such scene depth folder"):
        read_scene_depth(tmp_path / "missing")


def test_a_damaged_depth_video_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "depth"
    write_scene_depth(folder, depth_maps(2), *cameras(2), kind="video", fps=10)
    (folder / "depth.mp4").write_bytes(b"not a video at all")
    with pytest.raises(DepthError) as exc:
        read_scene_depth(folder)
    assert_one_line(exc, "depth.mp4")
