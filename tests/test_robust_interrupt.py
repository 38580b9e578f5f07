"""Interruption in a real subprocess, at a chosen stage: SIGINT / SIGTERM while decoding (preview), generating
or encoding (rerender) exit 130 / 143 with one line and leave nothing (no output, no sidecar, no condition
video, no temporary file); SIGKILL mid-write leaves only temporary files, never a final name, and the next
run removes them.

The stage is chosen by running the CLI through :data:`SLOW_CLI`, which slows one function down (a sleep per
call, or per item for a generator) and creates a marker file when it is first entered; the signal is sent
once the marker and the output's temporary file exist. The children start with SIGINT at its default even
when the tests run in the background (conftest.py's ``pytest_configure``).

In-process runs (``clirun.run``, as the command tests use) leave the signal handlers as they found them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import typer

from clirun import run
from inspatio_cli.errors import Interrupted
from inspatio_cli.files import TEMP_MARK
from inspatio_cli.video import probe
from test_preview_pipeline import scene_files

SLOW_CLI = """
import functools, importlib, inspect, sys, time
target, marker, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
module, _, attribute = target.partition(":")
owner = importlib.import_module(module)
*parents, name = attribute.split(".")
for parent in parents:
    owner = getattr(owner, parent)
original = getattr(owner, name)

def arrive():
    open(marker, "a").close()
    time.sleep(delay)

if inspect.isgeneratorfunction(original):
    @functools.wraps(original)
    def slow(*args, **kwargs):
        for item in original(*args, **kwargs):
            arrive()
            yield item
else:
    @functools.wraps(original)
    def slow(*args, **kwargs):
        arrive()
        return original(*args, **kwargs)
