"""COLMAP sparse models (cameras, images, points), text and binary, both directions.

A model is a folder holding ``cameras.txt``, ``images.txt`` and ``points3D.txt`` (or the ``.bin`` forms;
a folder ``sparse/0`` below the given one is looked into too). What is read:

* cameras: ``CAMERA_ID MODEL WIDTH HEIGHT PARAMS...``; pinhole models only (``SIMPLE_PINHOLE``,
  ``PINHOLE``, and ``SIMPLE_RADIAL``/``RADIAL``/``OPENCV``/``FULL_OPENCV`` whose distortion is all zero):
  the rerender warps a pinhole camera, so distorted frames must be undistorted first;
* images: ``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`` then a line of ``X Y POINT3D_ID`` triples:
  the world-to-camera rotation (a unit Hamilton quaternion) and translation, OpenCV axes; images are
  taken in natural name order (``frame_2`` before ``frame_10``) as the frames of the video;
* points: ``POINT3D_ID X Y Z R G B ERROR TRACK...``; only the positions are kept.

COLMAP's principal point is in pixels with the image corner at (0, 0), as the tool's ``K`` (which scales
about the corner, :meth:`inspatio_cli.video.Fit.pixel_transform`), so intrinsics are taken unchanged.
Every problem is a one-line :class:`~inspatio_cli.errors.TrajectoryError` naming the file (and the line
of a text file).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import TrajectoryError
from ...files import atomic_output
from ...geometry import se3
from ..source import PoseSequence, normalize_poses
from . import MAX_POSES, data_lines, read_bytes, read_text, to_floats

FILES = ("cameras", "images", "points3D")
MODELS = {0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5),
          4: ("OPENCV", 8), 5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5),
          8: ("SIMPLE_RADIAL_FISHEYE", 4), 9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12)}
"""COLMAP's camera model ids -> (name, number of parameters)."""
_PARAMS = {name: count for name, count in MODELS.values()}
_PINHOLE = {"SIMPLE_PINHOLE": 3, "PINHOLE": 4, "SIMPLE_RADIAL": 3, "RADIAL": 3, "OPENCV": 4, "FULL_OPENCV": 4}
"""Pinhole-compatible models -> how many leading parameters are the focal lengths and principal point."""
QUATERNION_TOLERANCE = 1e-3
"""How far from 1 a stored quaternion's norm may be: beyond it the rotation is damage, not rounding."""


@dataclass(frozen=True)
class ColmapModel:
    """A COLMAP model's cameras in frame order.

    ``names`` the image names; ``K (N, 3, 3)`` float64 pixels of ``sizes (N, 2)`` (H, W) of each image's
    camera; ``w2c (N, 4, 4)`` float64 world-to-camera (OpenCV axes); ``observations``: per image, the
    ``(M, 2)`` pixel positions and ``(M,)`` ids of the points it sees (id -1: none); ``points``: point id
    -> ``(3,)`` position, empty unless read; ``folder`` the model folder.
    """

    names: list[str]
    K: np.ndarray
    sizes: np.ndarray
    w2c: np.ndarray
    observations: list[tuple[np.ndarray, np.ndarray]]
    points: dict[int, np.ndarray]
    folder: Path


def model_folder(path: str | Path) -> Path | None:
    """The folder holding a COLMAP model at ``path`` (itself or ``path/sparse/0``), or None."""
    path = Path(path)
    for folder in (path, path / "sparse" / "0"):
        for ext in (".txt", ".bin"):
            if (folder / f"cameras{ext}").is_file() and (folder / f"images{ext}").is_file():
                return folder
    return None


