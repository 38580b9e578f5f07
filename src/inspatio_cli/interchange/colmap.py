"""A COLMAP model as a scene's cameras, both directions.

Import: the model's cameras (:mod:`inspatio_cli.cameras.formats.colmap`: pinhole, world-to-camera, OpenCV
axes; images in natural name order are the video's frames) replace the depth stage's, and the depth maps
come from the depth model run on the video, multiplied by one scale that brings them to the model's units:
the median over every observation of a 3D point of ``z_colmap / depth`` (the point's depth in its image's
camera over the depth map at the pixel it was observed at, the nearest canvas pixel). The median ignores
outliers (bad matches, points on moving objects) up to half the observations. The camera images may have
another size than the video if the aspect ratio is the same (``K`` is scaled), and ``K`` follows the
video's fit onto the canvas.

Export: a text model with one ``PINHOLE`` camera per frame at the depth maps' size, and as points a grid of
known depth pixels of every frame (about :data:`POINTS_PER_SIDE` per side) back-projected, each observed by
its frame at its pixel, so that importing the export with the same depth maps finds the scale 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..cameras.formats.colmap import ColmapModel, read_model, write_model_text
from ..depth.result import DepthResult
from ..errors import DepthError
from ..geometry import se3
from ..progress import Reporter
from ..video import Fit, probe
from .checks import scene_result

POINTS_PER_SIDE = 8
"""Grid points along the shorter side of each frame in an export."""
ASPECT_TOLERANCE = 1e-3
"""Largest relative difference between the video's and a camera's aspect ratios."""


def read_colmap(path: Path, video: Path, *, fit: str = "stretch", size: tuple[int, int] | None = None,
                reporter: Reporter | None = None, **depth_options: Any) -> DepthResult:
    """Import a COLMAP model with the depth of ``video`` (module docstring). ``fit``/``size``: the canvas, as
    for ``inspatio depth``; ``depth_options``: the other arguments of
    :func:`inspatio_cli.depth.estimate.get_depth` (model, weights, device, ...)."""
    from ..depth.estimate import get_depth

    model = read_model(path, points=True)
    info = probe(video)
    depth = get_depth(video, fit=fit, reporter=reporter, **({"size": size} if size else {}), **depth_options)
    if depth.num_frames != len(model.names):
        raise DepthError(f"{len(model.names)} images in the model for a video of {depth.num_frames} frames: expected "
                         "one image per frame", model.folder)
    to_canvas = Fit.make((info.height, info.width), depth.size, fit).pixel_transform().numpy()
    to_video = _camera_to_video(model, (info.height, info.width))
    K = to_canvas @ to_video @ model.K
    scale, count, spread = _depth_scale(model, to_canvas @ to_video, depth)
    meta = {**depth.meta, "import_scale": f"{scale:.9g}", "import_scale_points": str(count),
            "import_scale_spread": f"{spread:.3g}", "units": "colmap"}
    return scene_result(depth.depth.float() * scale, K, model.w2c, path=model.folder, direction="w2c",
                        convention="opencv", confidence=depth.confidence, meta=meta)


def write_colmap(result: DepthResult, c2w: np.ndarray, folder: Path) -> list[Path]:
    """Export ``result``'s depth with the cameras ``c2w (T, 4, 4)`` as a COLMAP text model: each frame a
    camera, a grid of its depth as points (module docstring)."""
    h, w = result.size
    step = max(1, min(h, w) // POINTS_PER_SIDE)
    v, u = np.meshgrid(np.arange(step // 2, h, step), np.arange(step // 2, w, step), indexing="ij")
    pixels = np.stack([u.ravel(), v.ravel()], axis=1).astype(np.float64)
    K = result.K.double().numpy()
    observations, points = [], []
    for frame in range(result.num_frames):
        d = result.depth[frame].double().numpy()[pixels[:, 1].astype(int), pixels[:, 0].astype(int)]
        known = np.ones(len(d), bool) if result.confidence is None else (
            result.confidence[frame].numpy()[pixels[:, 1].astype(int), pixels[:, 0].astype(int)] > 0)
        xy = pixels[known]
        rays = np.linalg.solve(K[frame], np.concatenate([xy, np.ones((len(xy), 1))], axis=1).T).T
        camera = rays * d[known][:, None]
        world = camera @ c2w[frame, :3, :3].T + c2w[frame, :3, 3]
        start = sum(len(p) for p in points)
        observations.append((xy, np.arange(start, start + len(xy))))
        points.append(world)
    names = [f"frame_{frame:05d}.png" for frame in range(result.num_frames)]
    return write_model_text(folder, K, se3.invert(c2w), (h, w), names, observations, np.concatenate(points))


def colmap_outputs(folder: Path) -> list[Path]:
    """The files :func:`write_colmap` writes into ``folder``."""
    return [folder / f"{name}.txt" for name in ("cameras", "images", "points3D")]


def _camera_to_video(model: ColmapModel, video_hw: tuple[int, int]) -> np.ndarray:
    """``(N, 3, 3)`` scaling of each image's camera pixels to the video's; another aspect ratio is an error."""
    h, w = video_hw
    sy, sx = h / model.sizes[:, 0], w / model.sizes[:, 1]
    off = np.flatnonzero(np.abs(sx / sy - 1.0) > ASPECT_TOLERANCE)
    if off.size:
        ch, cw = model.sizes[off[0]]
        raise DepthError(f"image {model.names[off[0]]} has a {cw}x{ch} camera but the video is {w}x{h}: another "
                         "aspect ratio (the cameras must be of the video's frames)", model.folder)
    scale = np.zeros((len(sx), 3, 3))
    scale[:, 0, 0], scale[:, 1, 1], scale[:, 2, 2] = sx, sy, 1.0
    return scale


def _depth_scale(model: ColmapModel, to_canvas: np.ndarray, depth: DepthResult) -> tuple[float, int, float]:
    """(median of ``z_colmap / depth`` over every usable observation, their number, the median absolute
    deviation of the ratios relative to the median); an error when no observation is usable."""
    h, w = depth.size
    ratios = []
    for frame, (xy, ids) in enumerate(model.observations):
        seen = [(p, i) for i, p in enumerate(ids.tolist()) if p in model.points]
        if not seen:
            continue
        world = np.array([model.points[p] for p, _ in seen])
        pixel = np.concatenate([xy[[i for _, i in seen]], np.ones((len(seen), 1))], axis=1) @ to_canvas[frame].T
        u, v = np.rint(pixel[:, 0]).astype(np.int64), np.rint(pixel[:, 1]).astype(np.int64)
        z = world @ model.w2c[frame, :3, :3].T[:, 2] + model.w2c[frame, 2, 3]
        inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
        d = np.zeros(len(z))
        d[inside] = depth.depth[frame].double().numpy()[v[inside], u[inside]]
        if depth.confidence is not None:
            d[inside] *= depth.confidence[frame].numpy()[v[inside], u[inside]] > 0
        usable = inside & (z > 0) & (d > 0)
        ratios.append(z[usable] / d[usable])
    found = np.concatenate(ratios) if ratios else np.zeros(0)
    if not found.size:
        raise DepthError("no 3D point of the model is seen in front of a camera inside its frame: cannot scale "
                         "the depth to the model (is points3D missing or empty?)", model.folder)
    scale = float(np.median(found))
    return scale, int(found.size), float(np.median(np.abs(found / scale - 1.0)))