setattr(owner, name, slow)
from inspatio_cli.cli import main
main(sys.argv[4:])
"""

DECODE = "inspatio_cli.scene_stream:iter_frames"
GENERATE = "inspatio_cli.generate.star:StarSampler.step"
ENCODE = "inspatio_cli.video.writer:VideoWriter.write"
FRAMES = 72
"""Enough frames for x264 (about 40 frames of lookahead) to have written data while a run still goes on."""


def _temps(*folders: Path) -> list[Path]:
    return [p for folder in folders if folder.is_dir() for p in folder.iterdir() if TEMP_MARK in p.name]


def _start(tmp_path: Path, stage: str, delay: float, args: list[str]) -> tuple[subprocess.Popen, Path]:
    marker = tmp_path / "stage-reached"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "INSPATIO_CACHE_DIR": str(tmp_path / "cache")}
    command = [sys.executable, "-c", SLOW_CLI, stage, str(marker), str(delay), *map(str, args)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env), marker


def _wait(proc: subprocess.Popen, marker: Path, out: Path, timeout: float = 120.0) -> None:
    """Until the output's temporary file holds data, and then until the slowed stage is entered again: the
    signal sent next lands while that stage runs (it sleeps there) with the output half written."""
    deadline = time.monotonic() + timeout

    def until(ready) -> None:
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the stage was not reached mid-write: {proc.communicate()[1]}")
            time.sleep(0.02)

    until(lambda: marker.exists() and any(p.stat().st_size > 0 for p in _temps(out)))
    marker.unlink()
    until(marker.exists)


def _preview_args(files: dict, out: Path, condition: Path) -> list:
    return ["preview", files["video"], "-t", files["traj"], "-o", out / "preview.mp4", "--save-condition", condition]


def _rerender_args(files: dict, out: Path, condition: Path, weights: Path) -> list:
    return ["rerender", files["video"], "-t", files["traj"], "-o", out / "render.mp4", "--weights-dir", weights,
            "--size", "48x80", "--device", "cpu", "--decoder", "tae", "--prompt", "x", "--save-condition", condition]


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_while_decoding_the_source(tmp_path, sig, code):
    files = scene_files(tmp_path, FRAMES, 24)
    out, condition = tmp_path / "out", tmp_path / "condition"
    proc, marker = _start(tmp_path, DECODE, 0.02, _preview_args(files, out, condition))
    _wait(proc, marker, out)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err.splitlines()[-1] == f"error: interrupted by {signal.Signals(sig).name}" and "Traceback" not in err
    assert list(out.iterdir()) == [] and list(condition.iterdir()) == []


@pytest.mark.parametrize("first, second", [(signal.SIGINT, signal.SIGINT), (signal.SIGTERM, signal.SIGINT)],
                         ids=["SIGINT-twice", "SIGTERM-then-SIGINT"])
@pytest.mark.parametrize("gap", [0.0, 0.05])
def test_a_second_signal_while_unwinding_is_ignored(tmp_path, first, second, gap):
    """Ctrl-C pressed twice, or SIGTERM then SIGINT, mid-preview: the first signal is reported and the
    unwinding it started still removes every temporary file. Sent back to back (gap 0), both may reach the
    process before Python runs a handler; Python then runs SIGINT's first, so either may be reported, but
    only one, with its own exit code, and without the traceback Python prints for a signal it drops."""
    files = scene_files(tmp_path, FRAMES, 24)
    out, condition = tmp_path / "out", tmp_path / "condition"
    proc, marker = _start(tmp_path, DECODE, 0.02, _preview_args(files, out, condition))
    _wait(proc, marker, out)
    proc.send_signal(first)
    time.sleep(gap)
    proc.send_signal(second)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err and "race condition" not in err, err
    allowed = {first, second} if gap == 0.0 else {first}
    codes = {signal.SIGINT: 130, signal.SIGTERM: 143}
    reported = [sig for sig in allowed if err.splitlines()[-1] == f"error: interrupted by {sig.name}"]
    assert len(reported) == 1 and proc.returncode == codes[reported[0]], err
    assert list(out.iterdir()) == [] and list(condition.iterdir()) == []


@pytest.mark.parametrize("stage, sig, code", [(GENERATE, signal.SIGINT, 130), (ENCODE, signal.SIGTERM, 143)],
                         ids=["SIGINT-generating", "SIGTERM-encoding"])
def test_signal_while_generating_or_encoding(tiny_weights, tmp_path, stage, sig, code):
    files = scene_files(tmp_path, FRAMES, 24)
    out, condition = tmp_path / "out", tmp_path / "condition"
    proc, marker = _start(tmp_path, stage, 0.1, _rerender_args(files, out, condition, tiny_weights))
    _wait(proc, marker, out)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err.splitlines()[-1] == f"error: interrupted by {signal.Signals(sig).name}" and "Traceback" not in err
    assert list(out.iterdir()) == [] and list(condition.iterdir()) == []  # no video, no sidecar, no temporary


def test_sigkill_mid_write_leaves_only_temporaries_that_the_next_run_removes(tiny_weights, tmp_path):
    files = scene_files(tmp_path, FRAMES, 24)
    out, condition = tmp_path / "out", tmp_path / "condition"
    args = _rerender_args(files, out, condition, tiny_weights)
    proc, marker = _start(tmp_path, GENERATE, 0.2, args)
    _wait(proc, marker, out)
    proc.kill()
    proc.communicate(timeout=60)
    leftovers = [p.name for folder in (out, condition) for p in folder.iterdir()]
    assert leftovers and all(TEMP_MARK in name for name in leftovers), leftovers
    assert len(_temps(out)) == 1  # the video being written; its sidecar is never started before the video is done
    rerun = subprocess.run([sys.executable, "-m", "inspatio_cli", *map(str, args), "--quiet"], capture_output=True,
                           text=True, env={**os.environ, "OMP_NUM_THREADS": "1",
                                           "INSPATIO_CACHE_DIR": str(tmp_path / "cache")}, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert not _temps(out, condition)
    assert sorted(p.name for p in out.iterdir()) == ["render.json", "render.mp4"]
    assert probe(out / "render.mp4").frame_count == FRAMES


class _Command:
    """Stands for the click command: records the SIGTERM handler while it runs, then ends as told."""

    def __init__(self, outcome: BaseException | None):
        self.outcome, self.during = outcome, None

    def main(self, **kwargs) -> int:
        self.during = signal.getsignal(signal.SIGTERM)
        if self.outcome is not None:
            raise self.outcome
        return 0


@pytest.mark.parametrize("outcome, code", [(None, 0), (Interrupted("SIGTERM"), 143), (RuntimeError("x"), 1),
                                           (KeyboardInterrupt(), 130)], ids=["ok", "SIGTERM", "error", "SIGINT"])
def test_in_process_run_restores_the_signal_handlers(capsys, monkeypatch, outcome, code):
    """``main`` is a library entry point too: its SIGTERM handler is there while the command runs and the
    caller's handlers are back when it returns, whatever the outcome."""
    command = _Command(outcome)
    monkeypatch.setattr(typer.main, "get_command", lambda app: command)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    assert run(capsys, "info")[0] == code
    assert command.during is not before[signal.SIGTERM] and callable(command.during)
    assert {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} == before


