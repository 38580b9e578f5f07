"""Error hierarchy and exit codes.

Every failure a user can cause or meet is an :class:`InspatioError`. The CLI prints it as one line,
``error: <file>: <problem>``, and exits with the class's code; the Python API simply raises it.

Exit codes (documented in the README):

====  =================================================================
0     success
1     the command ran but reports a failure (lint errors, failed batch jobs)
2     usage error (bad option, bad combination of options)
3     bad input (video, trajectory, depth file, manifest, prompt file)
4     weights missing, corrupt or not matching the model
5     runtime failure (out of memory, device error, encoder failure)
130   interrupted (SIGINT / Ctrl-C)
143   terminated (SIGTERM)
====  =================================================================
"""

from __future__ import annotations

import re
from os import PathLike


class InspatioError(Exception):
    """Base class: a message for humans, an optional file it concerns, and an exit code."""

    exit_code = 5

    def __init__(self, message: str, path: str | PathLike[str] | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = None if path is None else str(path)
        self.hint = hint

    def one_line(self) -> str:
        """``<file>: <problem>`` (or just the problem), without line breaks."""
        text = self.message if self.path is None else f"{self.path}: {self.message}"
        if self.hint:
            text = f"{text} ({self.hint})"
        return " ".join(text.split())

    def __str__(self) -> str:
        return self.one_line()


class UsageError(InspatioError):
    """The command line itself is wrong (conflicting or invalid options)."""

    exit_code = 2


class InputError(InspatioError):
    """A user-supplied file or value is unusable."""

    exit_code = 3


class VideoError(InputError):
    """A video cannot be opened, decoded or has no usable frames."""


class TrajectoryError(InputError):
    """A trajectory file or option is malformed; ``line`` points at the offending line (1-based)."""

    def __init__(self, message: str, path: str | PathLike[str] | None = None, line: int | None = None,
                 hint: str | None = None):
        self.line = line
        where = path if path is None or line is None else f"{path}:{line}"
        super().__init__(message, where, hint)


class DepthError(InputError):
    """A depth cache file is missing, malformed or does not match the video."""


class ManifestError(InputError):
    """A batch manifest has one or more invalid lines (all are listed in the message)."""


class PromptError(InputError):
    """A prompt or prompt file is unusable."""


class WeightsError(InspatioError):
    """Model weights are missing, truncated, unsafe or do not match the model."""

    exit_code = 4


class RuntimeFailure(InspatioError):
    """Something failed while running (out of memory, encoder error, device problem)."""

    exit_code = 5


class Interrupted(InspatioError):
    """The process received SIGINT (code 130) or SIGTERM (code 143)."""

    def __init__(self, signal_name: str = "SIGINT"):
        super().__init__(f"interrupted by {signal_name}")
        self.exit_code = 143 if signal_name == "SIGTERM" else 130


_received: list[str] = []


def note_signal(signal_name: str | None) -> None:
    """Record the signal that interrupts this process's run (None forgets it). The CLI's handler records
    it before raising :class:`Interrupted`, because that exception can be lost on its way up: a C extension
    that is running when it is raised may turn it into an error of its own, and a broad ``except`` meant
    for damaged files may swallow it. :func:`pending_interrupt` tells the run was interrupted all the same."""
    _received[:] = [] if signal_name is None else [signal_name]


def pending_interrupt() -> Interrupted | None:
    """The :class:`Interrupted` of the signal recorded by :func:`note_signal` in this run, if any."""
    return Interrupted(_received[0]) if _received else None


OOM_ADVICE = ("to need less memory: --decoder tae (TAEHV instead of the Wan2.1 VAE), --dtype bf16, "
              "--text-device cpu (the text encoder on the CPU), a smaller --window for depth, or a smaller --size")
"""What to try after running out of memory, with the options that change the footprint."""


def out_of_memory(exc: BaseException, during: str | None = None) -> RuntimeFailure | None:
    """``exc`` as a one-line :class:`RuntimeFailure` with :data:`OOM_ADVICE` when it reports running out of
    memory: torch's ``OutOfMemoryError`` (CUDA), a ``RuntimeError`` saying so (other backends, older
    releases) or a CPU ``MemoryError``; None for any other exception. ``during`` names the stage.

    Checked by class name and message so that reporting an error never imports torch.
    """
    text = " ".join(str(exc).split())
    gpu = type(exc).__name__ == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError) and "out of memory" in text.lower())
    if not gpu and not isinstance(exc, MemoryError):
        return None
    asked = re.search(r"tried to allocate [\d.]+ ?[KMGT]i?B", text, re.IGNORECASE)
    where = "GPU memory" if gpu else "memory (RAM)"
    details = f" (t{asked.group(0)[1:]})" if asked else ""
    return RuntimeFailure(f"out of {where}{f' while {during}' if during else ''}{details}", hint=OOM_ADVICE)
