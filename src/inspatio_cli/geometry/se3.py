"""Rigid transforms (SE(3)) and camera-axis conventions, in float64 NumPy.

A pose is a ``(..., 4, 4)`` homogeneous matrix ``[[R, t], [0, 0, 0, 1]]``. A camera-to-world pose
(``c2w``) maps camera coordinates to world coordinates; its inverse is the world-to-camera (``w2c``).
The tool's own convention is OpenCV's: camera x right, y down, z forward (the optical axis).

Other conventions, named by :data:`CONVENTIONS`:

* ``opencv``: x right, y down, z forward (COLMAP, RealEstate10K, DA3, the official InSpatio code);
* ``opengl``: x right, y up, z backward (OpenGL, Blender, NeRF ``transforms.json``, nerfstudio);
  ``blender`` is an alias;
* ``unreal``: x forward, y right, z up (Unreal Engine; left-handed, usually in centimetres).

A pose written in another convention is expressed in that convention's axes for *both* the camera and
the world frame, so converting is a change of basis on both sides: ``c2w_cv = B @ c2w_x @ B^-1`` with
``B`` the 3x3 matrix mapping the convention's axes to OpenCV's. An identity pose therefore means
"at the first camera, looking where it looks" in every convention.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.spatial.transform import Rotation, RotationSpline, Slerp

from ..choices import CONVENTIONS

_BASIS = {
    "opencv": np.eye(3),
    "opengl": np.diag([1.0, -1.0, -1.0]),
    "unreal": np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]),
}
_ALIASES = {"blender": "opengl", "cv": "opencv", "colmap": "opencv", "gl": "opengl", "ue": "unreal"}


def canonical_convention(name: str) -> str:
    """The canonical name (``opencv``, ``opengl`` or ``unreal``) of a convention or alias; ValueError
    for an unknown one."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in _BASIS:
        raise ValueError(f"unknown camera convention {name!r}; expected one of {', '.join(CONVENTIONS)}")
    return key