def read_model(path: str | Path, *, points: bool = False) -> ColmapModel:
    """Read the model at ``path`` (see :func:`model_folder`); text files win over binary ones when both
    are present. ``points``: also read ``points3D`` (needed to scale depth, not for a trajectory)."""
    folder = model_folder(path)
    if folder is None:
        raise TrajectoryError("not a COLMAP model: expected cameras.txt and images.txt (or .bin) in the folder "
                              "or in sparse/0", path)
    ext = ".txt" if (folder / "cameras.txt").is_file() and (folder / "images.txt").is_file() else ".bin"
    read = (_cameras_text, _images_text, _points_text) if ext == ".txt" else (_cameras_bin, _images_bin, _points_bin)
    cameras = read[0](folder / f"cameras{ext}")
    images = read[1](folder / f"images{ext}")
    found: dict[int, np.ndarray] = {}
    if points:
        found = read[2](folder / f"points3D{ext}") if (folder / f"points3D{ext}").is_file() else {}
    images.sort(key=lambda image: _natural(image[4]))
    K, sizes, w2c = [], [], []
    for image_id, q, t, camera_id, name, _, _ in images:
        if camera_id not in cameras:
            raise TrajectoryError(f"image {image_id} ({name}) uses camera {camera_id}, which cameras{ext} "
                                  "does not define", folder / f"images{ext}")
        norm = float(np.linalg.norm(q))
        if not abs(norm - 1.0) <= QUATERNION_TOLERANCE:
            raise TrajectoryError(f"image {image_id} ({name}): quaternion of norm {norm:.6g} is not a rotation",
                                  folder / f"images{ext}")
        K.append(cameras[camera_id][0])
        sizes.append(cameras[camera_id][1])
        w2c.append(se3.make_pose(se3.quaternion_to_matrix(q), t))
    return ColmapModel(names=[image[4] for image in images], K=np.array(K), sizes=np.array(sizes),
                       w2c=np.array(w2c), observations=[(image[5], image[6]) for image in images],
                       points=found, folder=folder)


def read_colmap_trajectory(path: str | Path, *, convention: str, direction: str, anchor: str, scale: float,
                           rotation_only: bool, resample: bool, meta: dict) -> PoseSequence:
    """A COLMAP model's cameras as a per-frame trajectory with their intrinsics (``load_trajectory``)."""
    model = read_model(path)
    sizes = {tuple(size) for size in model.sizes.tolist()}
    if len(sizes) != 1:
        raise TrajectoryError(f"the images have cameras of {len(sizes)} different sizes; a trajectory needs one",
                              model.folder)
    c2w = normalize_poses(model.w2c, convention=convention, direction=direction, anchor=anchor, scale=scale,
                          rotation_only=rotation_only, path=model.folder)
    K = model.K
    intrinsics = np.stack([K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]], axis=1)
    return PoseSequence(c2w, {**meta, "path": str(model.folder)}, intrinsics=intrinsics,
                        intrinsics_size=tuple(int(v) for v in sizes.pop()), resample=resample)


