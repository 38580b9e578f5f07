"""Safe reading of checkpoint files and strict loading into our models, with clear errors.

Every model of the tool loads through :func:`read_state_dict` (``.safetensors`` or a ``.pth`` read with
``torch.load(weights_only=True)``, never a full unpickle) and :func:`load_strict` (exact key and shape
match, listing the first missing / unexpected / mis-shaped keys and the file on failure).
:func:`read_header` and :func:`meta_state` give a checkpoint's keys, shapes and dtypes without reading its
tensor data (what ``inspatio models verify`` checks).
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Iterable, Mapping

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from ..errors import WeightsError
from ..files import LOOP, link_loop

_SHOW = 5
_ZIP_MAGIC = b"PK\x03\x04"
"""How a ``torch.save`` archive (the default format since PyTorch 1.6) starts."""
_PICKLE_PROTOCOL = b"\x80"
"""How a pickle of protocol 2 or newer starts (legacy ``torch.save`` files and plain pickles)."""


def read_state_dict(path: str | Path, *, prefix: str = "", device: str = "cpu",
                    mmap: bool = False) -> dict[str, torch.Tensor]:
    """Read all tensors of a checkpoint file into a flat ``{key: tensor}`` dict.

    ``.safetensors`` is read with safetensors; anything else is treated as a PyTorch pickle and read with
    ``torch.load(weights_only=True)`` (a pickle that holds code is refused). A top-level ``state_dict`` or
    ``model`` entry is unwrapped. With ``prefix``, only keys starting with it are kept, prefix removed.
    ``mmap`` maps a zip ``.pth`` instead of reading it (a tensor's data is read only when touched: enough
    to check keys and shapes). Raises :class:`WeightsError` naming the file for a missing, truncated or
    foreign file.
    """
    p = _readable(path)
    if p.stat().st_size == 0:
        raise WeightsError("weights file is empty", p)
    if _is_safetensors(p):
        try:
            state = load_file(str(p), device=device)
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise WeightsError(f"unreadable safetensors file, truncated or corrupt ({_reason(exc)})", p) from None
    else:
        state = _read_pickle(p, device, mmap)
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def _readable(path: str | Path) -> Path:
    """``path`` when it is a file this process may read; :class:`WeightsError` naming the problem (missing,
    a folder, a symbolic link loop, permission denied) otherwise, rather than a parser's complaint."""
    p = Path(path)
    if not p.is_file():
        raise WeightsError(LOOP if link_loop(p) else "weights file not found" if not p.exists() else "not a file", p)
    try:
        with p.open("rb"):
            pass
    except PermissionError:
        raise WeightsError("permission denied: the weights file cannot be read", p) from None
    except OSError as exc:
        raise WeightsError(f"cannot read the weights file ({exc.strerror or exc})", p) from None
    return p


def _is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    with path.open("rb") as fh:
        head = fh.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def _read_pickle(path: Path, device: str, mmap: bool = False) -> dict[str, torch.Tensor]:
    with path.open("rb") as fh:
        head = fh.read(len(_ZIP_MAGIC))
    zipped = head == _ZIP_MAGIC
    if not zipped and not head.startswith(_PICKLE_PROTOCOL):
        raise WeightsError("not a PyTorch checkpoint (neither a torch.save archive nor a pickle)", path)
    try:
        with warnings.catch_warnings():  # a plain (non-torch) pickle draws a protocol warning before the refusal
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = torch.load(str(path), map_location=device, weights_only=True, mmap=mmap and zipped)
    except pickle.UnpicklingError:
        raise WeightsError("refused to load: the pickle holds code or objects other than tensors "
                           "(only plain state dicts are read, with torch.load(weights_only=True))", path) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise WeightsError(f"not a readable PyTorch checkpoint, truncated or corrupt ({_reason(exc)})",
                           path) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, Mapping) and wrapper in obj and isinstance(obj[wrapper], Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping):
        raise WeightsError(f"expected a state dict, found a {type(obj).__name__}", path)
    keys = [k for k in obj if not isinstance(k, str)]
    if keys:
        raise WeightsError(f"keys that are not strings: {', '.join(repr(k) for k in keys[:_SHOW])}", path)
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"entries that are not tensors: {', '.join(map(str, bad[:_SHOW]))}", path)
    odd = [f"{k} ({_storage(v)})" for k, v in obj.items() if _storage(v)]
    if odd:
        raise WeightsError(f"tensors without their data as plain arrays: {', '.join(odd[:_SHOW])}", path)
    return dict(obj)


