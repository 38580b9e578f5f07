"""What the studio shows of a source before any camera is placed: its frames and depth at the preview size,
its camera path, and the coloured point cloud unprojected from its depth.

The studio warps on the CPU at a reduced size (:data:`PREVIEW_WIDTH` pixels wide, the canvas scaled down with
its aspect ratio kept): the frames are fitted straight onto that size with the render's own :class:`Fit`
and the depth is resampled onto it (:func:`~inspatio_cli.depth.postprocess.resample_depth`), so every pixel of the preview
has its colour and its depth. The frames are held in memory as uint8 (about 75 KB a frame at 120x208).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..choices import DEFAULT_IMAGE_FRAMES, check_size
from ..depth import DepthResult
from ..progress import Reporter
from ..depth.postprocess import resample_depth
from ..scene import DEPTH_RANGE, resolve_depth
from ..video import Fit, VideoInfo, iter_frames, probe, to_uint8

PREVIEW_WIDTH = 208
"""Width of the studio's warp preview (a quarter of the model's 832): the canvas is scaled down to it."""
POINT_BUDGET = 200_000
"""Points of the studio's cloud at most: enough for a readable scene, light for a browser."""
CLOUD_FRAMES = 8
"""Source frames (evenly spaced) whose depth makes the point cloud."""


@dataclass
class StudioSource:
    """A source as the studio uses it.

    ``video``: the probe; ``fit``: the fit mode; ``depth``: depth, intrinsics and poses on the canvas;
    ``depth_origin``: where it came from; ``small``: the same depth resampled to the preview size (H', W');
    ``frames``: uint8 (T, H', W', 3), every source frame fitted to the preview size.
    """

    video: VideoInfo
    fit: str
    depth: DepthResult
    depth_origin: str
    small: DepthResult
    frames: np.ndarray

    @property
    def preview_size(self) -> tuple[int, int]:
        """(H', W') of the warp preview."""
        return self.small.size

    @property
    def output_frames(self) -> int:
        """Frames of a path: the video's, or :data:`~inspatio_cli.choices.DEFAULT_IMAGE_FRAMES` for an image
        (as a render of the image without ``--frames``)."""
        return DEFAULT_IMAGE_FRAMES if self.video.kind == "image" else self.video.frame_count

    @property
    def source_c2w(self) -> np.ndarray:
        """The source cameras, float64 (T, 4, 4) camera-to-world, OpenCV axes, in the depth's world."""
        return self.depth.c2w.double().numpy()

    def image(self, index: int) -> torch.Tensor:
        """Source frame ``index`` at the preview size, float32 (1, 3, H', W') in [-1, 1]."""
        frame = torch.from_numpy(self.frames[index]).permute(2, 0, 1)[None].float()
        return frame / 127.5 - 1.0

    def vertical_fov(self) -> float:
        """The source camera's vertical field of view in radians (frame 0's intrinsics)."""
        return float(2 * np.arctan(self.preview_size[0] / (2 * float(self.small.K[0][1, 1]))))

    def point_cloud(self, budget: int = POINT_BUDGET, frames: int = CLOUD_FRAMES) -> tuple[np.ndarray, np.ndarray]:
        """World points float32 (N, 3) and their colours uint8 (N, 3), N <= ``budget``: the pixels of up to
        ``frames`` evenly spaced source frames, on a regular grid whose stride keeps the total within the
        budget, unprojected with each frame's depth, intrinsics and pose (depth clipped as for the warp)."""
        count = min(frames, self.small.num_frames)
        chosen = np.unique(np.linspace(0, self.small.num_frames - 1, count).round().astype(int))
        h, w = self.preview_size
        stride = max(1, int(np.ceil(np.sqrt(len(chosen) * h * w / budget))))
        v, u = np.mgrid[0:h:stride, 0:w:stride]
        points, colours = [], []
        for t in chosen:
            z = self.small.depth[t].double().clamp(*DEPTH_RANGE).numpy()[v, u]
            K = self.small.K[t].double().numpy()
            c2w = self.small.c2w[t].double().numpy()
            camera = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], -1).reshape(-1, 3)
            points.append(camera @ c2w[:3, :3].T + c2w[:3, 3])
            colours.append(self.frames[t][v, u].reshape(-1, 3))
        return np.concatenate(points)[:budget].astype(np.float32), np.concatenate(colours)[:budget]


def preview_size(canvas: tuple[int, int], width: int = PREVIEW_WIDTH) -> tuple[int, int]:
    """The preview (H', W') for a canvas (H, W): scaled down to ``width`` with the aspect kept, never up."""
    scale = min(1.0, width / canvas[1])
    return max(1, round(canvas[0] * scale)), max(1, round(canvas[1] * scale))


def open_source(video: str | Path, depth: str | Path | None = None, *, fit: str = "stretch",
                size: tuple[int, int] | None = None, width: int = PREVIEW_WIDTH,
                weights_dir: str | Path | None = None, device: str | None = None,
                reporter: Reporter | None = None) -> StudioSource:
    """Probe ``video`` (or a still image), find its depth as every command does (``depth``, the video's
    sidecar, or the depth model's cached estimate for ``fit`` and the canvas ``size``: see
    :func:`~inspatio_cli.scene.resolve_depth`, which raises the one-line missing-weights error) and decode
    every frame at the preview size (``width`` pixels wide). Raises :class:`~inspatio_cli.errors.DepthError`
    when the depth does not match the video."""
    reporter = reporter or Reporter("silent")
    info = probe(video)
    result, origin = resolve_depth(video, depth, fit=fit, size=None if size is None else check_size(size),
                                   weights_dir=weights_dir, device=device, reporter=reporter)
    result.check_matches(info.frame_count, result.size, origin)
    small_hw = preview_size(result.size, width)
    small = resample_depth(result, (info.height, info.width), small_hw, fit)
    fitting = Fit.make((info.height, info.width), small_hw, fit)
    frames = np.zeros((info.frame_count, *small_hw, 3), np.uint8)
    with reporter.stage("decode", total=info.frame_count) as stage:
        for index, (_, image) in enumerate(iter_frames(video, max_frames=info.frame_count)):
            frames[index] = to_uint8(fitting.frames(image[None]))[0]
            stage.advance(1)
    return StudioSource(info, fit, result, origin, small, frames)
