"""A plain NumPy ``.npz`` scene, both directions.

Arrays: ``depth (T, H, W)`` z-depth (<= 0: unknown), ``K (3, 3)`` or ``(T, 3, 3)`` in pixels of the depth
maps, the poses as ``c2w`` or ``w2c (T, 4, 4)`` (or ``(T, 3, 4)``; exactly one of the two), ``convention``
the axes of the poses (``opencv``, ``opengl``, ``blender``, ``unreal``; one string, or one per frame that
must all agree), optionally ``confidence (T, H, W)``. Export writes ``depth``, ``K``, ``c2w``, ``confidence``
and ``convention = "opencv"``: float32, so the round trip is exact.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from ..depth.result import DepthResult
from ..errors import DepthError
from ..files import atomic_output
from ..geometry import se3
from .checks import scene_result


def read_npz(path: Path) -> DepthResult:
    """Import an ``.npz`` scene (module docstring)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DepthError(f"not a readable .npz ({' '.join(str(exc).split())[:80]})", path) from None
    missing = [name for name in ("depth", "K", "convention") if name not in arrays]
    poses = [name for name in ("c2w", "w2c") if name in arrays]
    if missing or len(poses) != 1:
        raise DepthError("expected arrays depth, K, convention and exactly one of c2w or w2c; found "
                         f"{', '.join(sorted(arrays)) or 'none'}", path)
    for name in ("depth", "K", poses[0], *(["confidence"] if "confidence" in arrays else [])):
        if arrays[name].dtype.kind not in "fiu":
            raise DepthError(f"{name} must be numeric, got {arrays[name].dtype}", path)
    confidence = arrays.get("confidence")
    if confidence is not None and confidence.shape != arrays["depth"].shape:
        raise DepthError(f"confidence {confidence.shape} must match depth {arrays['depth'].shape}", path)
    convention = _convention(arrays["convention"], path)
    return scene_result(arrays["depth"], arrays["K"], arrays[poses[0]], path=path, direction=poses[0],
                        convention=convention,
                        confidence=None if confidence is None else torch.from_numpy(confidence.astype(np.float32)),
                        meta={})


def write_npz(result: DepthResult, c2w: np.ndarray, path: Path) -> list[Path]:
    """Export ``result`` with the cameras ``c2w (T, 4, 4)`` to the ``.npz`` ``path`` atomically (module
    docstring)."""
    arrays = {"depth": result.depth.float().numpy(), "K": result.K.numpy(), "c2w": c2w.astype(np.float32),
              "convention": np.array("opencv")}
    if result.confidence is not None:
        arrays["confidence"] = result.confidence.float().numpy()
    with atomic_output(path) as tmp, open(tmp, "wb") as out:
        np.savez(out, **arrays)
    return [path]


def _convention(value: np.ndarray, path: Path) -> str:
    """The one convention named by ``value`` (a string, or an array of equal strings)."""
    if value.dtype.kind not in "US" or not value.size:
        raise DepthError(f"convention must be a string ({', '.join(se3.CONVENTIONS)}), got {value.dtype}", path)
    names = sorted({str(v.decode() if isinstance(v, bytes) else v).lower() for v in value.reshape(-1).tolist()})
    if len(names) > 1:
        raise DepthError(f"mixed conventions ({', '.join(names)}): the poses must all use one", path)
    if names[0] not in se3.CONVENTIONS:
        raise DepthError(f"unknown convention {names[0]!r}: expected one of {', '.join(se3.CONVENTIONS)}", path)
    return names[0]
