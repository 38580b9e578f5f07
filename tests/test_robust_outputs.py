"""Where outputs cannot be written: a folder, an unknown extension, a file where a folder should be, a place
the system refuses, a full disk (a file size limit in a subprocess), an OS error from any stage: one line,
a distinct exit code, and no file under the output's name (nor a condition video's, when one of them fails
mid-way)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inspatio_cli import scene as scene_module
from inspatio_cli.cli import main
from inspatio_cli.files import TEMP_MARK
from test_preview_pipeline import scene_files


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return scene_files(tmp_path_factory.mktemp("scene"), 12, 12)


def _preview(capsys, scene, output, *extra) -> tuple[int, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["preview", str(scene["video"]), "-t", str(scene["traj"]), "-o", str(output), "--quiet", *extra])
    return done.value.code, capsys.readouterr().err


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "a-folder.mp4").mkdir()
    return tmp_path / "a-folder.mp4"


def _under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "a-file").write_text("x")
    return tmp_path / "a-file" / "out.mp4"


@pytest.mark.parametrize("make, code, message", [
    (_folder, 2, "the output is a folder"),
    (lambda d: d / "out.txt", 2, "the output must be a video file named .mp4, .m4v, .mov, .mkv"),
    (lambda d: d / "out", 2, "the output must be a video file"),
    (lambda d: d / "out.webm", 2, "the output must be a video file"),  # was an internal error (no H.264 in WebM)
    (lambda d: d / "out.avi", 2, "the output must be a video file"),
    (_under_a_file, 3, "cannot create the folder of the output: it is a file"),
    pytest.param(lambda d: Path("/proc/inspatio-test.mp4"), 5, "cannot write the video (No such file or directory)",
                 marks=pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")),
])
def test_unwritable_outputs_fail_in_one_line(scene, capsys, tmp_path, make, code, message):
    output = make(tmp_path)
    before = sorted(p.name for p in output.parent.iterdir()) if output.parent.is_dir() else None
    got, err = _preview(capsys, scene, output)
    assert got == code and err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    if before is not None:
        assert sorted(p.name for p in output.parent.iterdir()) == before


_LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))
from inspatio_cli.cli import main
main(sys.argv[1:])
"""


def test_full_disk_mid_write_leaves_nothing(scene, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", _LIMITED, "preview", str(scene["video"]), "-t", str(scene["traj"]),
                           "-o", str(out / "preview.mp4"), "--quiet"], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert done.returncode == 5, done.stderr
    assert done.stderr == f"error: {out / 'preview.mp4'}: cannot write the video (File too large)\n"
    assert list(out.iterdir()) == []


def test_os_errors_from_any_stage_are_one_line(scene, capsys, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/scratch/cache.bin")

    monkeypatch.setattr(scene_module, "forward_warp", refuse)
    code, err = _preview(capsys, scene, tmp_path / "o.mp4")
    assert code == 5 and err == "error: /scratch/cache.bin: No space left on device\n"
    assert not [p for p in tmp_path.iterdir() if p.name == "o.mp4" or TEMP_MARK in p.name]


def test_full_disk_leaves_no_condition_video(scene, tmp_path):
    """A file size limit reached by a condition video mid-way: no file under any of the run's names (the
    preview included), no temporary file, one line naming the condition video."""
    out, condition = tmp_path / "out", tmp_path / "condition"
    done = subprocess.run([sys.executable, "-c", _LIMITED, "preview", str(scene["video"]), "-t", str(scene["traj"]),
                           "-o", str(out / "preview.mp4"), "--save-condition", str(condition), "--quiet"],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert done.returncode == 5 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr == f"error: {condition / 'warped.mp4'}: cannot write the video (File too large)\n"
    assert [p.name for folder in (out, condition) if folder.is_dir() for p in folder.iterdir()] == []


def test_a_condition_video_failing_mid_way_leaves_nothing(scene, capsys, tmp_path, monkeypatch):
    from inspatio_cli.errors import RuntimeFailure
    from inspatio_cli.video import VideoWriter

    real = VideoWriter.write

    def write(self, frames) -> None:
        real(self, frames)
        if self.path.name.startswith(".mask"):  # the mask video has frames by now
            raise RuntimeFailure("cannot write the video (No space left on device)", self.path)

    monkeypatch.setattr(VideoWriter, "write", write)
    condition = tmp_path / "condition"
    code, err = _preview(capsys, scene, tmp_path / "out" / "preview.mp4", "--save-condition", condition)
    assert code == 5 and err == f"error: {condition / 'mask.mp4'}: cannot write the video (No space left on device)\n"
    assert [p.name for folder in (tmp_path / "out", condition) for p in folder.iterdir()] == []
