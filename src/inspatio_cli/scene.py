"""The scene: everything about a render that needs no pixels, shared by ``preview`` and ``rerender``.

:func:`open_scene` probes the video (or takes the caller's probe), plans the fit onto the model canvas, finds
and checks the depth, resolves the trajectory (time edits included, or takes the caller's resolved one) and
computes every output frame's source and target cameras. :mod:`inspatio_cli.scene_stream` then decodes the
source lazily and warps it chunk by chunk.

The soft z-buffer of the warp depends on the whole clip (``Lmax``, :mod:`inspatio_cli.warp`), so
:meth:`Scene.log_depth_max` computes the clip-wide value in a cheap first pass: chunks warped with it equal
the official all-frames-at-once render. The model's :class:`~inspatio_cli.views.RenderRules` (``--model``)
decide the rest: v1.5 warps each frame with its own ``Lmax`` (no first pass), unprojects each source frame
with its stored K and renders every target with frame 0's, keeps depth unclipped and cover-crops.

A still image is a source of one frame (:mod:`inspatio_cli.video.image`): every output frame shows it, and
:func:`source_camera` sets how many there are (the trajectory's pose count, or ``--frames``). The views of
one scene (:mod:`inspatio_cli.video.multiview`) are placed like an image (view 0's camera is the
trajectory's reference), have one depth map per view and are warped all into every target frame by v1.5's
rules (:meth:`Scene.warp_views`); their output fills whole generator chunks.

For the generator, :func:`padded_length` gives the frame count its chunks cover (``1 + 4(L-1)`` frames, ``L``
latent frames a multiple of 3) and :meth:`Scene.padded` repeats the last output frame (source frame, pose
and intrinsics) up to it, so no frame is dropped: the decoded video is trimmed back to the time map's length.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .cameras import (CameraOptions, PoseSequence, RenderCameras, TimeControl, Trajectory, TrajectorySource,
                      chunk_plan, in_scene_units, render_cameras)
from .cameras.align import report_alignment
from .cameras.lint import speed_warning
from .choices import MODEL_SIZE, check_frames
from .depth import DepthResult, find_sidecar
from .depth.catalog import DEFAULT_MODEL, depth_model
from .depth.postprocess import resample_depth
from .errors import DepthError, TrajectoryError, UsageError, WeightsError
from .progress import Reporter
from .video import DEFAULT_IMAGE_FRAMES, Fit, VideoInfo, cut_off_warning
from .video.multiview import Views, source_files, source_fingerprint, source_info
from .views import RENDER_RULES, RenderRules, ViewsRender, stored_intrinsics, warp_views
from .warp import forward_warp, log_depth_max

DEPTH_RANGE = (1e-4, 1e4)
"""Depth is clipped to this range before warping, as the official render stage does (sky, zeros)."""


def resolve_depth(video: str | Path | Views, depth: str | Path | None = None, *, fit: str = "stretch",
                  size: tuple[int, int] | None = None, weights_dir: str | Path | None = None,
                  device: str | None = None, skip_bad_frames: bool = False,
                  reporter: Reporter | None = None) -> tuple[DepthResult, str]:
    """The depth of ``video`` and where it came from, in this order: the file ``depth``; the sidecar
    ``<stem>.depth.safetensors[.gz]`` next to the video; the depth stage's cached estimate for this video,
    ``fit`` and ``size`` (default: the model size), computed now with the depth model (weights from
    ``weights_dir`` or the Hugging Face cache, on ``device``, default the GPU if any, decoding with
    ``skip_bad_frames``) if not cached yet.

    Raises :class:`DepthError` for unreadable or invalid depth files and :class:`WeightsError` (naming
    ``--depth`` as the alternative) when an estimate is needed but the depth weights are missing.
    """
    if depth is not None:
        return DepthResult.load(depth), str(depth)
    sidecar = source_sidecar(video)
    if sidecar is not None:
        return DepthResult.load(sidecar), str(sidecar)
    from .depth.estimate import get_depth  # the depth network is imported only when it has to run

    try:
        result = get_depth(video, fit=fit, size=size or MODEL_SIZE, weights_dir=weights_dir, device=device,
                           skip_bad_frames=skip_bad_frames, reporter=reporter)
    except WeightsError as exc:
        raise WeightsError(f"no depth file for this video and {exc.message}", video,
                           hint=f"pass --depth FILE, put {source_files(video)[0].stem}.depth.safetensors next to the "
                                "source, "
                                f"or {exc.hint}") from None
    return result, f"{result.meta.get('model', 'the depth model')} (estimate, cached)"


def source_sidecar(source: str | Path | Views) -> Path | None:
    """The sidecar depth file of a video or image (:func:`~inspatio_cli.depth.find_sidecar`); views have
    none (their depth is a ``--depth`` file or the joint estimate)."""
    return None if isinstance(source, Views) else find_sidecar(source)


def trajectory_frames(info: VideoInfo) -> int:
    """The source frame count a trajectory is resolved against: the video's frames, or 1 for an image and
    for views (placed like an image, from view 0's camera)."""
    return 1 if info.kind == "views" else info.frame_count


def depth_weights_needed(video: str | Path | Views, depth: str | Path | None = None, *, fit: str = "stretch",
                         size: tuple[int, int] | None = None, info: VideoInfo | None = None) -> list[str]:
    """Registry names of the weight files :func:`resolve_depth` would need with these arguments: none when
    there is a depth file, a sidecar or a cached estimate, else the default depth model's checkpoints.
    ``info``: the video's probe when the caller has it (default: probed here). Reads no weights (lets a
    command check every file it needs before building anything)."""
    if depth is not None or source_sidecar(video) is not None:
        return []
    from .depth.estimate import DepthSettings, cache_path

    info = info or source_info(video)
    canvas = Fit.make((info.height, info.width), size or MODEL_SIZE, fit).dst_hw
    if cache_path(video, DepthSettings(fit=fit, size=canvas)).is_file():
        return []
    return depth_model(DEFAULT_MODEL).weight_names


def source_camera(info: VideoInfo, source: TrajectorySource, camera: CameraOptions,
                  frames: int | None = None) -> CameraOptions:
    """``camera`` for rendering ``source`` from the source ``info``: unchanged for a video; for a still image
    (or views), with the time map that shows its one frame ``N`` times, where ``N`` is the pose count of a
    per-frame trajectory, else ``frames`` (``--frames``), else :data:`~inspatio_cli.video.DEFAULT_IMAGE_FRAMES`
    (45: whole generator chunks). Views fill whole chunks (v1.5 renders and selects references per chunk):
    ``frames`` is rounded up to :func:`padded_length`, and a per-frame trajectory must have such a length.

    Raises :class:`UsageError` for ``frames`` with a video (its length comes from the video and the time
    options), for time options with an image and for ``frames < 1``; :class:`TrajectoryError` when
    ``frames`` disagrees with a per-frame trajectory's pose count.
    """
    check_frames(frames)
    if info.kind == "video":
        if frames is not None:
            raise UsageError("--frames applies to image sources; a video's output length comes from the video "
                             "and the time options (--extend, --min-frames)", info.path)
        return camera
    if camera.time != TimeControl():
        raise UsageError("time options (--freeze, --slow, --reverse, --extend) do not apply to an image; "
                         "set the output length with --frames N", info.path)
    fixed = source.frame_count if isinstance(source, PoseSequence) and not source.resample else None
    if fixed is not None and frames is not None and frames != fixed:
        raise TrajectoryError(f"--frames {frames} but the trajectory has {fixed} poses, one per output frame",
                              source.meta.get("path"), hint="leave --frames out, or pass --resample to stretch "
                                                            f"the path to {frames} frames")
    count = fixed or frames or DEFAULT_IMAGE_FRAMES
    if count < 1:
        raise UsageError(f"--frames must be >= 1, got {count}")
    if info.kind == "views" and padded_length(count) != count:
        if fixed is not None:
            raise TrajectoryError(f"the trajectory has {fixed} poses; views render whole generator chunks of "
                                  f"9, 21, 33, 45, ... frames (next: {padded_length(fixed)})",
                                  source.meta.get("path"), hint="pass --resample with --frames N")
        count = padded_length(count)
    return dataclasses.replace(camera, time=TimeControl(extend="hold", min_frames=count))


def padded_length(num_frames: int) -> int:
    """Frames the generator covers for ``num_frames`` output frames: the smallest ``1 + 4(L-1)`` that is
    at least ``num_frames`` with ``L`` latent frames a multiple of the 3-latent chunk (9, 21, 33, ...);
    see :func:`inspatio_cli.cameras.chunk_plan`."""
    if num_frames < 1:
        raise UsageError("there are no output frames to generate")
    return chunk_plan(num_frames).padded_frames


@dataclass
class Scene:
    """A source (a video, or a still image as one frame), its depth and a resolved trajectory, with every
    output frame's cameras.

    ``video``: the source facts; ``fit``: how source frames map onto the model canvas ``size`` (H, W);
    ``depth``: depth maps (T, H, W) at ``size`` with the source poses and intrinsics; ``depth_origin``: the
    file it came from (or the depth model, for an estimate); ``trajectory``: per output frame the target pose and the source frame shown
    (``time_map``); ``cameras``: per output frame the float32 ``source_w2c``, ``target_w2c``, ``K`` and
    ``target_K`` handed to the warper; ``rules``: the model's render rules; ``views``: the images of a
    views source (``video.kind == "views"``, one depth map each).
    """

    video: VideoInfo
    fit: Fit
    depth: DepthResult
    depth_origin: str
    trajectory: Trajectory
    cameras: RenderCameras
    rules: RenderRules = RENDER_RULES["world"]
    views: Views | None = None
    _lmax: dict = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def make(cls, video: VideoInfo, depth: DepthResult, depth_origin: str, trajectory: TrajectorySource | Trajectory,
             *, camera: CameraOptions | None = None, fit: str = "stretch", size: tuple[int, int] | None = None,
             resample: bool = False, rules: RenderRules | None = None, views: Views | None = None) -> "Scene":
        """Check the depth against the video, resolve the trajectory (unless it is a :class:`Trajectory`
        already resolved for this video and canvas), align it onto the depth's cameras when
        ``camera.align_to`` says so (:meth:`CameraOptions.align`) and compute its cameras (see
        :func:`open_scene`). ``views``: the source images when ``video`` is views (rendered by v1.5's rules,
        :meth:`RenderRules.for_source`)."""
        rules = (rules or RENDER_RULES["world"]).for_source(video.kind)
        hw = depth.size if size is None else (int(size[0]), int(size[1]))
        made_with = depth.meta.get("fit")
        if made_with and made_with != fit:
            raise DepthError(f"the depth was made with fit {made_with!r} but this run uses {fit!r}; pass "
                             f"--fit {made_with} or make the depth again", depth_origin)
        if resample and depth.num_frames == video.frame_count and depth.size != hw:
            depth = resample_depth(depth, (video.height, video.width), hw, fit)
        depth.check_matches(video.frame_count, hw, depth_origin)
        camera = camera or CameraOptions()
        sources = trajectory_frames(video)
        if isinstance(trajectory, Trajectory):
            if trajectory.num_source_frames != sources or tuple(trajectory.size) != hw:
                raise ValueError(f"the trajectory was resolved for {trajectory.num_source_frames} source frames at "
                                 f"{trajectory.size}, not {sources} at {hw}")
            resolved = trajectory
        else:
            resolved = trajectory.resolve(sources, camera.time, fps=video.fps, size=hw)
        resolved = in_scene_units(resolved, depth)  # a path in median depths (moves) gets the scene's scale
        resolved = camera.align(resolved, depth)
        cameras = render_cameras(resolved, depth.c2w[:sources], depth.K[:sources] if depth.K.ndim == 3 else depth.K,
                                 relative_to_source=camera.relative_to_source, width=hw[1], height=hw[0])
        if rules.stored_k:
            cameras = stored_intrinsics(cameras, depth.K, own_target=resolved.K is not None)
        return cls(video, Fit.make((video.height, video.width), hw, fit), depth, depth_origin, resolved, cameras,
                   rules, views)

    @property
    def size(self) -> tuple[int, int]:
        return self.fit.dst_hw

    @property
    def num_frames(self) -> int:
        """Output frames (the trajectory's length, after time edits)."""
        return len(self.trajectory)

    @property
    def time_is_identity(self) -> bool:
        """True when output frame k shows source frame k for every frame of the video (audio can be kept)."""
        time_map = self.trajectory.time_map
        return len(time_map) == self.video.frame_count and bool(
            torch.equal(time_map, torch.arange(len(time_map))))

    def log_depth_max(self, device: torch.device | str = "cpu", chunk: int = 12,
                      reporter: Reporter | None = None) -> torch.Tensor | None:
        """The clip-wide soft z-buffer ``Lmax`` over all output frames: the warp's cheap first pass
        (projection only), computed once per device. Progress: a ``depth range`` stage per frame.
        ``None`` under rules with a per-frame ``Lmax`` (v1.5), which each warp computes itself."""
        device = str(device)
        if self.rules.warp.per_frame_lmax:
            return None
        if device not in self._lmax:
            reporter = reporter or Reporter("silent")
            peaks = []
            with reporter.stage("depth range", total=self.num_frames) as stage:
                for frames in frame_ranges(self.num_frames, chunk):
                    peaks.append(self.chunk_log_depth_max(frames, device))
                    stage.advance(len(frames))
            self._lmax[device] = torch.stack(peaks).max()
        return self._lmax[device]

    def chunk_log_depth_max(self, frames: range, device: torch.device | str = "cpu") -> torch.Tensor:
        """The soft z-buffer ``Lmax`` of the output frames ``frames`` alone (a scalar tensor on ``device``):
        a live render session, whose cameras come chunk by chunk, keeps the running maximum of these."""
        depth, cams = self._inputs(frames, str(device))
        return log_depth_max(depth, *cams)

    def warp(self, frames: range, images: torch.Tensor,
             lmax: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Warp output frames ``frames`` given the source images they show, ``images`` (n, 3, H, W) in
        [-1, 1] on the warp device, with the clip-wide ``lmax`` (:meth:`log_depth_max`; ``None``: each
        frame's own, the v1.5 rule). Returns render (n, 3, H, W), mask (n, 1, H, W).
        """
        depth, cams = self._inputs(frames, str(images.device))
        return forward_warp(images, depth, *cams, lmax=lmax, rules=self.rules.warp)

    def warp_views(self, frames: range, images: torch.Tensor) -> ViewsRender:
        """Warp every view into output frames ``frames`` and merge them (:func:`inspatio_cli.views.warp_views`:
        one call per target frame and view, closer wins in view order). ``images`` (V, 3, H, W) in [-1, 1]:
        the fitted views on the warp device."""
        device = images.device
        K = self.depth.K.float().reshape(-1, 3, 3).expand(images.shape[0], 3, 3)
        depth = self.depth.depth.float()
        if self.rules.clip_depth:
            depth = depth.clamp(*DEPTH_RANGE)
        c, sl = self.cameras, slice(frames.start, frames.stop)
        return warp_views(images, to_device(depth, device), torch.linalg.inv(self.depth.c2w.float()).to(device),
                          K.to(device), c.target_w2c[sl].to(device), c.target_K[sl].to(device))

    def _inputs(self, frames: range, device: str) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Depth (n, H, W) of the source frames shown (clipped under v1 rules) and (source_w2c, target_w2c,
        K, K_target)."""
        c, sl = self.cameras, slice(frames.start, frames.stop)
        depth = self.depth.depth[c.source_index[sl]].float()
        depth = to_device(depth.clamp(*DEPTH_RANGE) if self.rules.clip_depth else depth, device)
        return depth, tuple(m[sl].to(device) for m in (c.source_w2c, c.target_w2c, c.K, c.target_K))

    def describe(self) -> dict:
        """JSON-friendly summary: sizes, frame counts, depth origin, trajectory meta."""
        out = {"video": self.video.path, "source": {"kind": self.video.kind, "path": self.video.path},
               "model": self.rules.model,
               "source_frames": self.video.frame_count, "fps": self.video.fps,
               "size": list(self.size), "fit": self.fit.mode, "output_frames": self.num_frames,
               "depth": self.depth_origin, "trajectory": {k: v for k, v in self.trajectory.meta.items()
                                                          if isinstance(v, (str, int, float, bool, list, dict))}}
        if self.views is not None:
            out["source"]["views"] = [str(p) for p in self.views.paths]
        if "resampled_from" in self.depth.meta:
            out["depth_resampled_from"] = self.depth.meta["resampled_from"]
        return out

    def padded(self, total: int) -> "Scene":
        """This scene with ``total >= num_frames`` output frames, the last one (source frame, target pose,
        intrinsics) repeated: the generator's last chunk is filled this way and trimmed after decoding.
        The clip-wide ``Lmax`` is shared (repeated frames do not change it)."""
        count = self.num_frames
        if total < count:
            raise ValueError(f"cannot pad {count} frames to {total}")
        if total == count:
            return self
        index = torch.cat([torch.arange(count), torch.full((total - count,), count - 1)])
        t = self.trajectory
        trajectory = dataclasses.replace(t, rel_c2w=t.rel_c2w[index], time_map=t.time_map[index],
                                         K=None if t.K is None else t.K[index], meta=dict(t.meta))
        cameras = RenderCameras(**{f.name: getattr(self.cameras, f.name)[index]
                                   for f in dataclasses.fields(self.cameras)})
        scene = Scene(self.video, self.fit, self.depth, self.depth_origin, trajectory, cameras, self.rules,
                      self.views)
        scene._lmax = self._lmax
        return scene


def open_scene(video: str | Path | Views, trajectory: str | Path | TrajectorySource | Trajectory, *,
               camera: CameraOptions | None = None, depth: str | Path | None = None, fit: str = "stretch",
               size: tuple[int, int] | None = None, resample_depth: bool = False,
               weights_dir: str | Path | None = None, device: str | None = None, skip_bad_frames: bool = False,
               info: VideoInfo | None = None, video_fingerprint: str | None = None, frames: int | None = None,
               fps: float | None = None, rules: RenderRules | None = None, reporter: Reporter | None = None) -> Scene:
    """Prepare a scene (no pixel work): see :class:`Scene`.

    ``video``: a video, a still image or the :class:`~inspatio_cli.video.multiview.Views` of one scene;
    ``trajectory``: a trajectory file, a preset name, an already loaded source, or a trajectory already
    resolved for this video and canvas (time edits applied; a render plan's); ``camera``: how it is
    read (for a file or preset) and applied: conventions, ``relative_to_source``, time edits;
    ``depth``: a depth cache file (default: the video's sidecar, else the depth stage's cached estimate,
    see :func:`resolve_depth`);
    ``fit``: stretch|crop|pad; ``size`` (H, W): the canvas (default: the depth maps' size, which is the model
    size for depth made by the depth stage); ``resample_depth``: move depth made on another canvas onto
    ``size`` (:func:`~inspatio_cli.depth.postprocess.resample_depth`) instead of refusing it;
    ``weights_dir``/``device``/``skip_bad_frames``: for a depth estimate; ``info``/``video_fingerprint``: the video's probe and
    :func:`~inspatio_cli.files.fingerprint_file` when the caller has them (default: computed here, the
    fingerprint only when the depth records the video it was made from); ``frames``/``fps``: for a still
    image, the output length (:func:`source_camera`) and frame rate (:func:`~inspatio_cli.video.with_fps`;
    ``info`` given by the caller is used as it is); ``rules``: the model's render rules (default v1's),
    which may turn ``fit`` stretch into crop (:meth:`~inspatio_cli.views.RenderRules.fit_mode`).

    Raises :class:`DepthError` when the depth is missing or does not match the video (frame count, size,
    fit) and :class:`TrajectoryError` / :class:`UsageError` for bad trajectory or time options. Warns when
    the depth file records another video than this one, and when the camera turns faster than the
    official 0.8 deg/frame. With ``camera.align_to`` it logs the fit and warns when it is doubtful
    (:mod:`inspatio_cli.cameras.align`).
    """
    reporter = reporter or Reporter("silent")
    rules = rules or RENDER_RULES["world"]
    info = info or source_info(video, fps)
    fit = rules.fit_mode(fit, (info.height, info.width), size or MODEL_SIZE)
    cut_off = cut_off_warning(info, skip_bad_frames)
    if cut_off:
        reporter.warn(cut_off)
    depth_result, depth_origin = resolve_depth(video, depth, fit=fit, size=size, weights_dir=weights_dir,
                                               device=device, skip_bad_frames=skip_bad_frames, reporter=reporter)
    camera = camera or CameraOptions()
    source = trajectory if isinstance(trajectory, (TrajectorySource, Trajectory)) else camera.load(trajectory)
    if not isinstance(source, Trajectory):
        camera = source_camera(info, source, camera, frames)
    scene = Scene.make(info, depth_result, depth_origin, source, camera=camera, fit=fit, size=size,
                       resample=resample_depth, rules=rules, views=video if isinstance(video, Views) else None)
    reporter.event("scene", **scene.describe())
    made_from = depth_result.meta.get("video_hash")
    if made_from is not None and made_from != (video_fingerprint or source_fingerprint(video)):
        reporter.warn(f"{depth_origin} was made from another video than {video} (or the video has changed "
                      "since): the warp will use that depth as it is; make the depth again if this is a mistake")
    report_alignment(scene.trajectory, reporter)
    too_fast = speed_warning(scene.trajectory)
    if too_fast:
        reporter.warn(too_fast)
    return scene


def to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``tensor`` on ``device``; a host tensor bound for CUDA goes through pinned memory without blocking
    (the copy overlaps the host's next work; later work on the device's stream waits for it)."""
    device = torch.device(device)
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def frame_ranges(total: int, size: int) -> list[range]:
    """``range(total)`` cut into consecutive ranges of ``size`` frames (the last may be shorter)."""
    if size < 1:
        raise UsageError(f"chunk size must be >= 1, got {size}")
    return [range(i, min(i + size, total)) for i in range(0, total, size)]
