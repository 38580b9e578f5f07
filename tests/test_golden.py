"""Golden parity tests: every ``*.safetensors`` in ``tests/golden/`` and, when the environment variable
``INSPATIO_GOLDEN_DIR`` is set, every one in that folder (same file name: the external copy wins).

Each file is one test, ``test_golden[<file stem>]``, dispatched on the file's ``component`` metadata to
``golden_checks/<component>.py``. Components or cases not implemented are skipped with the reason.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest
import torch

from golden_checks.common import GoldenCase, assert_close

HERE = Path(__file__).parent


def _golden_files() -> list[Path]:
    folders = [HERE / "golden"]
    if os.environ.get("INSPATIO_GOLDEN_DIR"):
        folders.append(Path(os.environ["INSPATIO_GOLDEN_DIR"]))
    files: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.safetensors")):
            files[path.stem] = path
    return [files[k] for k in sorted(files)]


@pytest.mark.parametrize("path", _golden_files(), ids=lambda p: p.stem)
def test_golden(path: Path) -> None:
    case = GoldenCase(path)
    try:
        module = importlib.import_module(f"golden_checks.{case.component}")
    except ModuleNotFoundError as exc:
        if exc.name != f"golden_checks.{case.component}":
            raise
        pytest.skip(f"component {case.component!r} is not implemented yet")
    reason = module.skip_reason(case) if hasattr(module, "skip_reason") else None
    if reason:
        pytest.skip(reason)
    module.check(case)


def test_golden_dir_is_readable() -> None:
    """If INSPATIO_GOLDEN_DIR is set it must exist and hold golden files (a typo must not pass silently)."""
    folder = os.environ.get("INSPATIO_GOLDEN_DIR")
    if not folder:
        pytest.skip("INSPATIO_GOLDEN_DIR is not set")
    assert any(Path(folder).glob("*.safetensors")), f"no golden files in {folder}"


def test_comparison_refuses_nan_and_infinity_unless_expected() -> None:
    """A NaN is never 'close' (``NaN > 0`` is False, so a plain excess test would let it through)."""
    nan, inf = float("nan"), float("inf")
    assert_close("same", torch.tensor([1.0, inf, nan]), torch.tensor([1.0, inf, nan]), 1e-5, 0)
    for got, expected in (([nan, 1.0], [0.0, 1.0]), ([inf, 1.0], [0.0, 1.0]), ([1.0, 1.0], [nan, 1.0])):
        with pytest.raises(AssertionError, match="1 of 2 values out of tolerance"):
            assert_close("x", torch.tensor(got), torch.tensor(expected), 1e-5, 0)
