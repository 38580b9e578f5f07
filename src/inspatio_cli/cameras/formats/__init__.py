"""Trajectory file formats: one small module per format, and the text helpers they share.

Every reader raises :class:`~inspatio_cli.errors.TrajectoryError` naming the file and (for text) the
1-based line, so a bad file is reported in one line without a traceback.
"""

from __future__ import annotations

import bisect
import json
import json.decoder
import json.scanner
import math
import re
from pathlib import Path

from ...errors import TrajectoryError

MAX_FILE_BYTES = 64 << 20
MAX_POSES = 100_000
MAX_KEYFRAMES = 10_000


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes, refusing missing files, folders and files too large to be a trajectory."""
    p = Path(path)
    if not p.exists():
        raise TrajectoryError("no such file", p)
    if not p.is_file():
        raise TrajectoryError("not a file", p)
    size = p.stat().st_size
    if size > MAX_FILE_BYTES:
        raise TrajectoryError(f"file is {size >> 20} MiB, too large for a trajectory (limit {MAX_FILE_BYTES >> 20} MiB)", p)
    try:
        return p.read_bytes()
    except OSError as exc:
        raise TrajectoryError(f"cannot read ({exc.strerror})", p) from None


def read_text(path: str | Path) -> str:
    """The file as text; binary or non-UTF-8 content is a :class:`TrajectoryError`."""
    data = read_bytes(path)
    if b"\0" in data:
        raise TrajectoryError("binary file, not a trajectory text (use .npy/.npz for binary poses)", path,
                              data[: data.index(b"\0")].count(b"\n") + 1)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TrajectoryError("not UTF-8 text", path, line) from None


def data_lines(text: str) -> list[tuple[int, list[str]]]:
    """``(line number, tokens)`` of each line with content; ``#`` starts a comment (to the line end)
    and blank lines are skipped."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].split()
        if content:
            out.append((number, content))
    return out


def comment_lines(text: str) -> list[str]:
    """The ``#`` comment lines at the top of a file, without the ``#`` (a preset's description)."""
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            break
        out.append(stripped.lstrip("#").strip())
    return out


def to_floats(tokens: list[str], path, line: int) -> list[float]:
    """Parse tokens as finite floats, or raise :class:`TrajectoryError` at ``line``."""
    values = []
    for tok in tokens:
        try:
            v = float(tok)
        except ValueError:
            shown = tok if len(tok) <= 20 else tok[:20] + "..."
            raise TrajectoryError(f"{shown!r} is not a number", path, line) from None
        if not math.isfinite(v):
            raise TrajectoryError(f"{tok!r} is not a finite number", path, line)
        values.append(v)
    return values


class JsonObject(dict):
    """A JSON object that remembers the 1-based line where it starts, for error messages."""

    line: int | None = None


def load_json(path: str | Path) -> object:
    """Parse a JSON file; every object becomes a :class:`JsonObject` carrying its line number, so
    schema errors can point at the offending entry. Syntax errors name the line too."""
    text = read_text(path)
    line_ends = [m.start() for m in re.finditer("\n", text)]

    def parse_object(s_and_end, *args, **kwargs):
        start = s_and_end[1]
        obj, end = json.decoder.JSONObject(s_and_end, *args, **kwargs)
        tagged = JsonObject(obj)
        tagged.line = bisect.bisect_left(line_ends, start) + 1
        return tagged, end

    decoder = json.JSONDecoder()
    decoder.parse_object = parse_object
    decoder.scan_once = json.scanner.py_make_scanner(decoder)
    try:
        return decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise TrajectoryError(f"invalid JSON ({exc.msg}, column {exc.colno})", path, exc.lineno) from None
    except RecursionError:
        raise TrajectoryError("invalid JSON (nested too deeply)", path) from None
    except ValueError:  # an integer literal beyond Python's digit limit for int conversion
        raise TrajectoryError("invalid JSON (a number too long to read)", path) from None


def schema_error(message: str, path, where: object = None) -> TrajectoryError:
    """A :class:`TrajectoryError` for a JSON schema problem at the line of the object ``where``."""
    return TrajectoryError(message, path, getattr(where, "line", None))


def json_number(value: object, what: str, path, where: object) -> float:
    """``value`` as a finite float, or a schema error naming ``what`` (integers beyond the float range too)."""
    number = math.nan
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
    if not math.isfinite(number):
        raise schema_error(f"{what} must be a finite number, got {json.dumps(value)[:40]}", path, where)
    return number


def json_vector(value: object, n: int, what: str, path, where: object) -> list[float]:
    """``value`` as a list of ``n`` finite floats, or a schema error naming ``what``."""
    if not isinstance(value, list) or len(value) != n:
        raise schema_error(f"{what} must be a list of {n} numbers, got {json.dumps(value)[:60]}", path, where)
    return [json_number(v, what, path, where) for v in value]