@pytest.mark.parametrize("library", ["swallows", "transforms"])
def test_a_signal_lost_on_its_way_up_still_ends_the_run_as_interrupted(tmp_path, capsys, monkeypatch, library):
    """A library running when the signal's exception is raised may catch it (a broad ``except``) or turn it
    into an error of its own (a C extension); the run still stops as interrupted, with the signal's code
    (found by the hostile set: a batch finished with exit 0, or stopped with 'corrupt weights', after SIGTERM)."""
    from inspatio_cli import video
    from inspatio_cli.errors import VideoError

    files = scene_files(tmp_path, 12, 12)
    original = video.probe

    def library_call(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(200):  # the handler runs between two of these
                time.sleep(0.005)
        except Exception:  # noqa: BLE001 - what the library under the command does
            if library == "transforms":
                raise VideoError("not a video", files["video"]) from None
        return original(*args, **kwargs)

    monkeypatch.setattr(video, "probe", library_call)
    code, _, err = run(capsys, "info", files["video"])
    assert code == 143 and err.strip().splitlines()[-1] == "error: interrupted by SIGTERM"


def test_ctrl_c_while_the_cli_loads_is_one_line(monkeypatch, capsys):
    """The first second of ``inspatio ...`` is spent importing, before the CLI's handlers are installed
    (found by the hostile set run with --exec: SIGINT then printed a KeyboardInterrupt traceback)."""
    import sys

    from inspatio_cli import __main__ as entry

    class InterruptedImport:
        """A meta path finder: Ctrl-C lands while the CLI module is being imported."""

        def find_spec(self, name, path=None, target=None):
            if name == "inspatio_cli.cli":
                raise KeyboardInterrupt
            return None

    monkeypatch.delitem(sys.modules, "inspatio_cli.cli")
    monkeypatch.setattr(sys, "meta_path", [InterruptedImport(), *sys.meta_path])
    with pytest.raises(SystemExit) as done:
        entry.run()
    assert done.value.code == 130 and capsys.readouterr().err == "error: interrupted by SIGINT\n"


def test_a_signal_turned_into_a_job_failure_stops_the_batch(tiny_weights, tmp_path, capsys, monkeypatch):
    """A batch isolates failing jobs, but not the signal hidden in one: it stops at once, as interrupted."""
    import json

    from inspatio_cli.errors import VideoError
    from inspatio_cli.render.rerender import Rerenderer

    monkeypatch.setenv("INSPATIO_CACHE_DIR", str(tmp_path / "cache"))
    files = scene_files(tmp_path, 12, 12)
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("\n".join(json.dumps({"video": str(files["video"]), "trajectory": str(files["traj"]),
                                              "seed": seed}) for seed in (1, 2)))
    calls = []

    def render(self, *args, **kwargs):
        calls.append(args)
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(200):
                time.sleep(0.005)
        except Exception:  # noqa: BLE001 - a library turning the signal's exception into its own error
            raise VideoError("not a video", files["video"]) from None

    monkeypatch.setattr(Rerenderer, "render", render)
    code, _, err = run(capsys, "batch", manifest, "-o", tmp_path / "renders", "--weights-dir", tiny_weights,
                       "--size", "48x80", "--device", "cpu", "--decoder", "tae", "--prompt", "a room")
    assert code == 143 and len(calls) == 1, err
    assert err.strip().splitlines()[-1] == "error: interrupted by SIGTERM"
