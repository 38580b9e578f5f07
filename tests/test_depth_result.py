"""The depth cache file: round trips (plain, float16, gzip), validation errors, sidecar discovery."""

from __future__ import annotations

import math

import pytest
import torch

from inspatio_cli.depth import DepthResult, find_sidecar
from inspatio_cli.errors import DepthError
from memory import anonymous_memory, needs_linux_glibc


def _result(frames: int = 3, size: tuple[int, int] = (8, 12)) -> DepthResult:
    depth = torch.rand(frames, *size) * 4 + 0.5
    K = torch.tensor([[10.0, 0, size[1] / 2], [0, 10.0, size[0] / 2], [0, 0, 1]]).expand(frames, 3, 3).clone()
    c2w = torch.eye(4).repeat(frames, 1, 1)
    c2w[:, 0, 3] = torch.arange(frames) * 0.1
    return DepthResult(depth, K, c2w, meta={"model": "test", "units": "metric"})


@pytest.mark.parametrize("name, dtype, atol", [("a.safetensors", torch.float32, 0.0),
                                                ("a.safetensors", torch.float16, 3e-3),
                                                ("a.safetensors.gz", torch.float32, 0.0),
                                                ("a.safetensors.gz", torch.float16, 3e-3)])
def test_round_trip(tmp_path, name, dtype, atol):
    original = _result()
    original.save(tmp_path / name, depth_dtype=dtype)
    loaded = DepthResult.load(tmp_path / name)
    assert loaded.depth.dtype == dtype  # kept as stored: the warp converts the frames it uses
    assert torch.allclose(loaded.depth.float(), original.depth, atol=atol, rtol=atol)
    assert torch.equal(loaded.K, original.K) and torch.equal(loaded.c2w, original.c2w)
    assert loaded.meta == {"model": "test", "units": "metric"}
    assert [p.name for p in tmp_path.iterdir()] == [name]


@needs_linux_glibc
def test_a_long_depth_file_is_read_from_disk_not_held_in_memory(tmp_path):
    """An uncompressed depth file is memory-mapped: loading, validating and describing 64 frames at
    480x832 (102 MB of float32 depth) allocates a small fraction of that; frames are read when indexed."""
    frames, size = 64, (480, 832)
    depth = torch.rand(frames, *size) + 0.5
    K = torch.tensor([[500.0, 0, 416], [0, 500.0, 240], [0, 0, 1]]).expand(frames, 3, 3).clone()
    DepthResult(depth, K, torch.eye(4).repeat(frames, 1, 1)).save(tmp_path / "long.depth.safetensors")
    expected = depth[[3, 40]].clone()
    del depth
    before = anonymous_memory()
    loaded = DepthResult.load(tmp_path / "long.depth.safetensors")
    summary = loaded.describe()
    grown = anonymous_memory() - before
    assert grown < 30e6, f"{grown / 1e6:.0f} MB held after loading a 102 MB depth file"
    assert summary["frames"] == frames and 0.5 <= summary["depth_min"] < summary["depth_max"] <= 1.5
    assert torch.equal(loaded.depth[[3, 40]], expected)


@pytest.mark.parametrize("change, message", [
    (lambda r: r.depth.__setitem__((0, 0, 0), math.nan), "non-finite"),
    (lambda r: r.depth.__setitem__((1, 2, 3), 0.0), "positive"),
    (lambda r: r.depth.__setitem__((1, 2, 3), -1.0), "positive"),
    (lambda r: setattr(r, "K", r.K[:2]), "K must have shape"),
    (lambda r: setattr(r, "c2w", r.c2w[:, :3]), "c2w must have shape"),
    (lambda r: r.c2w.__setitem__((0, 0, 0), 3.0), "orthonormal"),
    (lambda r: r.K.__setitem__((0, 0, 0), -5.0), "focal"),
])
def test_validation_errors(tmp_path, change, message):
    result = _result()
    change(result)
    with pytest.raises(DepthError, match=message):
        result.save(tmp_path / "bad.safetensors")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", [b"", b"not a safetensors file at all", b"\x1f\x8b\x08garbage"])
def test_unreadable_files(tmp_path, content):
    path = tmp_path / "x.depth.safetensors.gz" if content.startswith(b"\x1f") else tmp_path / "x.safetensors"
    path.write_bytes(content)
    with pytest.raises(DepthError, match=str(path.name)):
        DepthResult.load(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DepthError, match="no such depth file"):
        DepthResult.load(tmp_path / "nope.safetensors")
    with pytest.raises(DepthError, match="not a file"):
        DepthResult.load(tmp_path)


def test_check_matches():
    result = _result(frames=3, size=(8, 12))
    result.check_matches(3, (8, 12))
    with pytest.raises(DepthError, match="3 frames but the video has 4"):
        result.check_matches(4, (8, 12))
    with pytest.raises(DepthError, match="8x12 but the model size is 480x832"):
        result.check_matches(3, (480, 832))


def test_sidecar_discovery(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    assert find_sidecar(video) is None
    _result().save(tmp_path / "clip.depth.safetensors.gz")
    assert find_sidecar(video) == tmp_path / "clip.depth.safetensors.gz"
