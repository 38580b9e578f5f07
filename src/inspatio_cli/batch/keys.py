"""The keys of a batch job (JSONL keys, CSV columns) and the parsers that turn a manifest cell (CSV text or
a JSON value) into the value :func:`plan_jobs` uses; an invalid cell raises ``ValueError`` with the reason,
which the planner reports with its line number."""

from __future__ import annotations

import json
import math
from typing import Any, Callable

from ..choices import FIT_MODES, check_size
from ..errors import PromptError, UsageError
from ..render.needs import MODELS
from ..text import check_prompt_text

MAX_CRF = 51


def _text(value: Any, from_text: bool) -> str:
    """A non-empty string (paths, names); CSV and list text is stripped."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty string")
    if "\0" in value:
        raise ValueError("contains a NUL character")
    return value.strip() if from_text else value


def _int(value: Any, from_text: bool) -> int:
    if from_text:
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError(f"expected an integer, got {value.strip()!r}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {json.dumps(value)[:40]}")
    return value


def _float(value: Any, from_text: bool) -> float:
    if from_text:
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError(f"expected a number, got {value.strip()!r}") from None
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {json.dumps(value)[:40]}")
    else:
        try:
            number = float(value)
        except OverflowError:
            raise ValueError("the number is too large") from None
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    return number


def _prompt(value: Any, from_text: bool) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    try:
        return check_prompt_text(value)
    except PromptError as exc:
        raise ValueError(exc.message) from None


def _bool(value: Any, from_text: bool) -> bool:
    if from_text:
        word = value.strip().lower()
        if word in ("true", "yes", "1"):
            return True
        if word in ("false", "no", "0"):
            return False
        raise ValueError(f"expected true or false, got {value.strip()!r}")
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {json.dumps(value)[:40]}")
    return value


def _size(value: Any, from_text: bool) -> tuple[int, int]:
    """``"HxW"`` or ``[H, W]``, both sides positive multiples of 16 (:func:`choices.check_size`)."""
    hw = None
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                            for v in value):
        hw = value[0], value[1]
    elif isinstance(value, str):
        parts = value.strip().lower().split("x")
        if len(parts) == 2 and all(p.strip().isdigit() and p.strip().isascii() for p in parts):
            hw = int(parts[0]), int(parts[1])
    if hw is None:
        raise ValueError("expected HxW (e.g. 480x832)")
    try:
        return check_size(hw)
    except UsageError as exc:
        raise ValueError(exc.message) from None


def _crf(value: Any, from_text: bool) -> int:
    crf = _int(value, from_text)
    if not 0 <= crf <= MAX_CRF:
        raise ValueError(f"expected 0 (lossless) to {MAX_CRF}, got {crf}")
    return crf


def _strings(value: Any, from_text: bool) -> list[str]:
    """Repeatable options (``freeze``, ``slow``, ``reverse``): a JSON string or list of strings; in CSV,
    several values separated by spaces or ``;``."""
    if from_text:
        return value.replace(";", " ").split()
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError("expected a string or a list of strings")


def _model(value: Any, from_text: bool) -> str:
    text = _text(value, from_text)
    if text not in MODELS:
        raise ValueError(f"expected one of {', '.join(MODELS)}, got {text!r}")
    return text


def _fit(value: Any, from_text: bool) -> str:
    text = _text(value, from_text)
    if text not in FIT_MODES:
        raise ValueError(f"expected one of {', '.join(FIT_MODES)}, got {text!r}")
    return text


JOB_KEYS: dict[str, Callable[[Any, bool], Any]] = {
    "video": _text, "views": _strings, "trajectory": _text, "output": _text, "prompt": _prompt,
    "prompt_file": _text, "seed": _int,
}
"""What a job is: its inputs (a ``video`` or image, or the ``views`` of one scene: a list of photos or a
folder; in CSV separated by ``;``), output, prompt and seed."""
RENDER_KEYS: dict[str, Callable[[Any, bool], Any]] = {
    "depth": _text, "fit": _fit, "size": _size, "crf": _crf, "audio": _bool, "skip_bad_frames": _bool,
    "save_condition": _text, "frames": _int, "fps": _float, "model": _model,
}
CAMERA_KEYS: dict[str, Callable[[Any, bool], Any]] = {
    "format": _text, "convention": _text, "direction": _text, "scale": _float, "anchor": _text,
    "rotation_only": _bool, "resample": _bool, "relative_to_source": _bool, "align_to": _text,
}
TIME_KEYS: dict[str, Callable[[Any, bool], Any]] = {
    "freeze": _strings, "slow": _strings, "reverse": _strings, "extend": _text, "min_frames": _int,
}
OPTION_KEYS = {**RENDER_KEYS, **CAMERA_KEYS, **TIME_KEYS}
"""Per-job overrides of the rerender options (the same names as the command-line flags, ``-`` or ``_``):
``depth fit size crf audio skip_bad_frames save_condition frames fps model`` (``frames`` and ``fps`` for image
sources; ``model``: ``world`` or ``world-1.5``, the generator is swapped between jobs of different models) and
the trajectory/time options ``format convention direction scale anchor rotation_only resample
relative_to_source align_to freeze slow reverse extend min_frames`` (``align_to``, like ``depth``, relative
to the manifest's folder)."""
ALL_KEYS = {**JOB_KEYS, **OPTION_KEYS}
BATCH_WIDE_KEYS = ("decoder", "device", "dtype", "text_device", "compile", "weights_dir")
"""Options that choose the models, so they apply to the whole batch (command line only)."""


def key_name(name: str) -> str:
    """A key or column name as the tables spell it: ``Skip-Bad-Frames `` -> ``skip_bad_frames``."""
    return name.strip().lower().replace("-", "_")


def unknown_key(name: str, word: str = "key") -> str:
    """The problem with the key (``word``: or column) ``name`` that is not in :data:`ALL_KEYS`: a batch-wide
    option given per job, or an unknown name."""
    if key_name(name) in BATCH_WIDE_KEYS:
        return (f"{word} {name!r}: this option applies to the whole batch (the models are loaded once); give it "
                "on the command line")
    return f"unknown {word} {name!r} (allowed: {', '.join(ALL_KEYS)})"
