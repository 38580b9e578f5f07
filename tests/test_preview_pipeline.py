"""Scene preparation and streaming warp (``inspatio_cli.scene``): depth resolution and checks, chunked
equals whole-clip, lazy decoding in output order with time edits."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

from decoded import read_video
from inspatio_cli import scene_stream
from inspatio_cli.cameras import CameraOptions, TimeControl
from inspatio_cli.depth import DepthResult
from inspatio_cli.errors import DepthError, WeightsError
from inspatio_cli.files import fingerprint_file
from inspatio_cli.scene import open_scene, resolve_depth
from inspatio_cli.scene_stream import warped_chunks
from inspatio_cli.progress import Reporter
from inspatio_cli.video import Fit
from media import make_clip, pattern

H, W = 48, 80
ORBIT = "0 -4 -8\n0 6 12\n1.5 1.5 1.5\n"


def planar_depth(frames: int, size: tuple[int, int] = (H, W), distance: float = 3.0) -> DepthResult:
    """A wall at ``distance`` in front of a static camera, with a nearer box so the warp has occlusions."""
    h, w = size
    depth = torch.full((frames, h, w), distance)
    depth[:, h // 4:h // 2, w // 4:w // 2] = distance / 2
    K = torch.tensor([[0.8 * w, 0.0, w / 2], [0.0, 0.8 * w, h / 2], [0.0, 0.0, 1.0]]).expand(frames, 3, 3)
    return DepthResult(depth=depth, K=K.clone(), c2w=torch.eye(4).repeat(frames, 1, 1), meta={"units": "metric"})


def scene_files(folder: Path, frames: int, fps: float, audio_seconds: float = 0.0) -> dict[str, Path]:
    """A 48x80 video ``clip.mp4`` with its sidecar depth and an orbit trajectory file, in ``folder``."""
    video = make_clip(folder / "clip.mp4", pattern(frames, H, W), fps=fps, audio_seconds=audio_seconds)
    depth = planar_depth(frames).save(folder / "clip.depth.safetensors")
    traj = folder / "orbit.txt"
    traj.write_text(ORBIT)
    return {"video": video, "traj": traj, "depth": depth, "dir": folder}


def count_calls(monkeypatch, owner, name: str, modules=()) -> list:
    """Replace ``owner.name`` (and the same function imported into ``modules``) by a wrapper that records
    its arguments in the returned list."""
    calls, original = [], getattr(owner, name)

    def counting(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    for target in (owner, *modules):
        monkeypatch.setattr(target, name, counting)
    return calls


def importers(function) -> list:
    """Every loaded inspatio_cli module that imported ``function`` under its own name."""
    return [m for n, m in sorted(sys.modules.items())
            if n.startswith("inspatio_cli") and getattr(m, function.__name__, None) is function]


@pytest.fixture
def clip(tmp_path: Path) -> dict[str, Path]:
    """20 frames at 10 fps."""
    return scene_files(tmp_path, 20, 10)


def test_depth_comes_from_the_option_then_the_sidecar_then_the_estimate(clip, tmp_path, monkeypatch):
    other = tmp_path / "other.safetensors"
    planar_depth(20, distance=5.0).save(other)
    assert resolve_depth(clip["video"], other)[1] == str(other)
    assert resolve_depth(clip["video"])[1] == str(clip["depth"])
    lonely = shutil.copy(clip["video"], tmp_path / "lonely.mp4")
    monkeypatch.setenv("INSPATIO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("INSPATIO_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    with pytest.raises(WeightsError, match="--depth FILE") as info:  # no cached estimate and no depth weights
        resolve_depth(lonely)
    assert "download" in str(info.value)


def test_depth_must_match_the_video(clip, tmp_path):
    short = tmp_path / "short.safetensors"
    planar_depth(19).save(short)
    with pytest.raises(DepthError, match="19 frames but the video has 20"):
        open_scene(clip["video"], clip["traj"], depth=short)
    with pytest.raises(DepthError, match="model size"):
        open_scene(clip["video"], clip["traj"], size=(96, 160))
    cropped = tmp_path / "cropped.safetensors"
    result = planar_depth(20)
    result.meta["fit"] = "crop"
    result.save(cropped)
    with pytest.raises(DepthError, match="fit 'crop'"):
        open_scene(clip["video"], clip["traj"], depth=cropped)


def test_depth_of_another_video_is_warned_about(clip, tmp_path):
    """The depth stage records the video's fingerprint; a file made from another video (same frame count
    and size, so nothing else can tell) gives a warning naming both files."""
    for made_from, warned in ((fingerprint_file(clip["video"]), False), ("0123456789abcdef", True)):
        result = planar_depth(20)
        result.meta["video_hash"] = made_from
        path = result.save(tmp_path / "depth.safetensors")
        reporter = Reporter("silent")
        open_scene(clip["video"], clip["traj"], depth=path, reporter=reporter)
        assert [w for w in reporter.warnings if "was made from another video" in w and str(path) in w] == (
            [reporter.warnings[0]] if warned else [])


def test_scene_facts(clip):
    scene = open_scene(clip["video"], clip["traj"])
    assert scene.size == (H, W) and scene.num_frames == 20 and scene.time_is_identity
    assert scene.cameras.target_w2c.shape == (20, 4, 4)
    frozen = CameraOptions(time=TimeControl.from_options(freeze=["5:3"]))
    edited = open_scene(clip["video"], clip["traj"], camera=frozen)
    assert edited.num_frames == 23 and not edited.time_is_identity


def test_chunked_scene_warp_equals_one_call(clip):
    scene = open_scene(clip["video"], clip["traj"])
    chunks = list(warped_chunks(scene, 7))
    assert [c.frames for c in chunks] == [range(0, 7), range(7, 14), range(14, 20)]
    warped = torch.cat([c.warped for c in chunks])
    mask = torch.cat([c.mask for c in chunks])
    source = torch.cat([c.source for c in chunks])
    whole = scene.warp(range(20), source, scene.log_depth_max())
    assert torch.equal(warped, whole[0]) and torch.equal(mask, whole[1])
    assert mask[0].mean() > 0.9 and mask[-1].mean() < mask[0].mean()
    # frames are the decoded video, fitted: identical to decoding it in one go
    assert torch.equal(source, Fit.make((H, W), (H, W)).frames(read_video(clip["video"]).frames))
    plan = list(warped_chunks(scene, [range(0, 9), range(9, 20)]))
    assert torch.equal(torch.cat([c.warped for c in plan]), warped)


@pytest.mark.parametrize("edits", [{"reverse": ["2:17"]}, {"freeze": ["4:6"], "reverse": ["10:19"]},
                                   {"slow": ["0:19:1.5"]}, {"extend": "pingpong", "min_frames": 50}])
def test_lazy_decoding_follows_the_time_map(clip, monkeypatch, edits):
    """Output frame k shows source frame time_map[k], whatever the order, with a small look-back buffer."""
    monkeypatch.setattr(scene_stream, "LOOKBACK_FRAMES", 4)
    camera = CameraOptions(time=TimeControl.from_options(**edits))
    scene = open_scene(clip["video"], clip["traj"], camera=camera)
    fitted = Fit.make((H, W), (H, W)).frames(read_video(clip["video"]).frames)
    chunks = list(warped_chunks(scene, 5))
    shown = torch.cat([c.source_index for c in chunks])
    assert torch.equal(shown, scene.trajectory.time_map)
    assert torch.equal(torch.cat([c.source for c in chunks]), fitted[shown])


def test_bad_depth_values_are_reported_with_the_file(clip, tmp_path):
    from safetensors.torch import save_file

    good = planar_depth(20)
    for name, value in (("zero", 0.0), ("negative", -1.0), ("nan", float("nan"))):
        depth = good.depth.clone()
        depth[3, 2, 2] = value
        path = tmp_path / f"{name}.safetensors"
        save_file({"depth": depth, "K": good.K, "c2w": good.c2w}, str(path))
        with pytest.raises(DepthError, match="non-finite|positive") as info:
            open_scene(clip["video"], clip["traj"], depth=path)
        assert str(path) in str(info.value)
