"""``inspatio preview``: output videos (layouts, fps, frame count, audio), condition videos, coverage summary,
bad inputs; on a synthetic clip, the bundled example and the real videos in ../shared/media."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from inspatio_cli.cameras import CameraOptions, TimeControl, TrajectorySource
from inspatio_cli.scene import open_scene
from inspatio_cli.scene_stream import warped_chunks
from inspatio_cli.render.preview import preview
from inspatio_cli.video import probe
from clirun import run
from decoded import read_video
from media import make_clip, mask_from_video, pattern
from test_preview_pipeline import ORBIT, count_calls, importers, planar_depth, scene_files

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"
EXAMPLE = ROOT / "examples" / "room.mp4"
H, W = 48, 80


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def clip(tmp_path: Path) -> dict[str, Path]:
    """12 frames at 12 fps."""
    return scene_files(tmp_path, 12, 12)


@pytest.mark.parametrize("layout,size", [("side", (H, 3 * W)), ("grid", (2 * H, 2 * W)), ("mask", (H, W))])
def test_layouts(clip, capsys, layout, size):
    out = clip["dir"] / f"{layout}.mp4"
    code, _, err = run(capsys, "preview", clip["video"], "-t", clip["traj"], "-o", out, "--layout", layout)
    assert code == 0, err
    facts = probe(out)
    assert (facts.height, facts.width) == size and facts.frame_count == 12 and facts.fps == 12
    assert "coverage: min" in err and "worst frames" in err


def test_audio_is_kept_only_when_every_frame_is_shown_once_in_order(tmp_path):
    files = scene_files(tmp_path, 12, 12, audio_seconds=1.0)
    kept = preview(files["video"], files["traj"], tmp_path / "kept.mp4")
    assert kept.audio and probe(tmp_path / "kept.mp4").has_audio
    camera = CameraOptions(time=TimeControl.from_options(reverse=["2:5"]))
    dropped = preview(files["video"], files["traj"], tmp_path / "dropped.mp4", camera=camera)
    assert not dropped.audio and not probe(tmp_path / "dropped.mp4").has_audio


def test_json_summary_and_condition_videos(clip, capsys):
    out, cond = clip["dir"] / "p.mp4", clip["dir"] / "cond"
    code, stdout, _ = run(capsys, "preview", clip["video"], "-t", clip["traj"], "-o", out, "--save-condition", cond,
                          "--json", "--freeze", "3:2")
    assert code == 0
    events = [json.loads(line) for line in stdout.splitlines()]
    summary = events[-1]
    assert summary["event"] == "summary" and summary["frames"] == 14
    cov = summary["coverage"]
    assert len(cov["per_frame"]) == 14 and cov["min"] == min(cov["per_frame"]) and 0.5 < cov["mean"] <= 1.0
    assert cov["worst"][0]["coverage"] == cov["min"] and cov["below_threshold"] == [] and cov["empty"] == []
    assert any(e["event"] == "progress" for e in events)
    # the mask video is lossless: it decodes back to exactly the warp's mask
    scene = open_scene(clip["video"], clip["traj"], camera=CameraOptions(time=TimeControl.from_options(freeze=["3:2"])))
    mask = torch.cat([c.mask for c in warped_chunks(scene)])
    decoded = mask_from_video(torch.from_numpy(read_video(cond / "mask.mp4").frames[..., 0]))
    assert torch.equal(decoded, mask[:, 0])
    assert probe(cond / "warped.mp4").frame_count == 14


def test_camera_behind_all_geometry_is_a_warning_not_a_crash(clip, capsys):
    traj = clip["dir"] / "behind.txt"
    traj.write_text("0 0\n180 180\n0.1 0.1\n")
    result = preview(clip["video"], traj, clip["dir"] / "behind.mp4")
    assert max(result.coverage) == 0.0 and result.empty_frames == list(range(12))
    assert any("empty warp" in w for w in result.warnings)
    code, _, err = run(capsys, "preview", clip["video"], "-t", traj, "-o", clip["dir"] / "behind2.mp4")
    assert code == 0 and "empty warp" in err and "Traceback" not in err


def test_low_coverage_warning(clip):
    result = preview(clip["video"], clip["traj"], clip["dir"] / "p.mp4", threshold=0.99)
    assert result.low_frames and any("below 99%" in w for w in result.warnings)


def test_bad_inputs_are_one_line_errors(clip, capsys, tmp_path, monkeypatch):
    short = tmp_path / "short.safetensors"
    planar_depth(7).save(short)
    code, _, err = run(capsys, "preview", clip["video"], "-t", clip["traj"], "-o", tmp_path / "x.mp4", "--depth", short)
    assert code == 3 and "depth has 7 frames but the video has 12" in err and "Traceback" not in err
    lonely = make_clip(tmp_path / "lonely.mp4", pattern(5, H, W))
    monkeypatch.setenv("INSPATIO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("INSPATIO_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    code, _, err = run(capsys, "preview", lonely, "-t", clip["traj"], "-o", tmp_path / "y.mp4")
    assert code == 4 and "--depth FILE" in err and "Traceback" not in err
    code, _, err = run(capsys, "preview", clip["video"], "-t", clip["traj"], "-o", tmp_path / "z.mp4", "--layout", "x")
    assert code == 2 and "layout" in err
    assert not list(tmp_path.glob("[xyz].mp4"))


@pytest.mark.skipif(not EXAMPLE.exists() or not any(EXAMPLE.parent.glob("room.depth.safetensors*")),
                    reason="the bundled example is not present")
def test_bundled_example(tmp_path, capsys):
    traj = tmp_path / "orbit.txt"
    traj.write_text(ORBIT)
    out = tmp_path / "preview.mp4"
    code, _, err = run(capsys, "preview", EXAMPLE, "-t", traj, "-o", out, "--layout", "warped")
    assert code == 0, err
    source, facts = probe(EXAMPLE), probe(out)
    assert facts.frame_count == source.frame_count and facts.fps == source.fps


def test_a_camera_turning_too_fast_is_warned_about(tmp_path, capsys):
    """The official bound of 0.8 deg/frame is checked on every preview (not only by ``trajectory check``)."""
    video = scene_files(tmp_path, 49, 24)["video"]
    code, stdout, err = run(capsys, "preview", video, "-t", "x_y_circle_cycle", "-o", tmp_path / "p.mp4", "--json")
    assert code == 0, err
    summary = json.loads(stdout.splitlines()[-1])
    assert any("deg/frame" in w and "official bound of 0.8" in w for w in summary["warnings"])
    code, stdout, err = run(capsys, "preview", video, "-t", "orbit_left", "-o", tmp_path / "q.mp4", "--json")
    assert code == 0 and not any("deg/frame" in w for w in json.loads(stdout.splitlines()[-1])["warnings"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["coffee_martini_1352x760_30fps.mp4", "coffee_pour_1920x900_25fps_audio.mp4"])
def test_real_videos_with_a_planar_depth(tmp_path, capsys, name):
    video = MEDIA / name
    if not video.exists():
        pytest.skip(f"{video} is not present")
    facts = probe(video)
    depth = tmp_path / "planar.depth.safetensors.gz"
    planar_depth(facts.frame_count, (40, 72)).save(depth, depth_dtype=torch.float16)
    traj = tmp_path / "orbit.txt"
    traj.write_text(ORBIT)
    out = tmp_path / "preview.mp4"
    code, _, err = run(capsys, "preview", video, "-t", traj, "-o", out, "--depth", depth)
    assert code == 0, err
    written = probe(out)
    assert written.frame_count == facts.frame_count and written.fps == pytest.approx(facts.fps)
    assert written.has_audio == facts.has_audio  # audio passes through: every frame is shown once, in order


def test_one_preview_probes_once_and_resolves_once(clip, tmp_path, monkeypatch):
    from inspatio_cli import video

    probes = count_calls(monkeypatch, video, "probe", importers(video.probe))
    resolves = count_calls(monkeypatch, TrajectorySource, "resolve")
    preview(clip["video"], clip["traj"], tmp_path / "p.mp4")
    assert [Path(a[0]) for a in probes] == [clip["video"]] and len(resolves) == 1
