"""The command-line layer: help, version, `info`, and one-line errors with distinct exit codes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rich.console import Console

from inspatio_cli import __version__
from inspatio_cli.progress import Reporter
from clirun import run
from media import make_audio_only, make_clip, pattern

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"


def test_help_lists_commands_with_descriptions(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "info" in out and "Show size, fps" in out


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"inspatio {__version__}"


def test_module_entry_point_and_console_script():
    for command in ([sys.executable, "-m", "inspatio_cli", "--version"], ["inspatio", "--version"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and __version__ in done.stdout


def test_info_table_and_json(tmp_path, capsys):
    clip = make_clip(tmp_path / "c.mp4", pattern(10, 48, 64), 30, audio_seconds=0.3)
    code, out, _ = run(capsys, "info", str(clip))
    assert code == 0 and "64x48" in out and "aac" in out
    code, out, _ = run(capsys, "info", "--json", str(clip), str(clip))
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(lines) == 2
    assert lines[0]["frame_count"] == 10 and lines[0]["fps_fraction"] == "30/1" and lines[0]["has_audio"]


def test_names_with_brackets_are_shown_as_they_are(tmp_path, capsys):
    """File names are text, not rich markup: ``[red]`` stays in the name and ``[/b]`` does not crash."""
    (tmp_path / "x[").mkdir()
    clips = [make_clip(tmp_path / "clip[red].mp4", pattern(4, 16, 16), 25),
             make_clip(tmp_path / "x[" / "b].mp4", pattern(4, 16, 16), 25)]
    code, out, err = run(capsys, "info", *clips)
    assert code == 0, err
    assert all(str(clip) in out for clip in clips)
    console = Console(file=io.StringIO(), width=200)
    reporter = Reporter("human", console=console)
    with reporter.stage("depth [/b]", total=2) as stage:
        stage.advance(2)
    reporter.info(f"reading {clips[1]}")
    reporter.warn(f"{clips[0]} has [bold]no[/bold] audio")
    shown = console.file.getvalue()
    assert f"reading {clips[1]}" in shown and f"warning: {clips[0]} has [bold]no[/bold] audio" in shown


def _truncated(tmp_path: Path) -> Path:
    clip = make_clip(tmp_path / "full.mp4", pattern(30, 48, 64), 25)
    data = clip.read_bytes()
    bad = tmp_path / "truncated.mp4"
    bad.write_bytes(data[: len(data) // 2])
    return bad


def _file(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.mp4", "no such file"),
    (lambda d: _file(d / "empty.mp4", b""), "file is empty"),
    (lambda d: _file(d / "text.mp4", b"hello, I am not a video\n" * 20), "not a readable video"),
    (_truncated, "truncated.mp4"),
    (lambda d: d, "is a directory"),
    (lambda d: make_audio_only(d / "tone.mp4"), "no video stream"),
])
def test_bad_input_gets_one_line_and_exit_3(tmp_path, capsys, make, message):
    path = make(tmp_path)
    code, out, err = run(capsys, "info", str(path))
    assert code == 3
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
    assert "Traceback" not in err


def test_usage_error_exit_2(capsys):
    code, _, err = run(capsys, "info", "--no-such-flag", "x.mp4")
    assert code == 2 and err.startswith("error: ") and "--help" in err


def test_mixed_good_and_bad_files(tmp_path, capsys):
    clip = make_clip(tmp_path / "c.mp4", pattern(5, 32, 48), 25)
    code, out, err = run(capsys, "info", "--json", str(clip), str(tmp_path / "gone.mp4"))
    facts, failure = map(json.loads, out.splitlines())
    assert code == 3 and facts["frame_count"] == 5 and "gone.mp4: no such file" in err
    assert failure["event"] == "error" and failure["exit_code"] == 3 and "gone.mp4: no such file" in failure["message"]


@pytest.mark.skipif(not MEDIA.is_dir(), reason="../shared/media not present")
def test_info_on_real_videos(capsys):
    code, out, _ = run(capsys, "info", "--json", *sorted(str(p) for p in MEDIA.glob("*.mp4")))
    facts = {Path(d["path"]).name: d for d in map(json.loads, out.splitlines())}
    assert code == 0
    martini, pour = facts["coffee_martini_1352x760_30fps.mp4"], facts["coffee_pour_1920x900_25fps_audio.mp4"]
    assert (martini["width"], martini["height"], martini["fps"], martini["frame_count"]) == (1352, 760, 30.0, 300)
    assert not martini["has_audio"]
    assert (pour["width"], pour["height"], pour["fps"], pour["frame_count"]) == (1920, 900, 25.0, 247)
    assert pour["has_audio"] and pour["audio_codec"] == "aac"
