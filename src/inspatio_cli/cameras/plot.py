"""``trajectory show``: a picture of a camera path (top view, side view, timing panel).

World axes are the first source camera's (OpenCV: x right, y down, z forward). The top view looks down
on the x-z plane (forward is up the page); the side view looks from the camera's right at the z/up
plane. Frustums are drawn every few frames and coloured by time; the start is a green circle, the end a
red square. With a depth file the source cameras (grey) and the first frame's points are drawn too and
the targets are placed exactly as the renderer places them (:func:`render_cameras`).
Matplotlib is imported lazily and used through its object API (Agg canvas, no pyplot state).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..depth.result import DepthResult
from ..errors import UsageError
from ..files import atomic_output
from ..geometry import se3
from .render import render_cameras
from .source import fov_to_intrinsics
from .trajectory import Trajectory

PICTURE_SUFFIXES = ("png", "jpg", "jpeg", "svg", "pdf")
"""Picture formats of ``trajectory show`` (matplotlib writes each from its suffix)."""

DEFAULT_FOV_DEG = 55.0
FRUSTUMS = 8
POINTS = 4000


def _frustum(c2w: np.ndarray, K: np.ndarray, size: tuple[int, int], depth: float) -> np.ndarray:
    """Pyramid line strip ``(16, 3)`` of a camera: centre to the 4 image corners at ``depth``, and the rim."""
    h, w = size
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
    rays = np.c_[(corners[:, 0] - K[0, 2]) / K[0, 0], (corners[:, 1] - K[1, 2]) / K[1, 1], np.ones(4)] * depth
    pts = rays @ c2w[:3, :3].T + c2w[:3, 3]
    c = c2w[:3, 3]
    return np.array([c, pts[0], pts[1], c, pts[1], pts[2], c, pts[2], pts[3], c, pts[3], pts[0], pts[1], pts[2],
                     pts[3], pts[0]])


def plot_trajectory(traj: Trajectory, out: str | Path, *, depth: DepthResult | None = None,
                    relative_to_source: bool = False, title: str | None = None) -> Path:
    """Draw ``traj`` (and the source cameras of ``depth``) to the picture ``out`` (written atomically), in
    the format its suffix names (:data:`PICTURE_SUFFIXES`; :class:`UsageError` for another)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out)
    kind = out.suffix.lower().lstrip(".")
    if kind not in PICTURE_SUFFIXES:
        raise UsageError(f"cannot tell the picture format from this name; use {', '.join(PICTURE_SUFFIXES)}", out)
    n = len(traj)
    if depth is not None:
        cams = render_cameras(traj, depth.c2w, depth.K[0], relative_to_source=relative_to_source,
                              width=depth.size[1], height=depth.size[0])
        targets = cams.target_c2w.double().numpy()
        Ks, size = cams.target_K.double().numpy(), depth.size
        sources = depth.c2w.double().numpy()
    else:
        targets, size, sources = traj.rel_c2w.numpy(), traj.size, None
        Ks = traj.K.numpy() if traj.K is not None else fov_to_intrinsics(np.full(n, DEFAULT_FOV_DEG), size)
    centres = targets[:, :3, 3]
    extent = float(np.ptp(centres, axis=0).max()) if n > 1 else 0.0
    scale = max(extent, 0.0 if depth is None else 0.3 * float(depth.depth[0].median()), 0.2)
    frustum_depth = 0.1 * scale
    every = max(1, n // FRUSTUMS)
    shown = sorted(set(range(0, n, every)) | {n - 1})

    fig = Figure(figsize=(15, 5.2), dpi=110)
    FigureCanvasAgg(fig)
    top, side, timing = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.0, 1.0, 1.1]})
    colours = _colours(n)
    views = ((top, 0, 2, "x (right)", "z (forward)", "top view"),
             (side, 2, 1, "z (forward)", "up (-y)", "side view (from the right)"))
    for ax, i, j, xlabel, ylabel, name in views:
        if depth is not None:
            pts = _scene_points(depth)
            ax.scatter(pts[:, i], _axis(pts, j), s=1, c="0.8", linewidths=0, zorder=0)
            ax.plot(sources[:, :3, 3][:, i], _axis(sources[:, :3, 3], j), color="0.45", lw=1.2,
                    label="source cameras", zorder=1)
            for k in range(0, len(sources), max(1, len(sources) // FRUSTUMS)):
                f = _frustum(sources[k], depth.K[k].double().numpy(), size, frustum_depth)
                ax.plot(f[:, i], _axis(f, j), color="0.6", lw=0.6, zorder=1)
        else:
            ax.plot([0], [0], marker="^", color="0.3", ms=9, ls="none", label="source camera (frame 0)")
        ax.scatter(centres[:, i], _axis(centres, j), c=colours, s=6, zorder=3, label="target path")
        for k in shown:
            f = _frustum(targets[k], Ks[k], size, frustum_depth)
            ax.plot(f[:, i], _axis(f, j), color=colours[k], lw=0.9, zorder=2)
        ax.plot(centres[0, i], _axis(centres[:1], j)[0], "o", color="tab:green", ms=9, zorder=4, label="start")
        ax.plot(centres[-1, i], _axis(centres[-1:], j)[0], "s", color="tab:red", ms=8, zorder=4, label="end")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(name)
        ax.grid(alpha=0.3)
    top.legend(loc="best", fontsize=8)

    R = traj.rel_c2w.numpy()[:, :3, :3]
    speed = se3.rotation_angle_deg(R[:-1], R[1:]) if n > 1 else np.zeros(0)
    timing.plot(np.arange(n), traj.time_map.numpy(), color="tab:blue", lw=1.5, label="source frame shown")
    timing.set_xlabel("output frame")
    timing.set_ylabel("source frame", color="tab:blue")
    twin = timing.twinx()
    twin.plot(np.arange(1, n), speed, color="tab:orange", lw=1.0, label="turn (deg/frame)")
    twin.axhline(0.8, color="tab:orange", ls="--", lw=0.8)
    twin.set_ylim(0.0, max(1.0, 1.15 * float(speed.max(initial=0.0))))
    twin.set_ylabel("camera turn, deg/frame (dashed: 0.8 bound)", color="tab:orange")
    plan = traj.chunks()
    padding = f" (last chunk padded with {plan.padding} repeats)" if plan.padding else ""
    timing.set_title(f"{n} output frames, {len(plan)} chunks{padding}")
    timing.legend(loc="upper left", fontsize=8)
    fig.suptitle(title or traj.meta.get("source") or "trajectory")
    fig.tight_layout()
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format=kind)
    return out


def _axis(points: np.ndarray, j: int) -> np.ndarray:
    """Coordinate ``j`` of ``points (N, 3)``, negated for the y axis so that up is up on the page."""
    return -points[:, j] if j == 1 else points[:, j]


def _colours(n: int) -> np.ndarray:
    from matplotlib import colormaps

    return colormaps["viridis"](np.linspace(0.0, 1.0, max(n, 1)))[:n]


def _scene_points(depth: DepthResult) -> np.ndarray:
    """Up to :data:`POINTS` world points of frame 0 (unprojected with its K and pose), for context."""
    d = depth.depth[0].double().numpy()
    h, w = d.shape
    stride = max(1, int(np.sqrt(h * w / POINTS)))
    v, u = np.mgrid[0:h:stride, 0:w:stride]
    z = d[v, u]
    K = depth.K[0].double().numpy()
    cam = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], axis=-1).reshape(-1, 3)
    c2w = depth.c2w[0].double().numpy()
    return cam @ c2w[:3, :3].T + c2w[:3, 3]
