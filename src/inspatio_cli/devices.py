"""Device and precision names: the one parser behind every ``--device``, ``--text-device`` and ``--dtype``.

Names are checked in two steps. :func:`check_device` and :func:`check_dtype` look at the string only and
import nothing heavy, so the command line refuses a bad name (exit 2, one line naming the option and the
accepted values) before PyTorch loads; :func:`resolve_device` and :func:`resolve_dtype` run the same check,
then ask PyTorch what the machine has.

Devices: ``auto`` (the current CUDA device when there is one, else the CPU), ``cpu``, ``cuda``, ``cuda:N``.
Precisions: ``auto`` (bf16 on CUDA, as the official pipelines run, fp32 on the CPU), ``bf16``, ``fp16``,
``fp32`` (:data:`inspatio_cli.choices.DTYPE_NAMES`); depth accepts bf16 and fp32 only
(:data:`DEPTH_DTYPE_NAMES`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Sequence

from .choices import DTYPE_NAMES
from .errors import UsageError

if TYPE_CHECKING:
    import torch

DEVICE_NAMES = ("auto", "cpu", "cuda", "cuda:N")
"""The device names every option accepts (``N``: a CUDA device index)."""
DEPTH_DTYPE_NAMES = ("bf16", "fp32")
"""The precisions Depth-Anything-3 runs in: bf16 autocast (as upstream) or fp32."""
_DEVICE = re.compile(r"(auto|cpu|cuda(:[0-9]+)?)\Z")


def check_device(name: str, option: str = "--device") -> str:
    """``name`` when it is one of :data:`DEVICE_NAMES`, else :class:`UsageError` naming ``option`` and the
    accepted names. A string check only: it imports no PyTorch and says nothing about the machine."""
    if not isinstance(name, str) or not _DEVICE.match(name):
        raise UsageError(f"{option} {name!r}: unknown device (use {', '.join(DEVICE_NAMES)})")
    return name


def resolve_device(name: str | torch.device | None = "auto", option: str = "--device") -> torch.device:
    """The torch device for ``name`` (see :func:`check_device`; ``None`` means ``auto``).
    :class:`UsageError` for an unknown name, or a CUDA device this machine does not have."""
    import torch

    text = check_device("auto" if name is None else str(name), option)
    if text == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(text)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"{option} {text}: no CUDA device is available (use {option} cpu)")
        if device.index is not None and device.index >= count:
            raise UsageError(f"{option} {text}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return device


def check_dtype(name: str, option: str = "--dtype", allowed: Sequence[str] = DTYPE_NAMES) -> str:
    """``name`` when it is ``auto`` or one of ``allowed`` (a subset of :data:`~inspatio_cli.choices.DTYPE_NAMES`),
    else :class:`UsageError` naming ``option`` and the accepted names. A string check only, as
    :func:`check_device`."""
    if name != "auto" and name not in allowed:
        raise UsageError(f"{option} {name!r}: unknown precision (use auto, {', '.join(allowed)})")
    return name


def resolve_dtype(name: str, device: torch.device, option: str = "--dtype",
                  allowed: Sequence[str] = DTYPE_NAMES) -> str:
    """The precision name for ``name`` on ``device`` (see :func:`check_dtype`): ``auto`` is ``bf16`` on a
    CUDA device that supports it (the official precision of every model), else ``fp32``."""
    import torch

    if check_dtype(name, option, allowed) != "auto":
        return name
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


__all__ = ["DEPTH_DTYPE_NAMES", "DEVICE_NAMES", "check_device", "check_dtype", "resolve_device", "resolve_dtype"]
