"""``preview``: warp a video along a trajectory with its depth and write what the generator would be
conditioned on, in seconds and without any model weights.

The output video shows, per frame and labelled, the source frame, the warped frame (holes black) and the
validity mask, in one of the layouts:

* ``side`` (default): source | warped | mask;
* ``warped`` or ``mask``: that panel alone;
* ``grid``: source | warped over mask | holes (the warped frame with holes in red).

It keeps the source fps, and the source audio when every source frame is shown once, in order. The
returned :class:`PreviewResult` summarises the per-frame coverage (fraction of known pixels): large holes
are what the generator has to invent, so frames below a threshold are reported as a warning, and a frame
with no known pixel at all (for example a camera behind all geometry) is called out as an empty warp.
``save_condition`` also writes the condition videos themselves, at the same fps: ``warped.mp4`` (H.264,
CRF 18, like the official render) and a lossless ``mask.mp4`` (x264 qp 0, so it decodes back to the exact
binary mask, unlike the official lossy mask video).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..cameras import CameraOptions, TrajectorySource
from ..choices import COVERAGE_THRESHOLD, LAYOUTS, check_video_output
from ..devices import resolve_device
from ..errors import UsageError
from ..scene import open_scene
from ..scene_stream import WarpedChunk, warped_chunks
from ..progress import Reporter
from ..video import VideoInfo, VideoWriter, lost_frames_warning, to_uint8
from ..video.multiview import Views
from ..views import render_rules
from ..warp import coverage, mask_to_video
from .condition_videos import ConditionWriter
from .plan import check_render_outputs, render_inputs

WORST_FRAMES = 5
HOLE_COLOUR = (255, 0, 64)


@dataclass
class PreviewResult:
    """What :func:`preview` wrote and the coverage of every output frame (fraction of known pixels)."""

    output: Path
    frames: int
    fps: float
    size: tuple[int, int]
    layout: str
    coverage: list[float]
    threshold: float
    audio: bool
    condition_dir: Path | None = None
    lost_frames: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def low_frames(self) -> list[int]:
        """Frames whose coverage is below the threshold."""
        return [k for k, c in enumerate(self.coverage) if c < self.threshold]

    @property
    def empty_frames(self) -> list[int]:
        """Frames with no known pixel at all."""
        return [k for k, c in enumerate(self.coverage) if c == 0.0]

    def summary(self) -> dict:
        """JSON-friendly summary (the ``--json`` output)."""
        cov = np.asarray(self.coverage, dtype=np.float64)
        worst = np.argsort(cov, kind="stable")[:WORST_FRAMES]
        return {
            "output": str(self.output), "frames": self.frames, "fps": self.fps, "size": list(self.size),
            "layout": self.layout, "audio": self.audio, "lost_frames": self.lost_frames,
            "condition_dir": None if self.condition_dir is None else str(self.condition_dir),
            "coverage": {"min": float(cov.min()), "mean": float(cov.mean()), "threshold": self.threshold,
                         "worst": [{"frame": int(k), "coverage": round(float(cov[k]), 6)} for k in worst],
                         "below_threshold": self.low_frames, "empty": self.empty_frames,
                         "per_frame": [round(float(c), 6) for c in cov]},
            "warnings": list(self.warnings),
        }


def preview(video: str | Path | Views, trajectory: str | Path | TrajectorySource, output: str | Path, *,
            depth: str | Path | None = None, layout: str = "side", save_condition: str | Path | None = None,
            camera: CameraOptions | None = None, fit: str = "stretch", threshold: float = COVERAGE_THRESHOLD,
            chunk_size: int = 12, device: str = "cpu", crf: int = 18, skip_bad_frames: bool = False,
            frames: int | None = None, fps: float | None = None, model: str = "world", overwrite: bool = False,
            reporter: Reporter | None = None) -> PreviewResult:
    """Warp ``video`` (a still image, or the views of one scene: :func:`~inspatio_cli.video.multiview.open_views`,
    merged) along ``trajectory`` and write the preview video ``output`` (see the
    module doc).

    ``depth``: a depth cache file (default: the video's sidecar depth, else the depth stage's estimate); ``layout``: side|warped|mask|grid;
    ``save_condition``: a folder for ``warped.mp4`` and the lossless ``mask.mp4``; ``camera`` (trajectory
    conventions, relative_to_source, time edits) and ``fit``: as :func:`inspatio_cli.scene.open_scene`;
    ``threshold``: coverage below which frames are reported; ``chunk_size``: frames warped together;
    ``device``: where the warp runs (a name of :mod:`inspatio_cli.devices`); ``crf``: H.264 quality of the
    preview video; ``skip_bad_frames``: source frames that do not decode are replaced by the previous good
    one (counted in ``lost_frames``, warned about); ``frames``/``fps``: for an image, the output length and
    frame rate (:func:`inspatio_cli.scene.source_camera`, :func:`inspatio_cli.video.with_fps`); ``model``:
    whose render rules warp (``world`` or ``world-1.5``, :data:`inspatio_cli.views.RENDER_RULES`; no weights);
    ``overwrite``: replace existing outputs (without it an existing output is refused, as is any output that
    is an input or another output of the run, before any work: :func:`.plan.check_render_outputs`).
    """
    if layout not in LAYOUTS:
        raise UsageError(f"unknown layout {layout!r} (choose {', '.join(LAYOUTS)})")
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"the coverage threshold must be within 0..1, got {threshold}")
    output = check_video_output(output, None if isinstance(video, Views) else video)
    check_render_outputs(output, render_inputs(video, trajectory, depth=depth), sidecar=False,
                         save_condition=save_condition, overwrite=overwrite)
    rules = render_rules(model)
    warp_device = resolve_device(device)
    reporter = reporter or Reporter("silent")
    first_warning = len(reporter.warnings)
    scene = open_scene(video, trajectory, camera=camera, depth=depth, fit=fit, skip_bad_frames=skip_bad_frames,
                       frames=frames, fps=fps, rules=rules, reporter=reporter)
    info = scene.video
    rate = info.rate
    audio = info.has_audio and scene.time_is_identity
    reporter.info(f"{info.path}: {info.frame_count} frames at {info.fps:g} fps -> {scene.num_frames} output frames "
                  f"at {scene.size[0]}x{scene.size[1]}, depth from {scene.depth_origin}")
    painter = _Painter(layout, scene.size, scene.num_frames)
    per_frame: list[float] = []
    condition = Path(save_condition) if save_condition is not None else None
    decoding: dict = {}
    with contextlib.ExitStack() as stack:  # the condition videos are renamed last, once the preview is there
        conditions = stack.enter_context(ConditionWriter(condition, rate)) if condition is not None else None
        writer = stack.enter_context(VideoWriter(output, rate, crf=crf, audio_from=info.path if audio else None,
                                                   warn=reporter.warn))
        for chunk in warped_chunks(scene, chunk_size, device=warp_device, skip_bad_frames=skip_bad_frames, stats=decoding,
                                   reporter=reporter):
            values = coverage(chunk.mask).tolist()
            per_frame += values
            writer.write(painter.paint(chunk, values))
            if conditions is not None:
                conditions.write(chunk.warped, chunk.mask)
        if conditions is not None:
            conditions.finish()
    result = PreviewResult(Path(output), scene.num_frames, float(rate), painter.output_size, layout, per_frame,
                           threshold, audio, condition, decoding["lost_frames"])
    _report(result, reporter, info, first_warning)
    return result


def _report(result: PreviewResult, reporter: Reporter, source: VideoInfo, first_warning: int) -> None:
    """Coverage summary on stderr, warnings for lost source frames, empty warps and low coverage; every
    warning of the run (from ``reporter.warnings[first_warning:]``, e.g. the camera's speed) is kept in
    ``result.warnings``."""
    summary = result.summary()["coverage"]
    worst = ", ".join(f"{w['frame']} ({w['coverage']:.1%})" for w in summary["worst"])
    reporter.info(f"wrote {result.output} ({result.frames} frames, {result.fps:g} fps, layout {result.layout}"
                  f"{', audio kept' if result.audio else ''})")
    reporter.info(f"coverage: min {summary['min']:.1%}, mean {summary['mean']:.1%}; worst frames: {worst}")
    messages = [lost_frames_warning(source.path, result.lost_frames, source.frame_count)] if result.lost_frames else []
    if result.empty_frames:
        messages.append(f"{len(result.empty_frames)} frame(s) have an empty warp (no source pixel lands in view; "
                        f"is the camera behind the scene?): {_frame_list(result.empty_frames)}")
    low = [k for k in result.low_frames if k not in set(result.empty_frames)]
    if low:
        messages.append(f"{len(low)} frame(s) have coverage below {result.threshold:.0%}, so the generator must "
                        f"invent most of the picture: {_frame_list(low)}")
    for message in messages:
        reporter.warn(message)
    result.warnings.extend(reporter.warnings[first_warning:])
    reporter.event("summary", **result.summary())


def _frame_list(frames: list[int], limit: int = 12) -> str:
    shown = ", ".join(str(k) for k in frames[:limit])
    return shown + (f", ... ({len(frames) - limit} more)" if len(frames) > limit else "")


class _Painter:
    """Composes labelled panels into the frames of one layout."""

    def __init__(self, layout: str, size: tuple[int, int], total: int):
        self.layout, self.size, self.total = layout, size, total
        self.font = ImageFont.load_default(size=max(10, size[0] // 24))
        rows, cols = {"side": (1, 3), "warped": (1, 1), "mask": (1, 1), "grid": (2, 2)}[layout]
        self.output_size = (rows * size[0], cols * size[1])

    def paint(self, chunk: WarpedChunk, coverage_values: list[float]) -> np.ndarray:
        """uint8 (n, H', W', 3) frames of this layout for one chunk."""
        source, warped, mask = to_uint8(chunk.source), to_uint8(chunk.warped), mask_to_video(chunk.mask).numpy()
        frames = []
        for i, k in enumerate(chunk.frames):
            panels = {
                "source": (source[i], f"source #{int(chunk.source_index[i])}"),
                "warped": (warped[i], f"warped #{k} of {self.total}"),
                "mask": (mask[i], f"mask {coverage_values[i]:.0%} known"),
            }
            if self.layout == "grid":
                holes = warped[i].copy()
                holes[mask[i, ..., 0] == 0] = HOLE_COLOUR
                panels["holes"] = (holes, "holes")
            frames.append(self._compose([self._label(*panels[name]) for name in self._names()]))
        return np.stack(frames)

    def _names(self) -> tuple[str, ...]:
        return {"side": ("source", "warped", "mask"), "warped": ("warped",), "mask": ("mask",),
                "grid": ("source", "warped", "mask", "holes")}[self.layout]

    def _compose(self, panels: list[np.ndarray]) -> np.ndarray:
        if self.layout == "grid":
            return np.concatenate([np.concatenate(panels[:2], 1), np.concatenate(panels[2:], 1)], 0)
        return np.concatenate(panels, 1)

    def _label(self, image: np.ndarray, text: str) -> np.ndarray:
        """The panel with ``text`` in white on a darkened box at its top-left corner."""
        left, top, right, bottom = self.font.getbbox(text)
        pad = max(2, self.size[0] // 120)
        h, w = min(bottom + 2 * pad, image.shape[0]), min(right + 2 * pad, image.shape[1])
        glyphs = Image.new("L", (w, h))
        ImageDraw.Draw(glyphs).text((pad, pad), text, fill=255, font=self.font)
        alpha = np.asarray(glyphs, dtype=np.float32)[..., None] / 255
        out = image.copy()
        box = out[:h, :w].astype(np.float32) * 0.35
        out[:h, :w] = (box * (1 - alpha) + 255 * alpha).astype(np.uint8)
        return out
