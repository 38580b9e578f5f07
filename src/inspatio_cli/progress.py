"""Progress and messages: one object every long-running API call reports to.

* human mode: a rich progress display on stderr (stage, i/n, rate, ETA) and messages on stderr;
* ``json`` mode: one JSON object per event on stdout (machine-readable), messages still on stderr;
* ``quiet`` mode: nothing but errors.

The Python API takes an optional :class:`Reporter`; without one it uses ``Reporter("silent")``, which
prints nothing but still collects warnings, so scripts get no output unless they ask for it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from typing import Any, Iterator

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TaskProgressColumn,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

MODES = ("human", "json", "quiet", "silent")


class Stage:
    """Handle of one running stage; ``advance()`` after each unit of work."""

    def __init__(self, reporter: "Reporter", name: str, total: int | None, task_id: Any):
        self.reporter, self.name, self.total, self.task_id = reporter, name, total, task_id
        self.done = 0
        self.started = time.perf_counter()

    def advance(self, n: int = 1, **fields: Any) -> None:
        """Record ``n`` finished units; ``fields`` go into the JSON event (e.g. ``chunk=3``)."""
        self.done += n
        r = self.reporter
        if r.progress is not None and self.task_id is not None:
            r.progress.update(self.task_id, advance=n)
        if fields:
            r.event("progress", stage=self.name, done=self.done, total=self.total, **fields)

    def status(self, text: str) -> None:
        """Show ``text`` after the stage's name in the progress display (e.g. ``chunk 3/8``)."""
        r = self.reporter
        if r.progress is not None and self.task_id is not None:
            r.progress.update(self.task_id, description=f"{self.name} {text}")

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


class _RateColumn(ProgressColumn):
    """Units per second (frames/s for most stages), once rich has measured a speed."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("")
        return Text(f"{speed:.2f}/s" if speed < 10 else f"{speed:,.0f}/s")


class Reporter:
    """Where progress, messages and events go. ``mode`` is ``human``, ``json`` or ``quiet``."""

    def __init__(self, mode: str = "human", console: Console | None = None, stdout=None):
        if mode not in MODES:
            raise ValueError(f"unknown reporter mode {mode!r}")
        self.mode = mode
        self.console = console or Console(stderr=True, soft_wrap=True)  # a message is one line, even in a log file
        self.stdout = stdout or sys.stdout
        self.progress: Progress | None = None
        self.warnings: list[str] = []

    @property
    def shows_progress(self) -> bool:
        return self.mode in ("human", "json") and self.console.is_terminal

    @contextlib.contextmanager
    def stage(self, name: str, total: int | None = None, unit: str = "frames") -> Iterator[Stage]:
        """Context for one pipeline stage; emits ``stage_start``/``stage_end`` events with seconds."""
        self.event("stage_start", stage=name, total=total)
        task_id = None
        own_progress = False
        if self.shows_progress:
            if self.progress is None:
                self.progress = Progress(
                    TextColumn("{task.description}", style="bold", markup=False), BarColumn(), MofNCompleteColumn(),
                    TextColumn(unit), _RateColumn(), TaskProgressColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), console=self.console, transient=False)
                self.progress.start()
                own_progress = True
            task_id = self.progress.add_task(name, total=total)
        handle = Stage(self, name, total, task_id)
        try:
            yield handle
        finally:
            if own_progress:
                self.progress.stop()
                self.progress = None
            self.event("stage_end", stage=name, seconds=round(handle.seconds, 4), done=handle.done)

    def event(self, kind: str, **data: Any) -> None:
        """Print one JSON event line on stdout (``json`` mode only)."""
        if self.mode == "json":
            print(json.dumps({"event": kind, **data}, default=str), file=self.stdout, flush=True)

    def info(self, message: str) -> None:
        """A human message on stderr (not in quiet or json mode)."""
        if self.mode == "human":
            self.console.print(message, highlight=False, markup=False)

    def warn(self, message: str) -> None:
        """A warning: kept in :attr:`warnings` (for sidecars and JSON), shown on stderr unless quiet."""
        self.warnings.append(message)
        if self.mode in ("human", "json"):
            self.console.print(Text.assemble(("warning:", "yellow"), " ", message), highlight=False)
        self.event("warning", message=message)

    def error(self, message: str) -> None:
        """An error the command goes on past (e.g. one failed job of a batch): one line ``error: ...`` on
        stderr in every mode but silent (quiet prints errors)."""
        if self.mode != "silent":
            print(f"error: {' '.join(message.split())}", file=sys.stderr, flush=True)


def configure_logging(quiet: bool, debug: bool) -> None:
    """Route library logging to stderr: warnings by default, debug details with ``--debug``."""
    level = logging.DEBUG if debug else (logging.ERROR if quiet else logging.WARNING)
    handler = RichHandler(console=Console(stderr=True), show_time=False, show_path=debug, markup=False)
    root = logging.getLogger("inspatio_cli")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
