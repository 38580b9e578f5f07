"""Property-based fuzzing of input parsers with hypothesis: strategies for malformed inputs and a runner
that counts what happened.

The property every parser of user files must hold: whatever the input, it returns a result or raises an
:class:`~inspatio_cli.errors.InspatioError` subclass (which the CLI prints as one line with an exit code),
never another exception. :func:`fuzz` runs a target over a strategy, lets hypothesis shrink the first
counter-example and prints one summary line (examples run, valid, refused, unexpected exceptions).

Strategies produce ``bytes`` (what a file holds), so a target writes them to a path and parses it:

* :func:`garbage` random bytes, random unicode in odd encodings, empty and whitespace-only files;
* :func:`number_lines` lines of numeric-looking tokens (NaN, inf, 1e309, fullwidth digits, ``1_0``...);
* :func:`mutated` a valid seed text truncated, with bytes flipped, lines dropped, duplicated or swapped,
  tokens replaced by nasty ones and random text inserted;
* :func:`mutated_json` a valid JSON seed with random nodes replaced (NaN, huge integers, deep nesting,
  wrong types), deleted or added, sometimes truncated;
* :func:`text_inputs` / :func:`json_inputs` mixes of the above for a text or JSON parser.

Typical use (the default run does :data:`LIGHT_EXAMPLES`, ``pytest -m fuzz`` does :data:`FULL_EXAMPLES`)::

    @EXAMPLES
    def test_manifest_parser(tmp_path, examples):
        def target(data: bytes):
            path = tmp_path / "jobs.csv"
            path.write_bytes(data)
            return parse_manifest(path)
        stats = fuzz("manifest", target, text_inputs([SEED]), examples)
        assert stats.examples >= examples and not stats.unexpected
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspatio_cli.errors import InspatioError

LIGHT_EXAMPLES = 50
FULL_EXAMPLES = 1000
EXAMPLES = pytest.mark.parametrize(
    "examples", [LIGHT_EXAMPLES, pytest.param(FULL_EXAMPLES, marks=pytest.mark.fuzz, id="full")])
"""Parametrise a test with ``examples``: the light count in the default run, the full one under ``-m fuzz``."""

NASTY_TOKENS = (
    "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "+infinity", "1e308", "1e309", "-1e999", "1e-400",
    "4.9e-324", "-0", "+.5", ".", "-", "+", "e5", "1e", "0x10", "1_000", "0b1", "1,5", "1.2.3", "--1",
    "\uff11\uff12", "\u0663", "\u00bd", "\u2212" "1", "9" * 400, "9" * 5000, "0" * 300 + "1", "1" + "0" * 330,
    "\u200b", "\ufeff1", "#", "#1 2 3", "\\n", "\u202e", "\U0001f600", "null", "true", "[]", "{}", '"',
)
"""Tokens that look numeric, overflow, underflow or confuse tokenisers; ``float()`` accepts several of them."""


@dataclass
class FuzzStats:
    """Outcome counts of one :func:`fuzz` run (shrinking attempts included when a failure was found)."""

    name: str
    examples: int = 0
    valid: int = 0
    refused: int = 0
    unexpected: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"fuzz {self.name}: {self.examples} examples, {self.valid} valid, {self.refused} refused with an "
                f"InspatioError, {len(self.unexpected)} unexpected exceptions")


def fuzz(name: str, target: Callable[[Any], Any], strategy: st.SearchStrategy, examples: int, *,
         check: Callable[[Any], None] | None = None) -> FuzzStats:
    """Run ``target`` on ``examples`` values drawn from ``strategy``.

    A returned value counts as valid (``check(result)`` may assert more about it); an
    :class:`InspatioError` counts as a clean refusal once its one-line message is checked; any other
    exception, and any warning (turned into an exception, since the CLI would print it as extra lines),
    is recorded and re-raised, so hypothesis shrinks it to a minimal failing input. The light
    run is derandomised (the same inputs on every CI run); the full run explores new inputs each time.
    The summary line is printed either way (``pytest -s`` shows it).
    """
    stats = FuzzStats(name)

    @settings(max_examples=examples, deadline=None, database=None, derandomize=examples <= LIGHT_EXAMPLES,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(strategy)
    def run(value: Any) -> None:
        stats.examples += 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a warning would print lines of its own before the error line
                result = target(value)
        except InspatioError as exc:
            stats.refused += 1
            text = exc.one_line()
            assert text and "\n" not in text, f"error message is not one line: {text!r}"
            return
        except Exception as exc:
            stats.unexpected.append(f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
            raise
        if check is not None:
            check(result)
        stats.valid += 1

    try:
        run()
    finally:
        print(stats.line())
    return stats


# --------------------------------------------------------------------------------------------------
# Strategies (all produce bytes)


def garbage() -> st.SearchStrategy[bytes]:
    """Inputs with no structure: random bytes, random text in UTF-8/UTF-16/Latin-1, empty, blank, NULs."""
    text = st.text(max_size=300)
    return st.one_of(
        st.binary(max_size=600),
        text.map(lambda s: s.encode("utf-8")),
        text.map(lambda s: s.encode("utf-16")),
        text.map(lambda s: s.encode("latin-1", "replace")),
        st.sampled_from([b"", b"\n", b" \t\r\n", b"\0", b"\xef\xbb\xbf", b"\xff\xfe", b"#\n#\n"]),
    )


def number_token() -> st.SearchStrategy[str]:
    """One numeric-looking token: a float or integer of any size (NaN and inf included), or a nasty token."""
    return st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda v: f"{v:g}"),
        st.integers(min_value=-(10 ** 400), max_value=10 ** 400).map(str),
        st.sampled_from(NASTY_TOKENS),
        st.text(min_size=1, max_size=6).filter(lambda s: not any(c.isspace() for c in s)),
    )


@st.composite
def number_lines(draw, max_lines: int = 24, max_tokens: int = 24) -> bytes:
    """Lines of numeric tokens (counts vary per line, so some lines are 12/16/19 wide and most are not),
    with random separators, comments, blank lines and line endings."""
    widths = st.one_of(st.sampled_from([1, 2, 3, 12, 16, 19]), st.integers(0, max_tokens))
    sep = draw(st.sampled_from([" ", "\t", "  ", ",", " , ", "\u3000"]))
    end = draw(st.sampled_from(["\n", "\r\n", "\r", "\n\n"]))
    lines = []
    for _ in range(draw(st.integers(0, max_lines))):
        width = draw(widths)
        line = sep.join(draw(st.lists(number_token(), min_size=width, max_size=width)))
        if draw(st.integers(0, 9)) == 0:
            line += " # " + draw(st.text(max_size=12))
        lines.append(line)
    return end.join(lines).encode("utf-8", "surrogatepass")


@st.composite
def mutated(draw, seeds: Sequence[str], max_mutations: int = 4) -> bytes:
    """A seed (a valid file's text) after 1..``max_mutations`` random edits (see the module doc)."""
    text = draw(st.sampled_from(list(seeds)))
    for _ in range(draw(st.integers(1, max_mutations))):
        kind = draw(st.sampled_from(["truncate", "flip", "drop", "duplicate", "swap", "token", "insert",
                                     "repeat"]))
        lines = text.splitlines(keepends=True)
        if kind == "truncate":
            text = text[:draw(st.integers(0, len(text)))]
        elif kind == "flip" and text:
            data = bytearray(text.encode("utf-8"))
            at = draw(st.integers(0, len(data) - 1))
            data[at] ^= draw(st.integers(1, 255))
            return draw(_more_bytes(bytes(data)))
        elif kind in ("drop", "duplicate", "swap") and lines:
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            if kind == "drop":
                del lines[i]
            elif kind == "duplicate":
                lines.insert(j, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "".join(lines)
        elif kind == "token" and text.split():
            tokens = text.split(" ")
            at = draw(st.integers(0, len(tokens) - 1))
            tokens[at] = draw(number_token())
            text = " ".join(tokens)
        elif kind == "insert":
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(st.one_of(st.text(max_size=20), number_token())) + text[at:]
        elif kind == "repeat" and lines:
            i = draw(st.integers(0, len(lines) - 1))
            lines[i:i + 1] = [lines[i]] * draw(st.integers(2, 300))
            text = "".join(lines)
    return text.encode("utf-8", "surrogatepass")


def _more_bytes(data: bytes) -> st.SearchStrategy[bytes]:
    """``data``, sometimes truncated (bytes-level edits end the text-level ones)."""
    return st.one_of(st.just(data), st.integers(0, len(data)).map(lambda n: data[:n]))


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Arbitrary JSON-ish values: NaN/inf floats, integers beyond float range, long and odd strings,
    nested lists and objects."""
    scalars = st.one_of(
        st.none(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(10 ** 400), max_value=10 ** 400), st.text(max_size=20),
        st.sampled_from(["perspective", "fisheye", "frames", "seconds", "normalized", "cubic", "linear",
                         "YXZ", "xyz", ""]),
    )
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=10), inner, max_size=5)),
        max_leaves=max_leaves)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys / indices) into a JSON value, the root included."""
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, prefix + (index,))
    return out


def _get(node: Any, path: tuple) -> Any:
    for key in path:
        node = node[key]
    return node


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _replace(node: Any, path: tuple, value: Any, delete: bool = False) -> Any:
    """A copy of ``node`` with the element at ``path`` replaced by ``value`` (or removed)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(node, dict):
        copy = dict(node)
        if delete and not rest:
            copy.pop(head, None)
        else:
            copy[head] = _replace(node[head], rest, value, delete)
        return copy
    copy = list(node)
    if delete and not rest:
        del copy[head]
    else:
        copy[head] = _replace(node[head], rest, value, delete)
    return copy


@st.composite
def mutated_json(draw, seeds: Sequence[Any], max_mutations: int = 3) -> bytes:
    """A JSON seed (a parsed valid document) with numbers changed (to NaN, inf, huge or small integers),
    random nodes replaced by :func:`json_values`, deleted,
    nested or repeated up to 2000 times, serialised (NaN/Infinity literals allowed, as Python's reader
    accepts them) and sometimes truncated."""
    doc = draw(st.sampled_from(list(seeds)))
    for _ in range(draw(st.integers(1, max_mutations))):
        path = draw(st.sampled_from(_paths(doc)))
        kind = draw(st.sampled_from(["number", "number", "replace", "delete", "nest", "widen"]))
        numbers = [p for p in _paths(doc) if _is_number(_get(doc, p))]
        if kind == "number" and numbers:
            doc = _replace(doc, draw(st.sampled_from(numbers)), draw(st.one_of(
                st.integers(-3, 200), st.floats(allow_nan=True, allow_infinity=True),
                st.integers(min_value=-(10 ** 400), max_value=10 ** 400))))
        elif kind == "delete" and path:
            doc = _replace(doc, path, None, delete=True)
        elif kind == "nest":
            depth = draw(st.integers(2, 60))
            doc = _replace(doc, path, json.loads("[" * depth + "1" + "]" * depth))
        elif kind == "widen":
            doc = _replace(doc, path, [draw(json_values(4))] * draw(st.sampled_from([0, 1, 5, 2000])))
        else:
            doc = _replace(doc, path, draw(json_values()))
    text = json.dumps(doc, allow_nan=True)
    if draw(st.integers(0, 5)) == 0:
        text = text[:draw(st.integers(0, len(text)))]
    return text.encode("utf-8", "surrogatepass")


def text_inputs(seeds: Sequence[str]) -> st.SearchStrategy[bytes]:
    """Everything a text parser should survive: garbage, numeric lines and mutated seeds (the majority)."""
    return st.one_of(garbage(), number_lines(), mutated(seeds), mutated(seeds))


def json_inputs(seeds: Sequence[Any]) -> st.SearchStrategy[bytes]:
    """Everything a JSON parser should survive: garbage, arbitrary JSON, mutated seeds (the majority)."""
    any_json = json_values(20).map(lambda v: json.dumps(v, allow_nan=True).encode("utf-8", "surrogatepass"))
    seed_text = [json.dumps(s) for s in seeds]
    extreme = st.sampled_from([b"[" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000, b"[" * 5000 + b"]" * 5000,
                               b'{"keyframes": ' + b"[" * 3000 + b"]" * 3000 + b"}",
                               b'{"render_height": ' + b"9" * 5000 + b"}"])
    return st.one_of(garbage(), any_json, extreme, mutated(seed_text, 2), mutated_json(seeds), mutated_json(seeds))

