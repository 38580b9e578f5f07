"""``load_trajectory``: a file path or a preset name -> a parsed :class:`TrajectorySource`, and
``write_trajectory``: a resolved :class:`Trajectory` -> a file in one of the export formats.

Formats (``fmt``), detected from the file when not given:

=============  ===========================================================  ======================
name           what                                                         default axes/direction
=============  ===========================================================  ======================
``orbit``      the official 3-line pitch/yaw/displacement keyframes          (relative by design)
``matrices``   text, one row-major 3x4 or 4x4 pose per line                  opencv, c2w
``tcw``        InSpatio v1.5 ``target_tcw.txt`` (16 numbers per line)        opencv, w2c
``npy``        NumPy ``.npy``/``.npz`` ``(T, 4, 4)`` poses                    opencv, c2w
``keyframes``  inspatio keyframe JSON (see :mod:`.formats.keyframes`)        opencv, c2w
``re10k``      RealEstate10K camera file                                     opencv, w2c
``nerfstudio`` nerfstudio ``camera_path.json``                               opengl, c2w
``colmap``     a COLMAP model folder (see :mod:`.formats.colmap`)            opencv, w2c
``moves``      camera moves, ``moves:forward:24,...`` or a ``.moves`` file   (relative by design)
=============  ===========================================================  ======================

Detection: a source that starts with ``moves:`` is an inline moves path (:mod:`.formats.moves`); a folder ->
colmap; ``.moves`` -> moves; ``.npy``/``.npz`` -> npy; ``.json`` -> nerfstudio (has ``camera_path``) or keyframes (has
``keyframes``); text -> re10k (19 numbers per line after an optional URL line), tcw (12/16 numbers on
the first line and ``tcw`` or ``w2c`` in the file name), matrices (12/16 numbers on the first line, unless
the file has exactly 3 lines that are not all rigid poses), else orbit. Per-frame
poses are taken in the coordinate frame of the source's first camera (``anchor="world"``, as v1.5's
``target_tcw.txt``); ``anchor="first"`` re-expresses them relative to the file's own first pose.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import numpy as np

from ..choices import EXPORTS, FORMATS
from ..errors import TrajectoryError, UsageError
from ..files import atomic_output
from ..geometry import se3
from .formats import comment_lines, data_lines, load_json, read_text
from .formats.colmap import read_colmap_trajectory
from .formats.keyframes import keyframes_json, parse_keyframes
from .formats.moves import SUFFIX as MOVES_SUFFIX
from .formats.moves import PREFIX as MOVES_PREFIX
from .formats.moves import is_inline, parse_moves
from .formats.matrices import format_matrix_lines, parse_matrix_text, read_numpy, rows_to_poses
from .formats.nerfstudio import nerfstudio_json, parse_nerfstudio
from .formats.orbit import parse_orbit
from .formats.re10k import looks_like_re10k, parse_re10k
from .source import ANCHORS, TrajectorySource
from .trajectory import Trajectory

_DEFAULTS = {"matrices": ("opencv", "c2w"), "tcw": ("opencv", "w2c"), "npy": ("opencv", None),
             "keyframes": ("opencv", "c2w"), "re10k": ("opencv", "w2c"), "nerfstudio": ("opengl", "c2w"),
             "colmap": ("opencv", "w2c")}
PRESET_SUFFIXES = (".txt", ".json")


def preset_dir() -> Path:
    """The folder of bundled presets (``inspatio_cli/presets``, the repository's ``trajectories/``)."""
    return Path(str(resources.files("inspatio_cli") / "presets"))


def list_presets() -> dict[str, Path]:
    """Preset name -> file, sorted by name."""
    folder = preset_dir()
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix in PRESET_SUFFIXES and p.is_file()}


def preset_description(path: Path) -> str:
    """The first line of a preset's header comment (``#`` lines, or a JSON ``description``)."""
    if path.suffix == ".json":
        data = load_json(path)
        return str(data.get("description", "")).split("\n")[0] if isinstance(data, dict) else ""
    lines = comment_lines(read_text(path))
    return lines[0] if lines else ""


def find_source(source: str | Path) -> tuple[Path, str | None]:
    """The file for ``source`` (an existing path, or a preset name) and the preset name if it is one."""
    path = Path(source)
    if path.exists():
        return path, None
    name = str(source)
    presets = list_presets()
    stem = name[: -len(path.suffix)] if path.suffix in PRESET_SUFFIXES else name
    if "/" not in name and stem in presets:
        return presets[stem], stem
    known = ", ".join(presets) or "none installed"
    raise TrajectoryError(f"no such file or preset (presets: {known})", source)


