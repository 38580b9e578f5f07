"""What every golden check needs: the case file with lazy tensor access, tolerances, and comparisons."""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

TESTS = Path(__file__).resolve().parent.parent


def golden_path(name: str) -> Path | None:
    """A file of the golden set by name: from ``INSPATIO_GOLDEN_DIR`` when set, else ``tests/golden/``;
    None when neither has it (callers skip)."""
    for folder in (os.environ.get("INSPATIO_GOLDEN_DIR"), TESTS / "golden"):
        if folder and (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def official_key_list(name: str) -> dict:
    """A ``*_keys.json`` description of a real checkpoint (``config``, ``keys`` with shapes,
    ``num_tensors``, ``num_params``); skips the calling test when the file is not available."""
    path = golden_path(name)
    if path is None:
        pytest.skip(f"{name} not available (set INSPATIO_GOLDEN_DIR)")
    return json.loads(path.read_text())


def assert_matches_key_list(model: torch.nn.Module, facts: dict) -> None:
    """``model``'s state-dict keys, their order and shapes, and its tensor and parameter counts equal the
    official list (build the model on the meta device: nothing is allocated)."""
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert ours == [(k["key"], tuple(k["shape"])) for k in facts["keys"]]
    assert len(ours) == facts["num_tensors"]
    assert sum(p.numel() for p in model.parameters()) == facts["num_params"]


@dataclass
class GoldenCase:
    """One golden ``.safetensors`` file: metadata, config and tensors by name."""

    path: Path
    _cache: dict = field(default_factory=dict, repr=False)

    @cached_property
    def meta(self) -> dict[str, str]:
        with safe_open(str(self.path), "pt") as fh:
            return dict(fh.metadata() or {})

    @cached_property
    def keys(self) -> list[str]:
        with safe_open(str(self.path), "pt") as fh:
            return list(fh.keys())

    @property
    def name(self) -> str:
        """The file name without its suffix: for messages only (checks dispatch on :attr:`component` and
        :attr:`case_id`, so a renamed file is checked the same way)."""
        return self.path.stem

    @property
    def component(self) -> str:
        """The ``component`` metadata: which ``golden_checks`` module checks the file."""
        return self.meta.get("component", "unknown")

    @property
    def case_id(self) -> str:
        """The ``case`` metadata (e.g. ``pipeline_orbit_n5_64x112``): what the file holds within its component."""
        return self.meta.get("case", "")

    @cached_property
    def config(self) -> dict:
        return json.loads(self.meta.get("config", "{}"))

    def json_meta(self, key: str):
        """A metadata entry decoded from JSON (e.g. ``cases``, ``call``)."""
        return json.loads(self.meta[key])

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self._cache:
            with safe_open(str(self.path), "pt") as fh:
                self._cache[key] = fh.get_tensor(key)
        return self._cache[key]

    def __contains__(self, key: str) -> bool:
        return key in self.keys

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        """All tensors whose name starts with ``prefix``, keyed by the rest of the name."""
        return {k[len(prefix):]: self[k] for k in self.keys if k.startswith(prefix)}

    def tolerance(self, default_atol: float = 1e-4, default_rtol: float = 1e-4) -> tuple[float, float]:
        """(atol, rtol) parsed from the ``tolerance`` metadata (``atol=...,rtol=...``)."""
        text = self.meta.get("tolerance", "")
        atol = re.search(r"atol=([0-9.eE+-]+)", text)
        rtol = re.search(r"rtol=([0-9.eE+-]+)", text)
        return (float(atol.group(1)) if atol else default_atol, float(rtol.group(1)) if rtol else default_rtol)


def assert_close(name: str, actual: torch.Tensor, expected: torch.Tensor, atol: float, rtol: float) -> None:
    """Elementwise ``|actual - expected| <= atol + rtol*|expected|``; the failure names the worst element.
    A NaN or infinity passes only where the expected value is the same one (a NaN never passes as close)."""
    actual = torch.as_tensor(actual).detach().cpu()
    expected = torch.as_tensor(expected).detach().cpu()
    assert tuple(actual.shape) == tuple(expected.shape), f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    if not expected.is_floating_point():
        mismatch = (actual.to(expected.dtype) != expected).sum().item()
        assert mismatch == 0, f"{name}: {mismatch} of {expected.numel()} integer values differ"
        return
    a, e = actual.double(), expected.double()
    same_special = ~torch.isfinite(e) & ((a == e) | (a.isnan() & e.isnan()))
    excess = ((a - e).abs() - (atol + rtol * e.abs())).nan_to_num(nan=math.inf)
    excess[same_special] = -1.0
    worst = int(excess.argmax()) if excess.numel() else 0
    if excess.numel() and excess.flatten()[worst] > 0:
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), e.shape))
        diff = (a - e).abs()
        raise AssertionError(
            f"{name}: {(excess > 0).sum().item()} of {e.numel()} values out of tolerance (atol={atol}, rtol={rtol}); "
            f"max |diff| {diff.max().item():.3g}; worst at {index}: got {a[index].item():.6g}, "
            f"expected {e[index].item():.6g}")