def write_model_text(folder: str | Path, K: np.ndarray, w2c: np.ndarray, size: tuple[int, int],
                     names: list[str], observations: list[tuple[np.ndarray, np.ndarray]],
                     points: np.ndarray) -> list[Path]:
    """Write a text model into ``folder`` (created if needed), each file atomically: one ``PINHOLE``
    camera per image (``K (N, 3, 3)`` pixels of ``size`` (H, W)), ``w2c (N, 4, 4)``, the images'
    ``names``, their ``observations`` (pixel positions ``(M, 2)`` and point indices ``(M,)`` into
    ``points (P, 3)``; ids are written 1-based). Numbers use 17 significant digits (float64 exact)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    h, w = size
    cameras = ["# CAMERA_ID MODEL WIDTH HEIGHT fx fy cx cy\n"]
    cameras += [f"{i} PINHOLE {w} {h} {_g(k[0, 0])} {_g(k[1, 1])} {_g(k[0, 2])} {_g(k[1, 2])}\n"
                for i, k in enumerate(np.asarray(K, dtype=np.float64), 1)]
    images = ["# IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME, then X Y POINT3D_ID per observation\n"]
    tracks: dict[int, list[str]] = {}
    quaternions = se3.matrix_to_quaternion(np.asarray(w2c, dtype=np.float64)[:, :3, :3])
    for i, (pose, q, name, (xy, ids)) in enumerate(zip(w2c, quaternions, names, observations), 1):
        numbers = " ".join(_g(v) for v in (*q, *np.asarray(pose, dtype=np.float64)[:3, 3]))
        images.append(f"{i} {numbers} {i} {name}\n")
        images.append(" ".join(f"{_g(x)} {_g(y)} {int(p) + 1}" for x, y, p in zip(xy[:, 0], xy[:, 1], ids)) + "\n")
        for index, point in enumerate(ids):
            tracks.setdefault(int(point), []).append(f"{i} {index}")
    lines = ["# POINT3D_ID X Y Z R G B ERROR TRACK[] as (IMAGE_ID, POINT2D_IDX)\n"]
    lines += [f"{p + 1} {' '.join(_g(v) for v in xyz)} 128 128 128 0 {' '.join(tracks.get(p, []))}\n"
              for p, xyz in enumerate(np.asarray(points, dtype=np.float64))]
    written = []
    for name, text in zip(FILES, ("".join(cameras), "".join(images), "".join(lines))):
        with atomic_output(folder / f"{name}.txt") as tmp:
            tmp.write_text(text, encoding="utf-8")
        written.append(folder / f"{name}.txt")
    return written


def _g(value: float) -> str:
    return f"{float(value):.17g}"


def _natural(name: str) -> list:
    """Sort key: digit runs compare as numbers (``frame_2`` < ``frame_10``)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


def _intrinsics(model: str, width: int, height: int, params: list[float], path, line: int | None) -> tuple:
    """(K (3, 3), (H, W)) of a pinhole-compatible camera; anything else is an error naming the fix."""
    if model not in _PARAMS:
        raise TrajectoryError(f"unknown camera model {model!r}", path, line)
    if len(params) != _PARAMS[model]:
        raise TrajectoryError(f"{model} has {_PARAMS[model]} parameters, got {len(params)}", path, line)
    if model not in _PINHOLE or any(params[_PINHOLE[model]:]):
        raise TrajectoryError(f"camera model {model} with distortion: the warp needs pinhole cameras (undistort "
                              "the frames and the model first, e.g. colmap image_undistorter)", path, line)
    if _PINHOLE[model] == 3:
        f, cx, cy = params[:3]
        fx = fy = f
    else:
        fx, fy, cx, cy = params[:4]
    if not (fx > 0 and fy > 0 and width > 0 and height > 0):
        raise TrajectoryError("a camera needs positive focal lengths and image size", path, line)
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]), (height, width)


def _cameras_text(path: Path) -> dict[int, tuple]:
    cameras = {}
    for line, tokens in data_lines(read_text(path)):
        if len(tokens) < 4 or not all(t.isdigit() for t in (tokens[0], tokens[2], tokens[3])):
            raise TrajectoryError("expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS...", path, line)
        params = to_floats(tokens[4:], path, line)
        cameras[int(tokens[0])] = _intrinsics(tokens[1], int(tokens[2]), int(tokens[3]), params, path, line)
    return cameras


def _images_text(path: Path) -> list[tuple]:
    lines = [(n, line) for n, line in enumerate(read_text(path).splitlines(), 1) if not line.lstrip().startswith("#")]
    while lines and not lines[0][1].strip():
        lines.pop(0)
    images = []
    for (line, head), (_, body) in zip(lines[0::2], lines[1::2] + [(0, "")]):
        tokens = head.split()
        if not tokens:
            continue
        if len(tokens) < 10:
            raise TrajectoryError("expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME", path, line)
        values = to_floats(tokens[1:8], path, line)
        observed = to_floats(body.split(), path, line + 1)
        if len(observed) % 3:
            raise TrajectoryError("expected X Y POINT3D_ID triples", path, line + 1)
        triples = np.array(observed, dtype=np.float64).reshape(-1, 3)
        images.append((_int(tokens[0], path, line), np.array(values[:4]), np.array(values[4:]), _int(tokens[8], path, line),
                       " ".join(tokens[9:]), triples[:, :2], triples[:, 2].astype(np.int64)))
        _check_count(len(images), path)
    if not images:
        raise TrajectoryError("no images", path)
    return images