def make_pose(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``(..., 4, 4)`` poses from rotations ``R (..., 3, 3)`` and translations ``t (..., 3)``."""
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    out = np.zeros(R.shape[:-2] + (4, 4))
    out[..., :3, :3] = R
    out[..., :3, 3] = t
    out[..., 3, 3] = 1.0
    return out


def invert(T: np.ndarray) -> np.ndarray:
    """Inverse of rigid poses ``(..., 4, 4)`` using ``R^T`` (exact for rigid transforms, cheaper and
    better conditioned than a general matrix inverse)."""
    T = np.asarray(T, dtype=np.float64)
    Rt = np.swapaxes(T[..., :3, :3], -1, -2)
    return make_pose(Rt, -np.einsum("...ij,...j->...i", Rt, T[..., :3, 3]))


def compose(*poses: np.ndarray) -> np.ndarray:
    """Matrix product ``poses[0] @ poses[1] @ ...`` with broadcasting over leading dimensions."""
    out = np.asarray(poses[0], dtype=np.float64)
    for p in poses[1:]:
        out = out @ np.asarray(p, dtype=np.float64)
    return out


def convert_convention(c2w: np.ndarray, src: str, dst: str = "opencv") -> np.ndarray:
    """Re-express poses ``(..., 4, 4)`` written in convention ``src`` in convention ``dst``.

    The change of basis applies to both the camera and the world axes (see the module docstring), so
    ``convert_convention(I, x, y) == I`` and the camera keeps looking at the same physical point.
    The same formula serves c2w and w2c matrices.
    """
    src_b = _BASIS[canonical_convention(src)]
    dst_b = _BASIS[canonical_convention(dst)]
    B = make_pose(np.linalg.inv(dst_b) @ src_b, np.zeros(3))
    return B @ np.asarray(c2w, dtype=np.float64) @ np.linalg.inv(B)


def is_rigid(T: np.ndarray, atol: float = 1e-4) -> np.ndarray:
    """Per-pose check ``(...,)`` bool: last row ``[0,0,0,1]``, orthonormal rotation with determinant +1."""
    T = np.asarray(T, dtype=np.float64)
    R = T[..., :3, :3]
    eye = np.eye(3)
    with np.errstate(all="ignore"):  # huge or non-finite entries simply fail the test, silently
        ortho = np.abs(np.swapaxes(R, -1, -2) @ R - eye).max(axis=(-1, -2)) <= atol
        det = np.abs(np.linalg.det(R) - 1.0) <= atol
    last = np.abs(T[..., 3, :] - np.array([0.0, 0.0, 0.0, 1.0])).max(axis=-1) <= atol
    return ortho & det & last


def orthonormalize(R: np.ndarray) -> np.ndarray:
    """The nearest rotation (SVD projection) of each ``(..., 3, 3)`` matrix; removes the rounding of
    matrices read from text files before they go into quaternion maths."""
    u, _, vt = np.linalg.svd(np.asarray(R, dtype=np.float64))
    d = np.sign(np.linalg.det(u @ vt))
    u = u.copy()
    u[..., :, 2] *= d[..., None]
    return u @ vt


def rotation_angle_deg(R_a: np.ndarray, R_b: np.ndarray) -> np.ndarray:
    """Geodesic angle in degrees between rotations ``R_a`` and ``R_b`` (``(..., 3, 3)`` each)."""
    rel = np.swapaxes(np.asarray(R_a, dtype=np.float64), -1, -2) @ np.asarray(R_b, dtype=np.float64)
    cos = (np.trace(rel, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def quaternion_to_matrix(q_wxyz: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` from Hamilton quaternions ``(..., 4)`` in ``w, x, y, z`` order
    (normalised first)."""
    q = np.asarray(q_wxyz, dtype=np.float64)
    flat = q.reshape(-1, 4)
    return Rotation.from_quat(flat[:, [1, 2, 3, 0]]).as_matrix().reshape(q.shape[:-1] + (3, 3))


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """Hamilton quaternions ``(..., 4)`` in ``w, x, y, z`` order with ``w >= 0`` from rotations."""
    R = np.asarray(R, dtype=np.float64)
    xyzw = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_quat()
    xyzw[xyzw[:, 3] < 0] *= -1.0
    return xyzw[:, [3, 0, 1, 2]].reshape(R.shape[:-2] + (4,))


def euler_to_matrix(angles_deg: np.ndarray, order: str = "YXZ") -> np.ndarray:
    """Rotation matrices from Euler angles in degrees, right-handed, in SciPy's notation: ``order``
    names the axes in the order the rotations apply, upper case = intrinsic (about the rotating
    camera axes), lower case = extrinsic (about the fixed axes). ``angles_deg`` follows ``order``."""
    return Rotation.from_euler(order, np.asarray(angles_deg, dtype=np.float64), degrees=True).as_matrix()


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = (0.0, -1.0, 0.0)) -> np.ndarray:
    """OpenCV c2w ``(4, 4)`` of a camera at ``eye`` looking at ``target``; ``up`` is the world
    direction that should appear up in the image (default ``-y``, the first camera's up). Raises
    ValueError when the viewing direction is parallel to ``up`` or ``eye == target``."""
    eye = np.asarray(eye, dtype=np.float64)
    with np.errstate(over="ignore"):
        forward = np.asarray(target, dtype=np.float64) - eye
    largest = np.abs(forward).max()  # scale by it first: the norm of a vector beyond ~1e154 overflows
    if not np.isfinite(largest):
        raise ValueError("look_at: the target is too far from the camera position")
    if largest < 1e-12:
        raise ValueError("look_at: the camera position equals the target")
    z = forward / largest
    z /= np.linalg.norm(z)
    x = np.cross(-np.asarray(up, dtype=np.float64), z)
    if np.linalg.norm(x) < 1e-9:
        raise ValueError("look_at: the viewing direction is parallel to the up vector")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return make_pose(np.stack([x, y, z], axis=1), eye)


def interpolate_poses(times: np.ndarray, poses: np.ndarray, query: np.ndarray, cubic: bool = False) -> np.ndarray:
    """Interpolate poses ``(K, 4, 4)`` given at increasing ``times (K,)`` to ``query (N,)``.

    Rotations use SLERP (``cubic=False``) or SciPy's C2-continuous rotation spline (``cubic=True``);
    positions (camera centres) use linear or not-a-knot cubic splines. Queries outside
    ``[times[0], times[-1]]`` hold the end poses. With one pose every query returns it.
    """
    times = np.asarray(times, dtype=np.float64)
    poses = np.asarray(poses, dtype=np.float64)
    q = np.clip(np.asarray(query, dtype=np.float64), times[0], times[-1])
    if len(times) == 1:
        return np.repeat(poses[:1], len(q), axis=0)
    rots = Rotation.from_matrix(orthonormalize(poses[:, :3, :3]))
    centres = poses[:, :3, 3]
    if cubic and len(times) >= 3:
        R = RotationSpline(times, rots)(q).as_matrix()
        t = CubicSpline(times, centres, axis=0)(q)
    else:
        R = Slerp(times, rots)(q).as_matrix()
        t = np.stack([np.interp(q, times, centres[:, i]) for i in range(3)], axis=1)
    return make_pose(R, t)
