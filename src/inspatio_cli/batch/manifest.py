"""Reading a batch manifest into rows, without validating the jobs: JSONL (``.jsonl``/``.ndjson``, or a
first line starting with ``{``), CSV (``.csv``, ``.tsv``, or a first line with a ``video`` column) or a
plain list of video paths (anything else); a file or standard input. Lines that cannot be read are
collected as :class:`Problem` objects, which :class:`InvalidJobs` reports all at once."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Sequence, TextIO

from ..errors import InspatioError, ManifestError
from ..files import is_stream
from .keys import ALL_KEYS, key_name, unknown_key


@dataclass(frozen=True)
class Problem:
    """One invalid line (or command-line input): where (``line``, None for the command line) and the
    error found there."""

    line: int | None
    error: InspatioError

    def text(self) -> str:
        return self.error.one_line() if self.line is None else f"line {self.line}: {self.error.one_line()}"


class InvalidJobs(ManifestError):
    """Every problem of a manifest (or of the command line's inputs) at once; ``problems`` lists them in
    line order. Exit code 3, like every :class:`ManifestError`."""

    def __init__(self, problems: Sequence[Problem], path: str | os.PathLike[str] | None = None):
        self.problems = sorted(problems, key=lambda p: (p.line or 0))
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the jobs (nothing was run): "
                         + "; ".join(p.text() for p in self.problems), path)


@dataclass(frozen=True)
class Row:
    """One manifest line: its 1-based ``line`` (None for a command-line input), the values by key
    (unconverted) and whether they are CSV or list text (``from_text``) or JSON / Python values."""

    line: int | None
    values: dict[str, Any]
    from_text: bool


@dataclass
class Manifest:
    """A read manifest: where it came from (``path``; None for stdin), its ``kind``, the folder its
    relative paths are relative to (``base``), the rows and the problems found while reading."""

    path: Path | None
    kind: str
    base: Path
    rows: list[Row]
    problems: list[Problem] = field(default_factory=list)


def _detect_kind(name: str, lines: list[str]) -> str:
    suffix = Path(name).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    first = next((ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")), "")
    if first.startswith("{"):
        return "jsonl"
    cells = [key_name(c) for c in next(csv.reader([first], delimiter="\t" if "\t" in first else ","), [])]
    return "csv" if "video" in cells else "list"


def read_manifest(source: str | Path, *, stdin: BinaryIO | TextIO | None = None) -> Manifest:
    """Read a manifest file (``-``: standard input, or the stream ``stdin`` when given) without validating
    the jobs: JSONL, CSV or a plain list of videos (see the module docstring). Lines that cannot be read
    (bad JSON, a non-object, a CSV row of the wrong width, an unknown key) are collected in ``problems``
    with their line numbers; a file that cannot be read at all raises :class:`ManifestError`."""
    if str(source) == "-":
        data = (stdin if stdin is not None else sys.stdin.buffer).read()
        path, base = None, Path()
    else:
        path = Path(source)
        try:
            data = path.read_bytes()
        except IsADirectoryError:
            raise ManifestError("is a folder, not a manifest file", path) from None
        except OSError as exc:
            raise ManifestError(f"cannot read the manifest ({exc.strerror or exc})", path) from None
        base = Path() if is_stream(path) else path.parent  # a pipe's paths are relative to the working folder
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            raise ManifestError(f"line {line}: not UTF-8 text (byte {exc.start})", path or "<stdin>") from None
    lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")  # not splitlines(): JSON strings may
    # hold U+2028 and other characters it breaks lines at
    kind = _detect_kind("" if path is None else path.name, lines)
    manifest = Manifest(path, kind, base, [])
    reader = {"jsonl": _read_jsonl, "csv": _read_csv, "list": _read_list}[kind]
    reader(manifest, lines, "\t" if path is not None and path.suffix.lower() == ".tsv" else None)
    return manifest


def _skip(line: str) -> bool:
    return not line.strip() or line.lstrip().startswith("#")


def _bad(manifest: Manifest, line: int, message: str) -> None:
    manifest.problems.append(Problem(line, ManifestError(message)))


def _keep(manifest: Manifest, line: int, values: dict[str, Any], from_text: bool) -> None:
    """Add a row after checking its keys: unknown or repeated keys are problems, and the row's other values
    are still checked (nothing runs while the manifest has a problem, so every one is found at once)."""
    normal: dict[str, Any] = {}
    for name, value in values.items():
        key = key_name(name)
        if key not in ALL_KEYS:
            _bad(manifest, line, unknown_key(name))
        elif key in normal:
            _bad(manifest, line, f"{key!r} is given twice")
        else:
            normal[key] = value
    manifest.rows.append(Row(line, normal, from_text))


def _read_jsonl(manifest: Manifest, lines: list[str], delimiter: str | None) -> None:
    for number, line in enumerate(lines, 1):
        if _skip(line):
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError) as exc:
            reason = "too deeply nested" if isinstance(exc, RecursionError) else str(exc).split(":")[0]
            _bad(manifest, number, f"not valid JSON ({reason})")
            continue
        if not isinstance(value, dict):
            _bad(manifest, number, f"expected a JSON object per line, got {type(value).__name__}")
            continue
        _keep(manifest, number, {k: v for k, v in value.items() if v is not None}, False)


def _read_csv(manifest: Manifest, lines: list[str], delimiter: str | None) -> None:
    records = [n for n, ln in enumerate(lines, 1) if not _skip(ln)]
    if not records:
        return
    first = lines[records[0] - 1]
    delimiter = delimiter or ("\t" if "\t" in first and "," not in first else ",")
    reader = csv.reader(io.StringIO("\n".join(lines[n - 1] for n in records)), delimiter=delimiter, strict=True)
    rows: list[tuple[int, list[str]]] = []
    start = 0  # index in records of the line where the next row begins (a quoted cell may span lines)
    try:
        for cells in reader:
            rows.append((records[start], cells))
            start = reader.line_num
    except csv.Error as exc:
        _bad(manifest, records[min(start, len(records) - 1)], f"not valid CSV ({exc})")
        return
    (header_line, header), body = rows[0], rows[1:]
    names = [key_name(h) for h in header]
    for name in (h for h, n in zip(header, names) if n not in ALL_KEYS):
        _bad(manifest, header_line, unknown_key(name, "column"))
    twice = sorted({n for n in names if names.count(n) > 1})
    for name in twice:
        _bad(manifest, header_line, f"column {name!r} appears twice in the header")
    if "video" not in names:
        _bad(manifest, header_line, "missing column 'video' in the header")
    if twice or "video" not in names:
        return  # the rows cannot be read: which cell is which is unclear
    known = [i for i, n in enumerate(names) if n in ALL_KEYS]  # an unknown column is reported once, above
    for number, cells in body:
        if len(cells) != len(names):
            _bad(manifest, number, f"{len(cells)} cells, but the header has {len(names)} columns")
            continue
        _keep(manifest, number, {names[i]: cells[i] for i in known if cells[i].strip()}, True)


def _read_list(manifest: Manifest, lines: list[str], delimiter: str | None) -> None:
    for number, line in enumerate(lines, 1):
        if not _skip(line):
            manifest.rows.append(Row(number, {"video": line.strip()}, True))
