"""Command-line interface: a thin layer that parses options, calls the API and maps errors to exit codes.

Each command lives in its own module and registers itself on :data:`app`; :func:`main` is the console
entry point (``inspatio``) and turns every error into one line on stderr.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Callable

import typer

from ..errors import InspatioError, Interrupted, RuntimeFailure, note_signal, out_of_memory, pending_interrupt
from ..progress import configure_logging
from . import batch  # noqa: F401
from . import caption  # noqa: F401
from . import depth  # noqa: F401
from . import info  # noqa: F401  (registers the command)
from . import models  # noqa: F401
from . import preview  # noqa: F401
from . import rerender  # noqa: F401
from . import scene  # noqa: F401
from . import studio  # noqa: F401
from . import trajectory  # noqa: F401
from .app import Reported, app, print_error

__all__ = ["app", "install_signal_handlers", "main"]


def _usage_error_classes() -> tuple[type, ...]:
    """The ``UsageError`` classes of the click that Typer runs on: recent Typer releases vendor click
    as ``typer._click``, older ones use the ``click`` package; accept both."""
    classes = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            classes.append(__import__(name, fromlist=["UsageError"]).UsageError)
        except (ImportError, AttributeError):
            continue
    return tuple(classes)


_USAGE = _usage_error_classes()


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _ignore(signum: int, frame) -> None:
    """The handler of SIGINT and SIGTERM once the run is unwinding: does nothing. It is a Python function,
    not ``SIG_IGN``, because a signal that reached the process before the handler changed is still run by
    Python afterwards, and Python prints a "Signal ... ignored due to race condition" traceback for it
    when the handler has become ``SIG_IGN``."""


def _interrupt(signum: int, frame) -> None:
    """The first SIGINT or SIGTERM: from now on both are ignored (:func:`_ignore`), so that a second one
    (Ctrl-C pressed twice, SIGTERM then SIGINT) cannot cut the unwinding short, which removes the writers'
    temporary files, nor change the signal reported; then :class:`Interrupted` unwinds the run.

    "First" is the first that Python runs: two signals that arrive together, before the interpreter gets
    to run a handler, are run in signal-number order (SIGINT before SIGTERM); their arrival order is not
    known to Python."""
    for sig in _SIGNALS:
        signal.signal(sig, _ignore)
    note_signal(signal.Signals(signum).name)
    raise Interrupted(signal.Signals(signum).name)


def install_signal_handlers() -> Callable[[], None]:
    """Turn SIGINT and SIGTERM into an :class:`Interrupted` exception (exit 130 or 143) that unwinds through
    the writers and removes their temporary files; the first signal wins (:func:`_interrupt`). A SIGINT
    that is ignored (a background job) stays ignored.

    Returns the function that puts the previous handlers back (the default ones where the previous handler
    was not set from Python): :func:`main` calls it when it finishes, because it is a library entry point
    too and a handler left behind would raise :class:`Interrupted` in its caller's code."""
    previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    note_signal(None)
    for sig in _SIGNALS:
        if previous[sig] is not signal.SIG_IGN or sig == signal.SIGTERM:
            signal.signal(sig, _interrupt)

    def restore() -> None:
        note_signal(None)
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)

    return restore


def _fail(message: str, code: int, json_mode: bool) -> int:
    """Print the error line on stderr (and, under ``--json``, an ``error`` event on stdout, so a program
    reading the JSON lines learns why there is no result); return the exit code. After a signal, whatever
    error the unwinding met, the run reports the interruption (:func:`~inspatio_cli.errors.pending_interrupt`)."""
    interrupted = pending_interrupt()
    if interrupted is not None:
        message, code = interrupted.one_line(), interrupted.exit_code
    print_error(message)
    if json_mode:
        _event(message, code)
    return code


def _printed_failure(code: int, json_mode: bool) -> int:
    """A command's own exit ``code``; when it failed after printing its errors itself (lint errors, weights
    verification, failed jobs), its ``--json`` output still ends with the ``error`` event."""
    if code and json_mode:
        _event(f"failed with exit code {code} (the errors are on stderr)", code)
    return code


def _event(message: str, code: int) -> None:
    """The ``error`` event on stdout that ends a failing command's ``--json`` output."""
    print(json.dumps({"event": "error", "message": " ".join(message.split()), "exit_code": code}), flush=True)