def _points_text(path: Path) -> dict[int, np.ndarray]:
    points = {}
    for line, tokens in data_lines(read_text(path)):
        if len(tokens) < 8:
            raise TrajectoryError("expected POINT3D_ID X Y Z R G B ERROR TRACK...", path, line)
        points[_int(tokens[0], path, line)] = np.array(to_floats(tokens[1:4], path, line))
    return points


def _int(token: str, path, line: int | None) -> int:
    try:
        return int(token)
    except ValueError:
        raise TrajectoryError(f"{token[:20]!r} is not an integer id", path, line) from None


def _check_count(count: int, path) -> None:
    if count > MAX_POSES:
        raise TrajectoryError(f"more than {MAX_POSES} images", path)


class _Reader:
    """Little-endian fields from a COLMAP ``.bin`` file; running short is a one-line error."""

    def __init__(self, path: Path):
        self.path, self.data, self.at = path, read_bytes(path), 0

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        if self.at + size > len(self.data):
            raise TrajectoryError(f"truncated binary model (at byte {self.at} of {len(self.data)})", self.path)
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += size
        return values

    def count(self, what: str, item_bytes: int) -> int:
        (n,) = self.take("Q")
        if n * item_bytes > len(self.data) - self.at:
            raise TrajectoryError(f"claims {n} {what}, more than the file holds", self.path)
        return n

    def name(self) -> str:
        end = self.data.find(b"\0", self.at)
        if end < 0:
            raise TrajectoryError("truncated binary model (an image name has no end)", self.path)
        text, self.at = self.data[self.at:end].decode("utf-8", "replace"), end + 1
        return text


def _cameras_bin(path: Path) -> dict[int, tuple]:
    read, cameras = _Reader(path), {}
    for _ in range(read.count("cameras", 24)):
        camera_id, model_id, width, height = read.take("iiQQ")
        name, count = MODELS.get(model_id, (f"id {model_id}", 0))
        params = list(read.take("d" * count))
        if not np.isfinite(params).all():
            raise TrajectoryError(f"camera {camera_id} has a non-finite parameter", path)
        cameras[camera_id] = _intrinsics(name, width, height, params, path, None)
    return cameras


def _images_bin(path: Path) -> list[tuple]:
    read, images = _Reader(path), []
    for _ in range(read.count("images", 64)):
        image_id, *values, camera_id = read.take("idddddddi")
        name = read.name()
        count = read.count("observations", 24)
        triples = np.frombuffer(read.data, dtype=np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")]),
                                count=count, offset=read.at)
        read.at += 24 * count
        if not (np.isfinite(values).all() and np.isfinite(triples["x"]).all() and np.isfinite(triples["y"]).all()):
            raise TrajectoryError(f"image {image_id} ({name}) has a non-finite pose or observation", path)
        images.append((image_id, np.array(values[:4]), np.array(values[4:]), camera_id, name,
                       np.stack([triples["x"], triples["y"]], axis=1), triples["id"].astype(np.int64)))
        _check_count(len(images), path)
    if not images:
        raise TrajectoryError("no images", path)
    return images


def _points_bin(path: Path) -> dict[int, np.ndarray]:
    read, points = _Reader(path), {}
    for _ in range(read.count("points", 51)):
        point_id, x, y, z, *_ = read.take("QdddBBBd")
        if not np.isfinite([x, y, z]).all():
            raise TrajectoryError(f"point {point_id} has a non-finite position", path)
        track = read.count("track entries", 8)
        read.at += 8 * track
        points[point_id] = np.array([x, y, z])
    return points