def _storage(tensor: torch.Tensor) -> str | None:
    """What keeps ``tensor`` from being loaded as a weight: ``"sparse"`` (or another layout), ``"meta"`` (no
    data), ``"quantized"``; None for a plain dense tensor."""
    if tensor.layout != torch.strided:
        return str(tensor.layout).removeprefix("torch.")
    if tensor.is_meta:
        return "meta, no data"
    if tensor.is_quantized:
        return "quantized"
    return None


def _reason(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def read_header(path: str | Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Keys -> (shape, dtype) of a ``.safetensors`` file, read from its header without loading tensors."""
    p = _readable(path)
    try:
        with safe_open(str(p), "pt") as fh:
            out = {}
            for key in fh.keys():
                sl = fh.get_slice(key)
                out[key] = (tuple(sl.get_shape()), str(sl.get_dtype()))
            return out
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"unreadable safetensors header ({_reason(exc)})", p) from None


_SAFETENSORS_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
                       "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8, "BOOL": torch.bool}
"""The dtypes of a safetensors header, by their names there (others are shown as float32)."""


def meta_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The checkpoint's keys as meta tensors of the stored shapes and dtypes, without reading the data:
    the safetensors header, or a ``.pth`` memory-mapped through :func:`read_state_dict`."""
    p = Path(path)
    if p.suffix == ".safetensors":
        return {k: torch.empty(shape, dtype=_SAFETENSORS_DTYPES.get(dtype, torch.float32), device="meta")
                for k, (shape, dtype) in read_header(p).items()}
    return {k: torch.empty(v.shape, dtype=v.dtype, device="meta")
            for k, v in read_state_dict(p, mmap=True).items()}


def key_mismatch(expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]],
                 ignore: Iterable[str] = ()) -> str | None:
    """Describe how ``found`` (key -> shape) differs from ``expected``; None when they match exactly.

    Keys in ``found`` starting with any of the ``ignore`` prefixes are tolerated (e.g. branches that
    inference never uses).
    """
    ignore = tuple(ignore)
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected and not k.startswith(ignore or ("\0",))]
    shapes = [f"{k} {tuple(found[k])} (expected {tuple(expected[k])})" for k in expected
              if k in found and tuple(found[k]) != tuple(expected[k])]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            more = f" and {len(items) - _SHOW} more" if len(items) > _SHOW else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:_SHOW])}{more}")
    return "; ".join(parts) or None


def _kind(tensor: torch.Tensor) -> str:
    """The kind of number a tensor holds; a stored tensor may differ from its parameter in precision only."""
    return "complex" if tensor.is_complex() else "floating point" if tensor.is_floating_point() else "integer"


def load_strict(module: torch.nn.Module, state: Mapping[str, torch.Tensor], path: str | Path | None = None,
                *, ignore: Iterable[str] = (), what: str = "model", assign: bool = False) -> torch.nn.Module:
    """Load ``state`` into ``module`` requiring every parameter/buffer key with its exact shape and kind of
    number (floating point weights stored as integers are refused; precision may differ).

    Keys starting with an ``ignore`` prefix are dropped first. Tensors keep their stored dtype until the
    module casts them (``load_state_dict`` copies into the module's dtype; with ``assign=True`` the tensors
    replace the parameters as they are, which is how a model built on the meta device is filled). Raises :class:`WeightsError`
    with the first few missing, unexpected and mis-shaped keys and the file name.
    """
    ignore = tuple(ignore)
    state = {k: v for k, v in state.items() if not (ignore and k.startswith(ignore))}
    reference = module.state_dict()
    expected = {k: tuple(v.shape) for k, v in reference.items()}
    problem = key_mismatch(expected, {k: tuple(v.shape) for k, v in state.items()})
    if problem:
        raise WeightsError(f"does not match the {what}: {problem}", path)
    kinds = [f"{k} {str(v.dtype).removeprefix('torch.')} (expected {_kind(reference[k])})" for k, v in state.items()
             if _kind(v) != _kind(reference[k])]
    if kinds:
        more = f" and {len(kinds) - _SHOW} more" if len(kinds) > _SHOW else ""
        raise WeightsError(f"does not match the {what}: {len(kinds)} of the wrong type: "
                           f"{', '.join(kinds[:_SHOW])}{more}", path)
    module.load_state_dict(state, strict=True, assign=assign)
    return module
