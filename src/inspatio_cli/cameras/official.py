"""The official InSpatio-World orbit trajectory, exactly as the official code turns it into poses.

Three keyframe lists (REFERENCE.md section 4, trajectory.md sections 1-6): ``x_up`` pitch in degrees
(positive orbits up), ``y_left`` yaw in degrees (positive orbits left) and ``r``, the orbit radius (a
forward dolly when both angle lines are zero). For ``n`` output frames each list is resampled on its own:

* ``m >= 4`` keys: SciPy's cubic *smoothing* spline ``UnivariateSpline(k=3)`` with the default
  smoothing ``s = m`` (it does not pass through the keys and attenuates peaks);
* ``m = 2, 3``: linear interpolation;
* only the ``r`` list with ``m >= 4`` then has its first and last samples pinned to the end keys.

Each sample becomes a camera on a sphere of radius ``r`` centred ``r`` in front of the first camera,
looking at the centre (:func:`orbit_poses`), with the zoom and rotation-only special cases.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import UnivariateSpline

from ..choices import MODEL_SIZE
from ..geometry import se3
from .source import TrajectorySource


def interpolate_keys(keys: np.ndarray, n: int, pin_ends: bool = False) -> np.ndarray:
    """Resample keyframes ``keys (m,)`` (``m >= 2``) at ``n`` evenly spaced positions, float64.

    Keys sit at ``linspace(0, 1, m)``, samples at ``linspace(0, 1, n)``; smoothing spline for ``m >= 4``,
    linear otherwise; ``pin_ends`` (the official rule for ``r``) overwrites the end samples with the end
    keys when ``m >= 4``.
    """
    keys = np.asarray(keys, dtype=np.float64)
    m = len(keys)
    x = np.linspace(0.0, 1.0, m)
    q = np.linspace(0.0, 1.0, n)
    if m > 3:
        with warnings.catch_warnings():  # FITPACK warns (many lines) when extreme keys stop its iteration early;
            warnings.simplefilter("ignore")  # its approximation is what the official code gets as well
            out = UnivariateSpline(x, keys, k=3)(q)
        if pin_ends:
            out[0], out[-1] = keys[0], keys[-1]
        return out
    return np.interp(q, x, keys)


@dataclass(frozen=True)
class OrbitSamples:
    """The per-frame values fed to the pose formula (float32, as the official code casts them) and the
    branch flags evaluated on them."""

    x_up: np.ndarray
    y_left: np.ndarray
    r: np.ndarray
    is_zoom: bool
    rotation_only: bool

    def poses(self) -> np.ndarray:
        """``(n, 4, 4)`` float64 c2w relative to the first camera (see :func:`orbit_poses`)."""
        return orbit_poses(self.x_up, self.y_left, self.r, is_zoom=self.is_zoom, rotation_only=self.rotation_only)


def sample_orbit(x_keys: np.ndarray, y_keys: np.ndarray, r_keys: np.ndarray, n: int, *,
                 rotation_only: bool = False, r_zoom_keys: np.ndarray | None = None) -> OrbitSamples:
    """Resample the three keyframe lists to ``n`` frames and evaluate the official branch flags.

    ``r_zoom_keys`` (default ``r_keys``) replaces ``r`` when every sampled yaw is exactly zero (the
    official "only y is zero" rule; the two lists differ only in the reference-extrinsics path).
    """
    x = interpolate_keys(x_keys, n).astype(np.float32)
    y = interpolate_keys(y_keys, n).astype(np.float32)
    zoom_keys = r_keys if r_zoom_keys is None else r_zoom_keys
    r_list = zoom_keys if not y.any() else r_keys
    r = interpolate_keys(r_list, n, pin_ends=True).astype(np.float32)
    return OrbitSamples(x, y, r, is_zoom=not x.any() and not y.any(), rotation_only=rotation_only)


def orbit_poses(x_up: np.ndarray, y_left: np.ndarray, r: np.ndarray, *, is_zoom: bool = False,
                rotation_only: bool = False) -> np.ndarray:
    """Official ``sphere2pose``: ``(n, 4, 4)`` c2w relative to the first camera (OpenCV axes), float64
    holding the official values.

    ``R = Ry(yaw) @ Rx(pitch)`` with ``Ry = [[c,0,s],[0,1,0],[-s,0,c]]``,
    ``Rx = [[1,0,0],[0,c,s],[0,-s,c]]``; ``t = [-r cos(a) sin(b), -r sin(a), r - r cos(a) cos(b)]``
    (a = pitch, b = yaw in radians). ``is_zoom`` (all angles zero): ``R = I``, ``t = [0, 0, r]`` (a dolly,
    positive forward), which overrides ``rotation_only`` (``t = 0``, a tripod rotation).

    Evaluated in float32 as the official code does (trajectory.md section 3): the inputs are float32, the
    radians, sines, cosines and the translation are float32 operations in the official order, and only
    the products of ``Ry @ Rx`` (exact in float64: each entry is one product of two float32 numbers) are
    float64. A float64 evaluation differs in the last bit of about half the entries, which decides
    near-integer splats of the warp.
    """
    a = np.deg2rad(np.asarray(x_up, dtype=np.float32))
    b = np.deg2rad(np.asarray(y_left, dtype=np.float32))
    r = np.asarray(r, dtype=np.float32)
    n = len(r)
    zero32 = np.zeros(n, dtype=np.float32)
    if is_zoom:
        return se3.make_pose(np.broadcast_to(np.eye(3), (n, 3, 3)), np.stack([zero32, zero32, r], axis=1))
    ca, sa, cb, sb = np.cos(a), np.sin(a), np.cos(b), np.sin(b)
    zero, one = np.zeros(n), np.ones(n)
    Ry = np.stack([np.stack([cb, zero, sb], -1), np.stack([zero, one, zero], -1), np.stack([-sb, zero, cb], -1)], 1)
    Rx = np.stack([np.stack([one, zero, zero], -1), np.stack([zero, ca, sa], -1), np.stack([zero, -sa, ca], -1)], 1)
    t = (np.stack([zero32, zero32, zero32], axis=1) if rotation_only
         else np.stack([-r * ca * sb, -r * sa, r - r * ca * cb], axis=1))
    return se3.make_pose(Ry @ Rx, t)


class OrbitKeyframes(TrajectorySource):
    """A parsed 3-line orbit file (or preset): keyframes ``x_up``, ``y_left`` (degrees) and ``r``.

    ``scale`` multiplies the ``r`` keys before resampling (the official renderer uses them raw, in the
    depth model's units); ``rotation_only`` keeps the camera centre fixed (not for pure zoom files).
    ``lines`` holds the 1-based line number of each list in the file, for lint messages.
    """

    def __init__(self, x_up, y_left, r, meta: dict, *, scale: float = 1.0, rotation_only: bool = False,
                 lines: tuple[int, int, int] = (1, 2, 3)):
        super().__init__(meta)
        self.x_up = np.asarray(x_up, dtype=np.float64)
        self.y_left = np.asarray(y_left, dtype=np.float64)
        self.r = np.asarray(r, dtype=np.float64)
        self.scale = float(scale)
        self.rotation_only = rotation_only
        self.lines = lines

    def samples(self, n: int) -> OrbitSamples:
        """The interpolated per-frame values for ``n`` frames."""
        return sample_orbit(self.x_up, self.y_left, self.r * self.scale, n, rotation_only=self.rotation_only)

    def sample(self, n: int, *, fps: float | None = None, size: tuple[int, int] = MODEL_SIZE
               ) -> tuple[np.ndarray, None]:
        return self.samples(n).poses(), None

    def official_total_angle(self) -> float:
        """``max(sum |diff(x_up keys)|, sum |diff(y_left keys)|)`` in degrees (raw keys)."""
        return float(max(np.abs(np.diff(self.x_up)).sum(), np.abs(np.diff(self.y_left)).sum()))


def recenter_K(K: np.ndarray, width: int, height: int) -> np.ndarray:
    """The official render intrinsics: scale ``fx`` by ``W/(2 cx)`` and ``fy`` by ``H/(2 cy)`` and move
    the principal point to the image centre (a no-op for the depth model's own K). ``K (..., 3, 3)`` ->
    float32. In float32 as the official code (a float32 tensor times the scale rounded to float32); a
    float64 product rounds differently in the last bit of ``fx``/``fy`` on about a third of the cases."""
    K = np.array(K, dtype=np.float32)
    K[..., 0, 0] *= (width / (2.0 * K[..., 0, 2].astype(np.float64))).astype(np.float32)
    K[..., 1, 1] *= (height / (2.0 * K[..., 1, 2].astype(np.float64))).astype(np.float32)
    K[..., 0, 2] = width / 2.0
    K[..., 1, 2] = height / 2.0
    return K
