"""No command replaces a file it did not create in this run unless told to (``--overwrite``, batch's
``--force``): every output of a run (video, sidecar, condition videos, depth and trajectory files) is checked
before any work against existing files, the run's inputs (by path, symbolic link and hard link) and its other
outputs; the condition videos appear together, after the video, and never after a failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clirun import run
from inspatio_cli.batch import JobDefaults, plan_jobs
from inspatio_cli.batch.manifest import InvalidJobs, Row
from inspatio_cli.errors import RuntimeFailure
from inspatio_cli.files import TEMP_MARK, OutputClaims
from inspatio_cli.video import VideoWriter, probe
from test_preview_pipeline import scene_files

FAST = ["--size", "48x80", "--device", "cpu", "--decoder", "tae", "--prompt", "x"]


@pytest.fixture
def scene(tmp_path):
    (tmp_path / "scene").mkdir()
    return scene_files(tmp_path / "scene", 12, 12)


def _listing(*folders: Path) -> dict[str, bytes]:
    """Every file of ``folders`` with its content: what a refused run must leave as it was."""
    return {str(p): p.read_bytes() for folder in folders if folder.is_dir()
            for p in sorted(folder.iterdir()) if p.is_file()}


def _preview(capsys, scene, output, *extra) -> tuple[int, str]:
    code, _, err = run(capsys, "preview", scene["video"], "-t", scene["traj"], "-o", output, "--quiet", *extra)
    return code, err


def _refused(code: int, err: str, path: Path, problem: str) -> None:
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"error: {path}: {problem}"), err


def test_existing_outputs_are_refused_without_overwrite_and_replaced_with_it(scene, capsys, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "p.mp4").write_bytes(b"mine")
    (out / "cond").mkdir()
    (out / "cond" / "mask.mp4").write_bytes(b"mine too")
    before = _listing(out, out / "cond")
    code, err = _preview(capsys, scene, out / "p.mp4")
    _refused(code, err, out / "p.mp4", "the output already exists (give --overwrite to replace it)")
    code, err = _preview(capsys, scene, out / "q.mp4", "--save-condition", out / "cond")
    _refused(code, err, out / "cond" / "mask.mp4",
             "the condition video mask.mp4 already exists (give --overwrite to replace it)")
    assert _listing(out, out / "cond") == before
    code, err = _preview(capsys, scene, out / "p.mp4", "--save-condition", out / "cond", "--overwrite")
    assert code == 0, err
    assert all(probe(out / name).frame_count == 12 for name in ("p.mp4", "cond/warped.mp4", "cond/mask.mp4"))


def _symlink(scene: dict, folder: Path) -> Path:
    (folder / "link.mp4").symlink_to(scene["video"])
    return folder / "link.mp4"


def _hard_link(scene: dict, folder: Path) -> Path:
    os.link(scene["video"], folder / "hard.mp4")
    return folder / "hard.mp4"


@pytest.mark.parametrize("make", [lambda s, d: s["video"], _symlink, _hard_link],
                         ids=["direct", "symlink", "hard-link"])
@pytest.mark.parametrize("overwrite", [(), ("--overwrite",)], ids=["plain", "overwrite"])
def test_an_output_is_never_an_input(scene, capsys, tmp_path, make, overwrite):
    output = make(scene, tmp_path)
    before = _listing(scene["dir"], tmp_path)
    code, err = _preview(capsys, scene, output, *overwrite)
    _refused(code, err, output, "the output would overwrite the source video")
    assert _listing(scene["dir"], tmp_path) == before


def test_condition_videos_never_replace_an_input(scene, capsys, tmp_path):
    folder = tmp_path / "cond"
    folder.mkdir()
    os.link(scene["video"], folder / "warped.mp4")  # the source, under a condition video's name
    code, err = _preview(capsys, scene, tmp_path / "p.mp4", "--save-condition", folder, "--overwrite")
    _refused(code, err, folder / "warped.mp4", "the condition video warped.mp4 would overwrite the source video")
    assert probe(scene["video"]).frame_count == 12 and not (tmp_path / "p.mp4").exists()


def test_two_outputs_of_one_run_may_not_share_a_name(scene, capsys, tmp_path):
    code, err = _preview(capsys, scene, tmp_path / "mask.mp4", "--save-condition", tmp_path, "--overwrite")
    _refused(code, err, tmp_path / "mask.mp4", "the condition video mask.mp4 is also the output")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene"]


def test_the_sidecar_does_not_replace_an_unrelated_json(scene, capsys, tmp_path, tiny_weights):
    notes = tmp_path / "render.json"
    notes.write_text('{"mine": true}\n')
    args = ["rerender", scene["video"], "-t", scene["traj"], "-o", tmp_path / "render.mp4", "--weights-dir",
            tiny_weights, *FAST, "--quiet"]
    code, _, err = run(capsys, *args)
    _refused(code, err, notes, "the sidecar already exists (give --overwrite to replace it)")
    assert notes.read_text() == '{"mine": true}\n' and not (tmp_path / "render.mp4").exists()
    code, _, err = run(capsys, *args, "--overwrite")
    assert code == 0, err
    assert '"format": "inspatio-rerender/1"' in notes.read_text()


def test_a_batch_checks_all_its_outputs_together(scene, tmp_path):
    """Job 2's video is job 1's condition video; job 3's output is job 1's: both are found, with their lines."""
    rows = [Row(1, {"video": str(scene["video"]), "output": str(tmp_path / "a.mp4"),
                    "save_condition": str(tmp_path / "cond")}, False),
            Row(2, {"video": str(scene["video"]), "output": str(tmp_path / "cond" / "mask.mp4")}, False),
            Row(3, {"video": str(scene["video"]), "output": str(tmp_path / "a.mp4")}, False)]
    with pytest.raises(InvalidJobs) as refused:
        plan_jobs(rows, JobDefaults((str(scene["traj"]),), prompt="x", size=(48, 80)), base=tmp_path)
    found = [(p.line, p.error.one_line()) for p in refused.value.problems]
    assert found == [(2, f"{tmp_path / 'cond' / 'mask.mp4'}: the output is also job 1's (line 1); give each output "
                         "its own name"),
                     (3, f"{tmp_path / 'a.mp4'}: the output is also job 1's (line 1); give each output its own name")]


def test_a_batch_refuses_existing_outputs_of_unfinished_jobs_unless_forced(scene, capsys, tmp_path, tiny_weights):
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(f'{{"video": "{scene["video"]}", "trajectory": "{scene["traj"]}", "output": "out/a.mp4"}}\n')
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.json").write_text("{}\n")
    args = ["batch", manifest, "--weights-dir", tiny_weights, *FAST, "--quiet"]
    for extra in ((), ("--dry-run",)):
        code, _, err = run(capsys, *args, *extra)
        _refused(code, err, tmp_path / "out" / "a.json", "the sidecar already exists (give --force to replace it)")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.json"]


def test_depth_and_trajectory_outputs(scene, capsys, tmp_path):
    code, _, err = run(capsys, "depth", scene["video"], "--quiet")  # the default output: the sidecar depth
    _refused(code, err, scene["depth"], "the depth file already exists (give --overwrite to replace it)")
    code, _, err = run(capsys, "depth", scene["video"], "-o", scene["video"], "--overwrite", "--quiet")
    _refused(code, err, scene["video"], "the depth file would overwrite the source video")
    code, _, err = run(capsys, "trajectory", "convert", scene["traj"], "-n", "12", "--to", "tcw", "-o", scene["traj"],
                       "--overwrite", "-q")
    _refused(code, err, scene["traj"], "the output would overwrite the trajectory file")
    for command in (["convert", "--to", "tcw"], ["show"]):
        out = tmp_path / ("path.txt" if command[0] == "convert" else "path.png")
        out.write_bytes(b"mine")
        code, _, err = run(capsys, "trajectory", *command, "orbit_left", "-n", "12", "-o", out, "-q")
        _refused(code, err, out, "the output already exists (give --overwrite to replace it)")
        assert out.read_bytes() == b"mine"
        code, _, err = run(capsys, "trajectory", *command, "orbit_left", "-n", "12", "-o", out, "-q", "--overwrite")
        assert code == 0 and out.read_bytes() != b"mine", err


def test_claims_see_links_to_outputs_of_the_same_run(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"x")
    (tmp_path / "b.mp4").symlink_to(tmp_path / "a.mp4")
    claims = OutputClaims({}, overwrite=True)
    assert claims.claim(tmp_path / "a.mp4", "the output") is None
    assert "is also the output" in claims.claim(tmp_path / "b.mp4", "the sidecar").one_line()


def _failing_finish(name: str):
    """A ``VideoWriter._finish`` that fails (like a full disk at the end) for the file whose name holds
    ``name`` after its frames were written."""
    real = VideoWriter._finish

    def finish(self) -> None:
        if name in self.path.name:
            raise RuntimeFailure("cannot write the video (No space left on device)", self.path)
        real(self)

    return finish


@pytest.mark.parametrize("failing", ["mask", "warped", "preview"])
def test_a_failure_leaves_no_condition_video_and_no_temporary(scene, capsys, tmp_path, monkeypatch, failing):
    """The mask failing after the warped video is finished, the warped video failing, or the preview failing
    after both condition videos are finished: nothing under any final name, no temporary file."""
    monkeypatch.setattr(VideoWriter, "_finish", _failing_finish(failing))
    out, cond = tmp_path / "out", tmp_path / "cond"
    code, err = _preview(capsys, scene, out / "preview.mp4", "--save-condition", cond)
    assert code == 5 and "No space left on device" in err and TEMP_MARK not in err, err
    assert [p.name for folder in (out, cond) if folder.is_dir() for p in folder.iterdir()] == []