def detect_format(path: Path, text: str | None) -> str:
    """The format name of ``path`` (see the module docstring); ``text`` is the file's text, or None
    for ``.npy``/``.npz``."""
    suffix = path.suffix.lower()
    if suffix == MOVES_SUFFIX:
        return "moves"
    if suffix in (".npy", ".npz"):
        return "npy"
    if suffix == ".json":
        return "json"
    lines = data_lines(text or "")
    if looks_like_re10k(lines):
        return "re10k"
    if lines and len(lines[0][1]) in (12, 16):
        if len(lines) != 3 or _all_rigid(lines):
            name = path.name.lower()
            return "tcw" if "tcw" in name or "w2c" in name else "matrices"
    return "orbit"


def _all_rigid(lines: list[tuple[int, list[str]]]) -> bool:
    """Whether lines of 12/16 numbers all read as rigid poses (else 3 of them are orbit keyframes)."""
    try:
        rows = np.array([[float(t) for t in tokens] for _, tokens in lines])
    except ValueError:
        return False
    if rows.ndim != 2 or rows.shape[1] not in (12, 16):
        return False
    mats = rows_to_poses(rows)
    return bool(np.isfinite(mats).all() and se3.is_rigid(mats, atol=1e-3).all())


def load_trajectory(source: str | Path, *, fmt: str | None = None, convention: str | None = None,
                    direction: str | None = None, scale: float = 1.0, anchor: str | None = None,
                    rotation_only: bool = False, resample: bool = False) -> TrajectorySource:
    """Parse a trajectory file or preset into a not-yet-resolved :class:`TrajectorySource`.

    ``fmt``: one of :data:`FORMATS` (default: detected). ``convention`` (``opencv``/``opengl``/
    ``blender``/``unreal``) and ``direction`` (``c2w``/``w2c``) override the format's defaults for
    pose files; ``anchor`` is ``world`` (default) or ``first``; ``scale`` multiplies translations (the
    orbit radius for 3-line files); ``rotation_only`` keeps the camera centre at the source's;
    ``resample`` lets per-frame files stretch to any frame count. Every problem is a
    :class:`TrajectoryError` naming the file and line, or a :class:`UsageError` for bad options.
    """
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if not (math.isfinite(scale) and scale > 0):
        raise UsageError(f"--scale must be a positive number, got {scale}")
    if convention is not None and convention not in se3.CONVENTIONS:
        raise UsageError(f"--convention {convention!r}: expected one of {', '.join(se3.CONVENTIONS)}")
    if anchor is not None and anchor not in ANCHORS:
        raise UsageError(f"--anchor {anchor!r}: expected one of {', '.join(ANCHORS)}")
    if is_inline(source):
        _relative_by_design("moves", convention, direction, anchor)
        return parse_moves(str(source)[len(MOVES_PREFIX):], str(source), inline=True, scale=scale,
                           rotation_only=rotation_only, resample=resample, meta={"source": str(source), "preset": None})
    path, preset = find_source(source)
    meta = {"source": str(source), "preset": preset}
    colmap = fmt == "colmap" or (fmt is None and path.is_dir())
    binary = (fmt == "npy") or (fmt is None and path.suffix.lower() in (".npy", ".npz"))
    text = None if binary or colmap else read_text(path)
    kind = "colmap" if colmap else fmt or detect_format(path, text)
    data = None
    if kind == "json":
        data = load_json(path)
        if not isinstance(data, dict):
            raise TrajectoryError("a JSON trajectory must be an object", path, 1)
        if "camera_path" in data:
            kind = "nerfstudio"
        elif "keyframes" in data:
            kind = "keyframes"
        else:
            raise TrajectoryError("unknown JSON trajectory: expected an inspatio keyframe file (with "
                                  "\"keyframes\") or a nerfstudio camera path (with \"camera_path\")", path, data.line)
    elif kind in ("keyframes", "nerfstudio"):
        data = load_json(path)
        if not isinstance(data, dict):
            raise TrajectoryError("a JSON trajectory must be an object", path, 1)
    meta["format"] = kind
    if kind == "moves":
        _relative_by_design("moves", convention, direction, anchor)
        return parse_moves(text, path, inline=False, scale=scale, rotation_only=rotation_only, resample=resample,
                           meta=meta)
    if kind == "orbit":
        _relative_by_design("3-line orbit", convention, direction, anchor)
        if resample:
            raise UsageError("--resample applies to per-frame pose files; orbit keyframes always fit the video")
        return parse_orbit(text, path, scale=scale, rotation_only=rotation_only, meta=meta)
    conv, direc = _DEFAULTS[kind]
    conv, direc, anchor = convention or conv, direction or direc, anchor or "world"
    meta.update(convention=conv, direction=direc or "c2w", anchor=anchor, scale=scale)
    common = dict(convention=conv, anchor=anchor, scale=scale, rotation_only=rotation_only)
    if kind == "colmap":
        return read_colmap_trajectory(path, direction=direc, resample=resample, meta=meta, **common)
    if kind == "npy":
        return read_numpy(path, direction=direc, resample=resample, meta=meta, **common)
    if kind == "keyframes":
        if resample:
            raise UsageError("--resample applies to per-frame pose files; keyframes always fit the video")
        return parse_keyframes(data, path, direction=direc, meta=meta, **common)
    if kind == "nerfstudio":
        return parse_nerfstudio(data, path, direction=direc, resample=resample, meta=meta, **common)
    if kind == "re10k":
        return parse_re10k(text, path, direction=direc, resample=resample, meta=meta, **common)
    return parse_matrix_text(text, path, direction=direc, resample=resample, meta=meta, **common)


