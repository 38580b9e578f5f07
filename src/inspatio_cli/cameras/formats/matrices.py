"""Per-frame pose matrices: text (one pose per line, 12 or 16 row-major numbers), InSpatio v1.5's
``target_tcw.txt`` (the same layout holding world-to-camera matrices) and NumPy ``.npy``/``.npz``.

Text layout: each data line holds a row-major 3x4 (12 numbers) or 4x4 (16 numbers) matrix; ``#``
comments and blank lines are skipped. ``.npy``: an array ``(T, 4, 4)`` or ``(T, 3, 4)``. ``.npz``: the
poses under ``c2w`` (or ``w2c``, which implies world-to-camera, or ``poses``, or the only array), and
optionally ``K (T, 3, 3)`` with ``size = [H, W]`` (the image size K refers to).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ...errors import TrajectoryError
from ..source import PoseSequence, normalize_poses
from . import MAX_POSES, data_lines, read_bytes, to_floats


def rows_to_poses(rows: np.ndarray) -> np.ndarray:
    """``(T, 12)`` or ``(T, 16)`` row-major numbers, or ``(T, 3, 4)``/``(T, 4, 4)`` arrays, as ``(T, 4, 4)``."""
    t = len(rows)
    mats = np.zeros((t, 4, 4))
    mats[:, 3, 3] = 1.0
    flat = rows.reshape(t, -1)
    mats[:, : flat.shape[1] // 4] = flat.reshape(t, -1, 4)
    return mats


def parse_matrix_text(text: str, path, *, direction: str, convention: str, anchor: str, scale: float,
                      rotation_only: bool, resample: bool, meta: dict) -> PoseSequence:
    """Parse per-frame matrix text (see the module docstring) into a :class:`PoseSequence`."""
    lines = data_lines(text)
    if not lines:
        raise TrajectoryError("empty trajectory: expected one pose (12 or 16 numbers) per line", path, 1)
    if len(lines) > MAX_POSES:
        raise TrajectoryError(f"{len(lines)} poses; at most {MAX_POSES} are supported", path, lines[MAX_POSES][0])
    width = len(lines[0][1])
    rows = []
    for number, tokens in lines:
        if len(tokens) not in (12, 16) or len(tokens) != width:
            expected = "12 or 16" if width not in (12, 16) else str(width)
            raise TrajectoryError(f"{len(tokens)} numbers on this line; expected {expected} (a row-major "
                                  f"{'3x4' if expected == '12' else '4x4'} pose per line)", path, number)
        rows.append(to_floats(tokens, path, number))
    numbers = [number for number, _ in lines]
    c2w = normalize_poses(rows_to_poses(np.array(rows)), convention=convention, direction=direction, anchor=anchor,
                          scale=scale, rotation_only=rotation_only, path=path, lines=numbers)
    return PoseSequence(c2w, {**meta, "path": str(path), "lines": numbers}, resample=resample)


def read_numpy(path: Path, *, direction: str | None, convention: str, anchor: str, scale: float,
               rotation_only: bool, resample: bool, meta: dict) -> PoseSequence:
    """Read ``.npy``/``.npz`` poses (see the module docstring); ``direction=None`` means c2w unless the
    ``.npz`` key says ``w2c``."""
    data = read_bytes(path)
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):  # members are read lazily: read them where errors are caught
            loaded = dict(loaded.items())
    except Exception as exc:  # noqa: BLE001 - damaged files fail in numpy's header parser (SyntaxError, TokenError),
        # in allocation (MemoryError for a huge claimed shape) and in zipfile (BadZipFile, NotImplementedError for an
        # unknown version or compression, RuntimeError for an 'encrypted' member, zlib.error...)
        raise TrajectoryError(f"not a readable NumPy file ({' '.join(str(exc).split())[:80]})", path) from None
    K = size = None
    if isinstance(loaded, dict):
        keys = list(loaded.keys())
        pose_keys = [k for k in ("c2w", "w2c", "poses") if k in keys] or (keys if len(keys) == 1 else [])
        if not pose_keys:
            raise TrajectoryError(f"no poses in the archive: expected an array named c2w, w2c or poses "
                                  f"(found {', '.join(keys) or 'nothing'})", path)
        key = pose_keys[0]
        if direction is None and key == "w2c":
            direction = "w2c"
        poses = loaded[key]
        if "K" in keys:
            K, size = loaded["K"], loaded.get("size")
    else:
        poses = loaded
    if poses.dtype.kind not in "fiu" or poses.ndim != 3 or poses.shape[1:] not in ((4, 4), (3, 4)):
        raise TrajectoryError(f"poses must be a numeric array of shape (T, 4, 4) or (T, 3, 4), got "
                              f"{poses.dtype} {tuple(poses.shape)}", path)
    if not 1 <= len(poses) <= MAX_POSES:
        raise TrajectoryError(f"{len(poses)} poses; expected 1 to {MAX_POSES}", path)
    c2w = normalize_poses(rows_to_poses(poses.astype(np.float64)), convention=convention, direction=direction or "c2w",
                          anchor=anchor, scale=scale, rotation_only=rotation_only, path=path)
    intrinsics = None
    if K is not None:
        sized = (size is not None and size.dtype.kind in "fiu" and size.shape == (2,) and bool(np.isfinite(size).all())
                 and bool((size >= 1).all()))
        if K.dtype.kind not in "fiu" or K.shape not in ((3, 3), (len(c2w), 3, 3)) or not sized:
            raise TrajectoryError(f"K must be numeric, (3, 3) or ({len(c2w)}, 3, 3), stored with size = [H, W]", path)
        K = np.broadcast_to(K.astype(np.float64), (len(c2w), 3, 3))
        intrinsics = np.stack([K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]], axis=1)
        size = (int(size[0]), int(size[1]))
    return PoseSequence(c2w, {**meta, "path": str(path), "direction": direction or "c2w"},
                        intrinsics=intrinsics, intrinsics_size=size, resample=resample)


def format_matrix_lines(mats: np.ndarray) -> str:
    """One row-major 4x4 per line, 16 numbers, 12 significant digits (exact to ~1e-12 relative)."""
    return "".join(" ".join(f"{v:.12g}" for v in m.reshape(16)) + "\n" for m in np.asarray(mats, dtype=np.float64))
