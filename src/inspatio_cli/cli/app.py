"""The Typer application object and the options every command shares."""

from __future__ import annotations

import functools
import inspect
import sys
from typing import Annotated, Any, Callable, Sequence

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .. import __version__
from ..errors import InspatioError, UsageError
from ..progress import Reporter

app = typer.Typer(
    name="inspatio",
    help="Rerender a video along a new camera trajectory (InSpatio-World), preview trajectories, "
         "and manage depth, weights and batches.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"inspatio {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Global options. ``--debug`` (accepted anywhere) shows tracebacks for errors."""


JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace outputs that already exist (without it "
                                            "they are refused before any work).")]
SkipBadFramesOpt = Annotated[bool, typer.Option(
    "--skip-bad-frames", help="Keep going past damaged video data: each source frame that does not decode is "
    "replaced by the previous good one, and the number replaced is reported (default: stop with an error).")]


def print_error(message: str) -> None:
    """Print ``error: <message>`` as exactly one line on stderr (never wrapped)."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr, flush=True)


def reporter(json_mode: bool, quiet: bool) -> Reporter:
    """The reporter for a command's ``--json``/``--quiet`` flags (quiet wins)."""
    return Reporter("quiet" if quiet else ("json" if json_mode else "human"))


def parse_size(text: str, option: str = "--size") -> tuple[int, int]:
    """``HxW`` (e.g. ``480x832``) -> (H, W); :class:`UsageError` naming ``option`` otherwise."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"{option} must be HxW (e.g. 480x832), got {text!r}") from None
    return h, w


def add_plain_row(table: Table, *cells: object) -> None:
    """Add a row of plain text: file names, prompts and captions may hold ``[...]``, which rich would
    otherwise read as markup (and drop, or fail on)."""
    table.add_row(*(Text(str(cell)) for cell in cells))


def print_table(table: Table) -> None:
    """Print ``table`` on stdout, laid out 160 columns wide when stdout is not a terminal (a pipe or a file,
    where rich would assume 80)."""
    out = Console()
    if not out.is_terminal:
        out.width = 160
    out.print(table)


class Reported(Exception):
    """A command fails after printing the details itself (per-file errors, a manifest's problems, failed
    jobs): :func:`~inspatio_cli.cli.main` prints nothing more on stderr, ends ``--json`` output with the
    ``error`` event (``message``: a one-line summary) and exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.message, self.exit_code = " ".join(message.split()), exit_code


def exit_for(failures: Sequence[InspatioError]) -> None:
    """End a command that went on past per-file errors (each already printed) with the highest of their
    exit codes (:class:`Reported`); do nothing when there were none."""
    if failures:
        first = failures[0].one_line()
        raise Reported(first if len(failures) == 1 else f"{len(failures)} errors, the first: {first}",
                       max(exc.exit_code for exc in failures))


def option_group(param: str, parameters: list[tuple[str, Any, Any]],
                 build: Callable[..., Any]) -> Callable[[Callable], Callable]:
    """A decorator for Typer commands that adds the flags ``parameters`` (name, annotated type, default)
    and passes the command ``build(**their values)`` as its parameter ``param`` instead. The command's
    other parameters' annotations are evaluated here (a decorator above it sees real types); its ``param``
    annotation is not evaluated, so its type may be imported only for type checking."""

    def decorate(func: Callable) -> Callable:
        signature = inspect.signature(func)
        own = [p.replace(annotation=eval(p.annotation, func.__globals__) if isinstance(p.annotation, str)
                         else p.annotation)
               for p in signature.parameters.values() if p.name != param]
        if len(own) == len(signature.parameters):
            raise TypeError(f"{func.__name__} must take a {param!r} parameter")
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
                 for name, kind, default in parameters]

        @functools.wraps(func)
        def command(*args, **kwargs):
            values = {name: kwargs.pop(name) for name, *_ in parameters}
            return func(*args, **{param: build(**values)}, **kwargs)

        command.__signature__ = signature.replace(parameters=own + added)
        command.__annotations__ = {p.name: p.annotation for p in own + added}
        return command

    return decorate