def _own_path_checks(command):
    """``command`` (the click command tree) with the option parser's permission check turned off on every
    path parameter: Typer's paths are ``readable`` by default, which made an unreadable file or folder a
    usage error (exit 2) before the command ran; the API's own checks report it as bad input (exit 3) or
    weights (exit 4), in our one-line form. The flag is on click's path type in older Typer releases and on
    the parameter's declaration in newer ones."""
    for param in getattr(command, "params", ()):
        declared = getattr(getattr(param, "type_descriptor", None), "parameter_info", None)
        for holder in (getattr(param, "type", None), declared):
            if hasattr(holder, "readable"):
                holder.readable = False
    for sub in getattr(command, "commands", {}).values():
        _own_path_checks(sub)
    return command


def _tolerant_streams() -> Callable[[], None]:
    """Let stdout and stderr write any text, whatever their encoding (``PYTHONIOENCODING=ascii``, a C
    locale): a character the encoding lacks is written as a backslash escape instead of failing the command
    with ``UnicodeEncodeError`` (non-ASCII file names and prompts in messages, tables and progress; JSON
    output is ASCII already). Returns the function that puts the previous error handlers back."""
    previous = [(stream, stream.errors) for stream in (sys.stdout, sys.stderr)
                if hasattr(stream, "reconfigure") and stream.errors == "strict"]
    for stream, _ in previous:
        stream.reconfigure(errors="backslashreplace")

    def restore() -> None:
        for stream, errors in previous:
            stream.reconfigure(errors=errors)

    return restore


def main(argv: list[str] | None = None, *, restore_handlers: bool = True) -> None:
    """Run the CLI and exit with its code. ``--debug`` anywhere on the command line (or
    ``INSPATIO_DEBUG=1``) re-raises errors with their traceback. SIGTERM interrupts the run
    (:func:`install_signal_handlers`); the previous handler is back when it exits, unless
    ``restore_handlers`` is False (the ``inspatio`` process itself, which then ignores SIGINT and SIGTERM
    while it exits: its outputs are committed and a late signal must not kill it with the default action)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("INSPATIO_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    quiet = "--quiet" in args or "-q" in args
    json_mode = "--json" in args
    restore_streams = _tolerant_streams()
    configure_logging(quiet=quiet, debug=debug)
    command = _own_path_checks(typer.main.get_command(app))
    restore_signal_handlers = install_signal_handlers()
    try:
        result = command.main(args=args, prog_name="inspatio", standalone_mode=False)
        code = result if isinstance(result, int) else 0
        if code == 130 or pending_interrupt() is not None:  # recent Typer turns Ctrl-C into a returned 130,
            code = _fail("interrupted by SIGINT", 130, json_mode)  # and a library may have swallowed a signal
        else:
            code = _printed_failure(code, json_mode)
    except typer.Exit as exc:
        code = _printed_failure(exc.exit_code, json_mode)
    except Reported as exc:
        if pending_interrupt() is not None:  # the errors printed were the signal's, caught by a library
            code = _fail(exc.message, exc.exit_code, json_mode)
        else:
            code = exc.exit_code
            if json_mode:
                _event(exc.message, code)
    except _USAGE as exc:
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        code = _fail(exc.format_message() + where, 2, json_mode)
    except (KeyboardInterrupt, typer.Abort):
        if debug:
            raise
        code = _fail("interrupted by SIGINT", 130, json_mode)
    except InspatioError as exc:
        if debug:
            raise
        code = _fail(exc.one_line(), exc.exit_code, json_mode)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 141
    except Exception as exc:  # noqa: BLE001 - last resort: one line, traceback only with --debug
        if debug:
            raise
        failure = out_of_memory(exc)  # from any stage: one line with advice, exit 5
        if failure is not None:
            code = _fail(failure.one_line(), failure.exit_code, json_mode)
        elif isinstance(exc, OSError):  # the system refused: disk full, permissions, a file gone meanwhile
            where = f"{exc.filename}: " if exc.filename else ""
            code = _fail(f"{where}{exc.strerror or exc}", RuntimeFailure.exit_code, json_mode)
        else:
            code = _fail(f"internal error: {type(exc).__name__}: {exc} (run again with --debug for the "
                         "traceback, and please report it)", 1, json_mode)
    finally:
        if restore_handlers:
            restore_signal_handlers()
        else:
            for sig in _SIGNALS:
                signal.signal(sig, _ignore)
        restore_streams()
    sys.exit(code)
