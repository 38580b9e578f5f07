"""Packages whose public names are imported on first use (PEP 562 module ``__getattr__``).

``from inspatio_cli.cameras import load_trajectory`` works as usual, but importing a package no longer
imports every module in it (and PyTorch with them), so the command line starts quickly and fails fast on
bad input.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Mapping


def lazy_exports(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: public name -> the submodule (relative, e.g.
    ``"loader"``) that defines it. A name is imported once, then kept on the package."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{names[name]}", package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__