def _relative_by_design(kind: str, convention: str | None, direction: str | None, anchor: str | None) -> None:
    """Refuse the pose-file options for formats that are relative to the first camera by definition."""
    for flag, value in (("--convention", convention), ("--direction", direction), ("--anchor", anchor)):
        if value is not None:
            raise UsageError(f"{flag} does not apply to {kind} trajectories (they are relative to the first "
                             "camera by definition)")


def write_trajectory(trajectory: Trajectory, path: str | Path, to: str, *, fallback_K: np.ndarray | None = None,
                     fps: float = 24.0) -> Path:
    """Write the resolved per-frame cameras of ``trajectory`` to ``path`` (atomically) as ``to``:

    ``tcw`` (v1.5 ``target_tcw.txt``: row-major 4x4 world-to-camera per line), ``c2w`` (the same with
    camera-to-world), ``npy`` (``(N, 4, 4)`` c2w; a ``.npz`` name also stores ``K``/``size`` when the
    trajectory has intrinsics), ``json`` (inspatio keyframes, one per frame) or ``nerfstudio``
    (``camera_path.json``; ``fallback_K`` / 60 degrees give the fov when the trajectory has no K).
    All in OpenCV axes relative to the first source camera (nerfstudio in its OpenGL axes).
    """
    if to not in EXPORTS:
        raise UsageError(f"--to {to!r}: expected one of {', '.join(EXPORTS)}")
    path = Path(path)
    with atomic_output(path) as tmp:
        if to != "npy":
            tmp.write_text(export_text(trajectory, to, fallback_K=fallback_K, fps=fps), encoding="utf-8")
        elif path.suffix.lower() == ".npz":
            arrays = {"c2w": trajectory.rel_c2w.numpy()}
            if trajectory.K is not None:
                arrays.update(K=trajectory.K.numpy(), size=np.array(trajectory.size))
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        else:
            with open(tmp, "wb") as fh:
                np.save(fh, trajectory.rel_c2w.numpy())
    return path


def export_losses(trajectory: Trajectory, to: str, path: str | Path) -> str | None:
    """What an export to ``to`` (at ``path``) cannot keep of ``trajectory``'s intrinsics, or None: ``tcw``,
    ``c2w`` and ``.npy`` hold poses only; ``nerfstudio`` holds one vertical field of view per frame, so
    a principal point off the centre or ``fx != fy`` is lost."""
    K = trajectory.K
    if K is None:
        return None
    if to in ("tcw", "c2w") or (to == "npy" and Path(path).suffix.lower() != ".npz"):
        return f"{to} files hold poses only: the per-frame intrinsics (K) are not written (use json or .npz)"
    if to == "nerfstudio":
        h, w = trajectory.size
        off = (K[:, 0, 2] - w / 2).abs().max().item(), (K[:, 1, 2] - h / 2).abs().max().item()
        skew = ((K[:, 0, 0] - K[:, 1, 1]).abs() / K[:, 1, 1]).max().item()
        if max(off) > 0.5 or skew > 1e-6:
            return ("nerfstudio keeps a vertical field of view per frame: the principal point (up to "
                    f"{max(off):.1f} px off centre) and fx != fy (up to {skew:.1%}) are not written "
                    "(use json or .npz to keep K)")
    return None


def export_text(trajectory: Trajectory, to: str, *, fallback_K: np.ndarray | None = None, fps: float = 24.0) -> str:
    """The text of a ``tcw``, ``c2w``, ``json`` or ``nerfstudio`` export (see :func:`write_trajectory`)."""
    c2w = trajectory.rel_c2w.numpy()
    if to == "tcw":
        return format_matrix_lines(se3.invert(c2w))
    if to == "c2w":
        return format_matrix_lines(c2w)
    if to == "json":
        return keyframes_json(trajectory)
    if to == "nerfstudio":
        return nerfstudio_json(trajectory, fallback_K=fallback_K, fps=fps)
    raise UsageError(f"--to {to!r}: expected one of {', '.join(e for e in EXPORTS if e != 'npy')} for text")
