"""The v1.5 model and multi-view sources (issue 18, parts 1 and 3): ``--model world-1.5`` renders by the v1.5
rules with its own generator file, ``--views`` renders the photos of one scene merged, with whole chunks, in
rerender, preview, batch manifests and the Python API; input errors are one line, exit 3, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from clirun import run
from conftest import WEIGHT_FILES
from inspatio_cli.batch import JobDefaults, plan_jobs
from inspatio_cli.batch.manifest import Row
from inspatio_cli.scene import open_scene
from inspatio_cli.scene_stream import warped_chunks
from inspatio_cli.video import probe
from inspatio_cli.video.multiview import open_views
from inspatio_cli.views import render_rules, select_chunk_top3, warp_views
from media import make_clip, pattern
from test_preview_pipeline import ORBIT, H, W, planar_depth, scene_files
from test_rerender_cli import setup  # noqa: F401 - its autouse fixture: one torch thread, a private cache

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--size", f"{H}x{W}", "--device", "cpu", "--decoder", "tae", "--prompt", "a room"]
V15_FILE = "InSpatio-World-1.5-1.3B/InSpatio-World-1.5-1.3B.safetensors"


@pytest.fixture(scope="module")
def weights15(tiny_weights, tmp_path_factory) -> Path:
    """The tiny checkpoints with the tiny generator also as the v1.5 file (same architecture and keys)."""
    root = tmp_path_factory.mktemp("weights15")
    for rel in [*WEIGHT_FILES.values()]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(tiny_weights / rel)
    (root / V15_FILE).parent.mkdir(parents=True)
    (root / V15_FILE).symlink_to(tiny_weights / WEIGHT_FILES["generator"])
    return root


def scene_views(folder: Path, count: int = 4) -> dict:
    """``count`` 48x80 photos of one scene in ``folder/views`` and their depth file (view k 10 cm to the right
    of view 0), with an orbit trajectory."""
    views = folder / "views"
    views.mkdir()
    paths = []
    for k in range(count):
        paths.append(views / f"view_{k}.png")
        Image.fromarray(pattern(1, H, W, seed=k)[0]).save(paths[-1])
    depth = planar_depth(count)
    depth.c2w[:, 0, 3] = torch.arange(count) * 0.1
    traj = folder / "orbit.txt"
    traj.write_text(ORBIT)
    return {"folder": views, "paths": paths, "depth": depth.save(folder / "views.depth.safetensors"), "traj": traj}


def test_world15_renders_each_frame_as_its_own_view_with_frame_0s_intrinsics(tmp_path):
    files = scene_files(tmp_path, 6, 12)
    depth = planar_depth(6)
    depth.K[3:, 0, 0] *= 1.1  # later frames zoomed: their own K unprojects them, frame 0's renders every target
    depth.save(files["depth"])
    rules = render_rules("world-1.5")
    scene = open_scene(files["video"], files["traj"], rules=rules)
    assert scene.log_depth_max() is None and scene.describe()["model"] == "world-1.5"
    assert torch.equal(scene.cameras.K[4], depth.K[4]) and torch.equal(scene.cameras.target_K[4], depth.K[0])
    (chunk,) = warped_chunks(scene, 6)
    for k in (0, 5):  # the official per-(frame, view) call
        alone = warp_views(chunk.source[k:k + 1], depth.depth[k:k + 1], torch.linalg.inv(depth.c2w[k:k + 1]),
                           depth.K[k:k + 1], scene.cameras.target_w2c[k:k + 1], depth.K[0])
        assert torch.equal(chunk.warped[k], alone.render[0]) and torch.equal(chunk.mask[k], alone.mask[0])
    assert rules.fit_mode("stretch", (48, 96), (H, W)) == "crop" and rules.fit_mode("pad", (48, 96), (H, W)) == "pad"
    assert rules.fit_mode("stretch", (96, 160), (H, W)) == "stretch"
    assert render_rules("world").fit_mode("stretch", (48, 96), (H, W)) == "stretch"


def test_rerender_with_world15_end_to_end(weights15, tmp_path, capsys):
    files = scene_files(tmp_path, 10, 12)
    out = tmp_path / "x.mp4"
    code, _, err = run(capsys, "rerender", files["video"], "-t", files["traj"], "-o", out, "--weights-dir", weights15,
                       "--model", "world-1.5", *FAST)
    assert code == 0, err
    facts = probe(out)
    assert (facts.frame_count, facts.fps) == (10, 12.0)  # padded to 21 for the generator, trimmed back
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["model"] == sidecar["settings"]["model"] == sidecar["scene"]["model"] == "world-1.5"
    assert sidecar["source"]["kind"] == "video" and sidecar["padded_frames"] == 11
    assert {w["name"] for w in sidecar["weights"]} == {"generator-1.5", "tae", "text-encoder", "tokenizer"}


def test_rerender_of_four_views_end_to_end(tiny_weights, tmp_path, capsys):
    files = scene_views(tmp_path)
    out = tmp_path / "x.mp4"
    code, _, err = run(capsys, "rerender", "--views", *files["paths"], "-t", "orbit_left", "-o", out, "--weights-dir",
                       tiny_weights, "--depth", files["depth"], "--frames", 33, *FAST)
    assert code == 0, err
    facts = probe(out)
    assert (facts.frame_count, facts.fps, facts.width, facts.height) == (33, 15.0, W, H)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["source"]["kind"] == "views" and sidecar["source"]["views"] == [str(p) for p in files["paths"]]
    assert sidecar["model"] == "world" and sidecar["scene"]["model"] == "world"  # the v1 generator, v1.5 warp
    assert sidecar["padded_frames"] == 0 and sidecar["chunks"] == 3


def test_preview_of_four_views_merges_them(tmp_path, capsys):
    files = scene_views(tmp_path)
    views = open_views([files["folder"]])
    assert views.paths == tuple(files["paths"])
    scene = open_scene(views, "orbit_left", depth=files["depth"], frames=10)
    assert scene.num_frames == 21  # rounded up to whole chunks
    chunks = list(warped_chunks(scene, 5))
    assert [c.frames for c in chunks] == [range(0, 9), range(9, 21)]
    for chunk in chunks:
        merged = scene.warp_views(chunk.frames, scene.fit.frames(views.read()))
        counts = merged.known_per_view.flatten(2).sum(2)
        own = torch.stack([counts[0:1].sum(0), counts[1:5].sum(0), counts[5:9].sum(0)] if chunk.frames.start == 0
                          else [counts[i:i + 4].sum(0) for i in (0, 4, 8)])
        chosen, _ = select_chunk_top3(own)
        assert chunk.source_index.tolist() == [v for v, n in zip(chosen, (1, 4, 4) if chunk.frames.start == 0
                                                                  else (4, 4, 4)) for _ in range(n)]
        assert torch.equal(chunk.mask[:, 0] > 0, merged.known_per_view.any(1))  # the union of the views' coverage
    out = tmp_path / "p.mp4"
    code, stdout, err = run(capsys, "preview", "--views", files["folder"], "-t", "orbit_left", "-o", out,
                            "--depth", files["depth"], "--frames", 9, "--json")
    assert code == 0, err
    facts = probe(out)
    assert (facts.frame_count, facts.width, facts.height) == (9, 3 * W, H)
    summary = [e for e in map(json.loads, stdout.splitlines()) if e["event"] == "summary"][0]
    assert len(summary["coverage"]["per_frame"]) == 9 and summary["coverage"]["min"] > 0.5


def test_a_manifest_may_name_views_and_the_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = scene_views(tmp_path)
    rows = [Row(1, {"views": "views", "trajectory": "orbit.txt", "model": "world-1.5", "output": "a.mp4"}, False),
            Row(2, {"views": "views/view_0.png;views/view_1.png;views/view_3.png", "trajectory": "orbit.txt",
                    "frames": "10", "output": "b.mp4"}, True)]
    first, second = plan_jobs(rows, JobDefaults(size=(H, W)), base=tmp_path)
    assert (first.model, first.views, first.frames) == ("world-1.5", tuple(files["paths"]), 45)
    assert (second.model, len(second.views), second.frames, second.video) == ("world", 3, 21, files["paths"][0])


@pytest.mark.parametrize("kind", ["unreadable", "sizes", "1x1", "too many", "video"])
def test_bad_views_fail_in_one_line_with_nothing_written(tiny_weights, tmp_path, capsys, kind):
    files = scene_views(tmp_path, 5 if kind == "too many" else 4)
    paths = files["paths"]
    if kind == "unreadable":
        paths[2].write_bytes(b"not an image")
    elif kind == "sizes":
        Image.fromarray(pattern(1, H, W + 16)[0]).save(paths[1])
    elif kind == "1x1":
        Image.new("RGB", (1, 1)).save(paths[3])
    elif kind == "video":
        paths[0] = make_clip(tmp_path / "clip.mp4", pattern(3, H, W), fps=12)
    for command, options in (("preview", []), ("rerender", ["--weights-dir", tiny_weights])):
        out = tmp_path / f"{command}.mp4"
        code, stdout, err = run(capsys, command, "--views", *paths, "-t", "orbit_left", "-o", out, "--depth",
                                files["depth"], "--device", "cpu", *options)
        assert code == 3 and stdout == "" and len(err.strip().splitlines()) == 1, err
        assert {"unreadable": "not a readable image", "sizes": "all views must have one size", "1x1": "1x1 pixels",
                "too many": "5 views given", "video": "not a still image"}[kind] in err
    assert sorted(p.name for p in tmp_path.glob("*.mp4")) == (["clip.mp4"] if kind == "video" else [])
