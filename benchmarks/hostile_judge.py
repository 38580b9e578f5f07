"""The hostile set's judge (``hostile.py``): what a finished case did to its folder and what it printed,
turned into one outcome (data loss, partial, internal, hang, bad message, ok) with a one-line reason."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from hostile_kit import Case, Fixtures, Run
from inspatio_cli.files import TEMP_MARK

OUTCOMES = ("data loss", "partial", "internal", "hang", "bad message", "ok")
EXIT_CODES = {0, 1, 2, 3, 4, 5, 130, 141, 143}


@dataclass
class Result:
    """What one case did: its outcome, the exit code (None for a hang), seconds, a one-line reason."""

    case: Case
    run: Run
    outcome: str
    code: int | None
    seconds: float
    detail: str
    stdout: str = ""
    stderr: str = ""


@dataclass
class Child:
    """A running case: its process, when it started and the signals still to send."""

    case: Case
    run: Run
    folder: Path
    before: dict
    started: float
    pid: int = 0
    popen: subprocess.Popen | None = None
    signals: list = field(default_factory=list)
    sent: int = 0
    pipes: dict[int, int] = field(default_factory=dict)
    output: dict[int, bytes] = field(default_factory=lambda: {1: b"", 2: b""})


def snapshot(*folders: Path) -> dict[str, tuple]:
    """Every file and link under ``folders`` (links not followed): path -> (kind, size, content hash)."""
    state = {}
    for folder in folders:
        for base, dirs, files in os.walk(folder):
            for name in dirs + files:
                path = os.path.join(base, name)
                if os.path.islink(path):
                    state[path] = ("link", os.readlink(path))
                elif name in files:
                    state[path] = ("file", _digest(path))
    return state


def _digest(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return hashlib.sha1(handle.read()).hexdigest()
    except OSError as exc:  # a FIFO, an unreadable file (without root's override): its metadata stands for it
        info = os.lstat(path)
        return f"{type(exc).__name__}:{info.st_size}:{info.st_mtime_ns}"


def classify(child: Child, code: int | None, seconds: float, fixtures: Fixtures) -> Result:
    """The outcome of one finished (or killed) case; see the module docstring for the rules."""
    run = child.run
    stdout = child.output[1].decode(errors="replace")
    stderr = child.output[2].decode(errors="replace")
    after = snapshot(child.folder, fixtures.root)

    def result(outcome: str, detail: str) -> Result:
        return Result(child.case, run, outcome, code, seconds, " ".join(detail.split())[:220], stdout, stderr)

    changed = [p for p, state in child.before.items() if after.get(p) != state and not _may_replace(p, run, child)]
    if changed:
        gone = [p for p in changed if p not in after]
        return result("data loss", f"{'removed' if gone else 'changed'}: {_short(changed, child.folder)}")
    temps = [p for p in after if TEMP_MARK in os.path.basename(p)]
    if temps:
        return result("partial", f"temporary left: {_short(temps, child.folder)}")
    new = [p for p in after if p not in child.before and after[p][0] == "file"]
    if code not in (0, None):
        left = [p for p in new if not _finished_job(p, after, run, code, child.folder)]
        if left:
            return result("partial", f"exit {code} but wrote {_short(left, child.folder)}")
    lines = [line for line in stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    if "Traceback (most recent call last)" in stderr or "internal error" in stderr:
        line = next((x for x in lines if "internal error" in x), lines[-1] if lines else "")
        return result("internal", line)
    if code in (-signal.SIGINT, -signal.SIGTERM) and child.sent:
        return result("ok", f"ended by the signal as the run finished (exit {code})")
    if code is not None and code not in EXIT_CODES:
        return result("internal", f"exit {code} (a crash or an undocumented code); stderr: {last}")
    if code is None:
        return result("hang", f"no exit after {seconds:.0f} s; stderr: {last}")
    if code == 0 and child.sent:
        return result("bad message", f"{child.sent} signal(s) sent during the run, but exit 0")
    if code == 0:
        missing = [o for o in run.outputs if not (child.folder / o).is_file()]
        if missing:
            return result("bad message", f"exit 0 but {', '.join(missing)} missing")
        return result("ok", "done")
    if code == 1 and run.batch:
        return result("ok", f"exit 1: {last}")
    errors = sum(line.startswith("error: ") for line in lines)
    if not last.startswith("error: ") or (errors > 1 and not run.batch):
        return result("bad message", f"exit {code}, stderr ends: {last!r}")
    if child.sent and code not in (130, 143):
        return result("bad message", f"signalled, but exit {code}: {last}")
    if child.sent and code != {signal.SIGINT: 130, signal.SIGTERM: 143}[sorted(run.signals)[0][1]] \
            and not run.either_signal:
        return result("bad message", f"first signal was {sorted(run.signals)[0][1].name}, exit {code}")
    if "--json" in run.args:
        tail = stdout.strip().splitlines()[-1:] or [""]
        if '"event": "error"' not in tail[0]:
            return result("bad message", f"--json failure, stdout ends {tail[0][:80]!r}")
    return result("ok", f"exit {code}: {last}")


def _may_replace(path: str, run: Run, child: Child) -> bool:
    return any(path == str(child.folder / name) for name in run.replaceable)


def _finished_job(path: str, after: dict, run: Run, code: int, folder: Path) -> bool:
    """A batch (failed in part, or interrupted) keeps the jobs it finished: a video with its sidecar and the
    job's condition videos. A run interrupted just after its outputs were committed (renamed into place,
    so complete) keeps them too: the signal came too late to undo the work."""
    committed = [str(folder / name) for name in run.outputs]
    if code in (130, 143) and (path in committed or os.path.splitext(path)[0] + ".mp4" in committed
                               or os.path.basename(path) in ("warped.mp4", "mask.mp4")):
        return True
    if not run.batch:
        return False
    base, suffix = os.path.splitext(path)
    if suffix == ".mp4" and base + ".json" in after:
        return True
    if suffix == ".json" and base + ".mp4" in after:
        return True
    return os.path.basename(path) in ("warped.mp4", "mask.mp4")


def _short(paths: list[str], folder: Path) -> str:
    names = [os.path.relpath(p, folder) if p.startswith(str(folder)) else p for p in paths]
    return ", ".join(names[:3]) + (f" (+{len(names) - 3})" if len(names) > 3 else "")
