"""Pipeline pieces the rerender adds: the generator's padded length, padded scenes, depth resampled onto
another canvas, and which depth weights a run needs (consistent with the depth stage's cache)."""

from __future__ import annotations

import shutil

import pytest
import torch

from inspatio_cli.cameras import CameraOptions, TimeControl
from inspatio_cli.depth import DepthResult
from inspatio_cli.depth.estimate import DepthSettings, cache_path
from inspatio_cli.errors import DepthError
from inspatio_cli.scene import depth_weights_needed, open_scene, padded_length, resample_depth, resolve_depth
from inspatio_cli.scene_stream import warped_chunks
from test_preview_pipeline import H, W, planar_depth, scene_files


@pytest.fixture
def clip(tmp_path):
    """20 frames at 10 fps, 48x80, with its sidecar depth."""
    return scene_files(tmp_path, 20, 10)


@pytest.mark.parametrize("frames,padded", [(1, 9), (8, 9), (9, 9), (10, 21), (21, 21), (22, 33), (49, 57), (50, 57)])
def test_padded_length_examples(frames, padded):
    assert padded_length(frames) == padded


def test_padded_length_is_the_smallest_whole_chunk_cover():
    covers = [p for p in range(9, 700) if (p - 1) % 4 == 0 and ((p - 1) // 4 + 1) % 3 == 0]
    assert covers[:3] == [9, 21, 33]
    for n in range(1, 600):
        assert padded_length(n) == min(p for p in covers if p >= n)


def test_padded_scene_repeats_the_last_frame_and_warps_the_same(clip):
    camera = CameraOptions(time=TimeControl.from_options(reverse=["3:9"], freeze=["12:3"]))
    scene = open_scene(clip["video"], clip["traj"], camera=camera)
    n = scene.num_frames
    padded = scene.padded(padded_length(n))
    assert padded.num_frames == 33 and scene.num_frames == n == 23
    assert torch.equal(padded.trajectory.time_map[:n], scene.trajectory.time_map)
    assert (padded.trajectory.time_map[n:] == scene.trajectory.time_map[-1]).all()
    assert torch.equal(padded.cameras.target_w2c[n:], scene.cameras.target_w2c[-1:].expand(33 - n, 4, 4))
    whole = torch.cat([c.warped for c in warped_chunks(scene, 5)])
    longer = torch.cat([c.warped for c in warped_chunks(padded, [c.frames for c in padded.trajectory.chunks()])])
    assert torch.equal(longer[:n], whole)
    assert torch.equal(longer[n:], whole[-1:].expand(33 - n, -1, -1, -1))
    assert scene.padded(n) is scene


def test_depth_is_resampled_onto_the_requested_canvas(clip, tmp_path):
    large = tmp_path / "large.safetensors"
    planar_depth(20, (2 * H, 2 * W)).save(large)
    with pytest.raises(DepthError, match="model size"):
        open_scene(clip["video"], clip["traj"], depth=large, size=(H, W))
    scene = open_scene(clip["video"], clip["traj"], depth=large, size=(H, W), resample_depth=True)
    expected = planar_depth(20)
    assert torch.equal(scene.depth.depth, expected.depth) and torch.allclose(scene.depth.K, expected.K)
    assert scene.describe()["depth_resampled_from"] == f"{2 * H}x{2 * W}"


def test_resampled_pad_depth_fills_the_letterbox_with_the_far_depth():
    depth = planar_depth(2, (32, 32))
    depth.confidence = torch.ones(2, 32, 32)
    out = resample_depth(depth, (100, 100), (32, 64), fit="pad")
    assert out.size == (32, 64) and torch.equal(out.depth[:, :, 16:48], depth.depth)
    assert (out.depth[:, :, :16] == 3.0).all() and (out.confidence[:, :, :16] == 0).all()
    assert torch.allclose(out.K[:, 0, 2], depth.K[:, 0, 2] + 16)


def test_depth_weights_needed_matches_what_resolve_depth_uses(clip, tmp_path, monkeypatch):
    monkeypatch.setenv("INSPATIO_CACHE_DIR", str(tmp_path / "cache"))
    assert depth_weights_needed(clip["video"]) == []
    assert depth_weights_needed(clip["video"], clip["depth"]) == []
    lonely = shutil.copy(clip["video"], tmp_path / "lonely.mp4")
    assert depth_weights_needed(lonely, size=(H, W)) == ["depth"]
    # an estimate cached by the depth stage for these settings is found, and resolve_depth loads it
    DepthResult.load(clip["depth"]).save(cache_path(lonely, DepthSettings(size=(H, W))))
    assert depth_weights_needed(lonely, size=(H, W)) == []
    assert depth_weights_needed(lonely, size=(2 * H, 2 * W)) == ["depth"]
    result, origin = resolve_depth(lonely, size=(H, W), weights_dir=tmp_path / "no-weights")
    assert result.size == (H, W) and "estimate" in origin
