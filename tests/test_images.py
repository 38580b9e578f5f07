"""Still images as the source (issue 18, part 2): read upright as a one-frame source, previewed and rerendered
with the output length from the trajectory or ``--frames`` and the rate from ``--fps``, in batch manifests,
and the input errors (one line, exit 3, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clirun import run
from inspatio_cli import preview
from inspatio_cli.batch import JobDefaults, plan_inputs
from inspatio_cli.choices import DEFAULT_IMAGE_FPS, DEFAULT_IMAGE_FRAMES
from inspatio_cli.errors import UsageError
from inspatio_cli.video import iter_frames, probe, read_image
from media import pattern
from test_preview_pipeline import ORBIT, H, W, planar_depth
from test_rerender_cli import setup  # noqa: F401 - its autouse fixture: one torch thread, a private cache

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "room_frame.png"
FAST = ["--size", f"{H}x{W}", "--device", "cpu", "--decoder", "tae", "--prompt", "a room"]


def photo(folder: Path, name: str = "photo.png", seed: int = 0) -> dict[str, Path]:
    """A 48x80 image ``name`` with a planar depth file (the sidecar of ``photo.png``) and a 3-line orbit
    trajectory, in ``folder``."""
    image = folder / name
    Image.fromarray(pattern(1, H, W, seed=seed)[0]).save(image)
    depth = planar_depth(1).save(folder / "photo.depth.safetensors")
    traj = folder / "orbit.txt"
    traj.write_text(ORBIT)
    return {"image": image, "depth": depth, "traj": traj}


def per_frame_trajectory(path: Path, frames: int) -> Path:
    """A per-frame trajectory (``.npy`` camera-to-world poses): a sideways move of 2 cm a frame."""
    c2w = np.tile(np.eye(4), (frames, 1, 1))
    c2w[:, 0, 3] = np.arange(frames) * 0.02
    np.save(path, c2w)
    return path


def test_an_image_is_a_source_of_one_frame(tmp_path):
    files = photo(tmp_path, "photo.webp")
    info = probe(files["image"])
    assert (info.kind, info.frame_count, info.fps, info.has_audio) == ("image", 1, DEFAULT_IMAGE_FPS, False)
    assert (info.width, info.height) == (W, H)
    frames = list(iter_frames(files["image"]))
    assert len(frames) == 1 and frames[0][0] == 0.0 and frames[0][1].shape == (H, W, 3)
    assert probe(ROOT / "examples" / "room.mp4").kind == "video"


def test_an_exif_rotated_jpeg_is_read_upright(tmp_path):
    upright = np.zeros((40, 20, 3), np.uint8)
    upright[:20] = (255, 0, 0)  # red on top
    upright[20:] = (0, 0, 255)  # blue below
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # as a camera held sideways stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turn 90 degrees clockwise to show
    path = tmp_path / "sideways.jpg"
    stored.save(path, exif=exif, quality=95)
    image = read_image(path)
    assert image.shape == (40, 20, 3)
    assert image[5, 10, 0] > 200 > image[5, 10, 2] and image[35, 10, 2] > 200 > image[35, 10, 0]
    info = probe(path)
    assert (info.width, info.height) == (20, 40)


def test_preview_of_an_image_writes_every_frame_from_the_one_source(tmp_path):
    files = photo(tmp_path)
    out = tmp_path / "p.mp4"
    result = preview(files["image"], files["traj"], out, depth=files["depth"], frames=20, fps=10)
    facts = probe(out)
    assert (facts.frame_count, facts.fps, facts.width, facts.height) == (20, 10.0, 3 * W, H)
    assert result.frames == 20 and result.coverage[0] == pytest.approx(1.0) and result.coverage[-1] < 1.0
    default = preview(files["image"], "orbit_left", tmp_path / "d.mp4", depth=files["depth"], layout="mask")
    assert (default.frames, default.fps) == (DEFAULT_IMAGE_FRAMES, DEFAULT_IMAGE_FPS)


def test_a_per_frame_trajectory_sets_the_length_and_frames_must_agree(tmp_path, capsys):
    files = photo(tmp_path)
    poses = per_frame_trajectory(tmp_path / "poses.npy", 13)
    out = tmp_path / "p.mp4"
    code, _, err = run(capsys, "preview", files["image"], "-t", poses, "-o", out, "--depth", files["depth"])
    assert code == 0, err
    assert probe(out).frame_count == 13
    code, _, err = run(capsys, "preview", files["image"], "-t", poses, "-o", tmp_path / "q.mp4",
                       "--depth", files["depth"], "--frames", 20)
    assert code == 3 and len(err.strip().splitlines()) == 1
    assert "--frames 20 but the trajectory has 13 poses" in err and not (tmp_path / "q.mp4").exists()


def test_frames_and_fps_are_for_images_only(tmp_path, capsys):
    video = ROOT / "examples" / "room.mp4"
    for option, value in (("--frames", 33), ("--fps", 10)):
        code, _, err = run(capsys, "preview", video, "-t", "orbit_left", "-o", tmp_path / "p.mp4", option, value)
        assert code == 2 and len(err.strip().splitlines()) == 1 and option in err
    assert not (tmp_path / "p.mp4").exists()
    files = photo(tmp_path)
    code, _, err = run(capsys, "preview", files["image"], "-t", "orbit_left", "-o", tmp_path / "p.mp4",
                       "--depth", files["depth"], "--extend", "hold", "--min-frames", 30)
    assert code == 2 and "do not apply to an image" in err and not (tmp_path / "p.mp4").exists()


def test_the_depth_of_an_image_is_estimated_on_its_one_frame(tmp_path, monkeypatch):
    from inspatio_cli.depth import estimate
    from test_depth_estimate import tiny_net

    monkeypatch.setattr(estimate, "load_model", lambda *args: tiny_net())
    image = tmp_path / "photo.jpg"
    Image.fromarray(pattern(1, H, W)[0]).save(image)
    depth = estimate.get_depth(image, size=(H, W), device="cpu")
    assert depth.num_frames == 1 and depth.size == (H, W) and torch.allclose(depth.c2w[0], torch.eye(4), atol=1e-5)
    result = preview(image, "orbit_left", tmp_path / "p.mp4", frames=9, fps=10)
    assert probe(tmp_path / "p.mp4").frame_count == 9 and result.coverage[0] > 0.9


@pytest.mark.parametrize("kind", ["corrupt", "tiny", "16-bit", "empty"])
def test_bad_images_fail_in_one_line_with_nothing_written(tmp_path, capsys, kind):
    path = tmp_path / "bad.png"
    if kind == "corrupt":
        Image.fromarray(pattern(1, H, W)[0]).save(path)
        path.write_bytes(path.read_bytes()[:200])  # cut off in the middle of the pixels
    elif kind == "tiny":
        Image.new("RGB", (1, 1)).save(path)
    elif kind == "16-bit":
        Image.fromarray(np.full((H, W), 40000, np.uint16)).save(path)
    else:
        path.write_bytes(b"")
    out = tmp_path / "p.mp4"
    code, stdout, err = run(capsys, "preview", path, "-t", "orbit_left", "-o", out)
    assert code == 3 and stdout == "" and len(err.strip().splitlines()) == 1 and "bad.png" in err, err
    assert {"corrupt": "not a readable image", "tiny": "1x1 pixels", "16-bit": "unsupported image mode",
            "empty": "file is empty"}[kind] in err
    assert not any(tmp_path.glob("p.*"))


def test_rerender_of_the_example_image_end_to_end(tiny_weights, tmp_path, capsys):
    out = tmp_path / "x.mp4"
    code, _, err = run(capsys, "rerender", EXAMPLE, "-t", "orbit_left", "-o", out, "--weights-dir", tiny_weights,
                       "--frames", 33, *FAST)
    assert code == 0, err
    facts = probe(out)
    assert (facts.frame_count, facts.fps, facts.width, facts.height, facts.has_audio) == (33, 15.0, W, H, False)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["source"] == {"kind": "image", "path": str(EXAMPLE), "frames": 1, "fps": 15.0}
    assert sidecar["frames"] == 33 and sidecar["padded_frames"] == 0 and sidecar["chunks"] == 3
    assert sidecar["settings"]["video"]["kind"] == "image"


def test_a_batch_manifest_may_name_an_image(tiny_weights, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = photo(tmp_path)
    per_frame_trajectory(tmp_path / "poses.npy", 9)
    defaults = JobDefaults(("orbit.txt", "poses.npy"), size=(H, W), depth=files["depth"], fps=12.0)
    jobs = plan_inputs([files["image"]], defaults, "out")
    assert [(job.frames, job.image_frames, job.fps) for job in jobs] == [(DEFAULT_IMAGE_FRAMES, None, 12.0),
                                                                         (9, None, 12.0)]
    with pytest.raises(UsageError, match="--frames applies to image sources"):
        plan_inputs([ROOT / "examples" / "room.mp4"], JobDefaults(("orbit_left",), frames=33), "out")
    (tmp_path / "jobs.jsonl").write_text('{"video": "photo.png", "trajectory": "orbit.txt", "frames": 9, '
                                         '"fps": 12, "output": "image.mp4"}\n'
                                         '{"video": "photo.png", "trajectory": "poses.npy", "output": "poses.mp4"}\n')
    code, _, err = run(capsys, "batch", "jobs.jsonl", "--weights-dir", tiny_weights, *FAST)  # the sidecar depth
    assert code == 0, err
    assert [(probe(tmp_path / name).frame_count, probe(tmp_path / name).fps)
            for name in ("image.mp4", "poses.mp4")] == [(9, 12.0), (9, 15.0)]
    sidecar = json.loads((tmp_path / "image.json").read_text())
    assert sidecar["source"]["kind"] == "image" and sidecar["settings"]["video"]["fps"] == 12.0
