"""Depth, intrinsics and poses of a whole video with DA3: any length, bounded memory, cached.

The official pipeline runs DA3 once over all frames (capped at 1000), which costs memory and time that
grow with the video. Here frames stream from the decoder through the 504 preprocessing into windows of
``window`` frames; consecutive windows share ``overlap`` frames and are chained with a Sim(3) fit on them
(:mod:`.windows`). Only the current window and the shared frames are held, so the model's peak memory is
set by the window, not the video (the output maps themselves grow with the video, as any depth file
does). Frames shared by two windows take the earlier window's estimate in the first half of the overlap
and the later one's in the second half. A video that fits in one window is exactly the official single
call.

:func:`get_depth` adds the cache: the result is stored under ``files.cache_dir("depth")`` with a key made of
the video's content fingerprint, the depth model (and user weight files), the fit and canvas size, the
window settings, the processing resolution, the smoothing and the precision (``dtype``), so a second run
(say with another trajectory) loads it instead of building the model.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from ..choices import MODEL_SIZE
from ..devices import DEPTH_DTYPE_NAMES, resolve_device, resolve_dtype
from ..errors import RuntimeFailure, UsageError, VideoError, WeightsError
from ..files import cache_dir, fingerprint_file
from ..geometry.sim3 import Sim3
from ..progress import Reporter
from ..video import Fit, cut_off_warning, lost_frames_warning
from ..video.multiview import Views, source_fingerprint, source_frames, source_info
from .catalog import DEFAULT_MODEL, DepthModel, depth_model
from .checkpoints import load_model
from .da3 import HEAD_PIXELS, DA3Config, DA3Net, NestedConfig, NestedDA3Net
from .postprocess import (SMOOTH_SIGMA, intrinsics_to_canvas, maps_to_canvas, normalize_to_first,
                          processed_to_canvas, smooth_poses, w2c_to_c2w)
from .preprocess import PROCESS_RES, normalize, process_sizes, resize_for_model
from .result import DepthResult
from .windows import depth_scale, fit_sim3

DEFAULT_OVERLAP = 8
MIN_WINDOW, MAX_WINDOW = 8, 256
CACHE_VERSION = "1"


@dataclass(frozen=True)
class DepthSettings:
    """Everything that changes the depth of a video besides the video and the weights, as requested:
    ``window=None`` (from free memory) and ``dtype="auto"`` (from the device) stay unresolved, so the
    cache entry is found again on another machine or with other free memory."""

    model: str = DEFAULT_MODEL
    fit: str = "stretch"
    size: tuple[int, int] = MODEL_SIZE
    window: int | None = None
    overlap: int = DEFAULT_OVERLAP
    process_res: int = PROCESS_RES
    smooth_sigma: float = SMOOTH_SIGMA
    dtype: str = "auto"

    def describe(self) -> str:
        """A stable one-line description (stored in the depth file and hashed into the cache key)."""
        return ";".join(f"{k}={v}" for k, v in asdict(self).items())


def available_memory(device: torch.device) -> int:
    """Free bytes on ``device``: CUDA free memory, or ``MemAvailable`` of the host (8 GB if unknown)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


def bytes_per_frame(cfg: DA3Config | NestedConfig, proc_hw: tuple[int, int], dtype: str) -> int:
    """Rough peak working memory per frame of a window: about 24 token-width activations per token in the
    backbone (tokens, local copy, four double-width out layers, q/k/v, FFN) in the compute dtype, plus the
    float32 full-resolution maps of the outputs."""
    nets = [cfg.anyview, cfg.metric] if isinstance(cfg, NestedConfig) else [cfg]
    tokens = 1 + (proc_hw[0] // 14) * (proc_hw[1] // 14)
    width = 2 if dtype == "bf16" else 4
    return max(24 * tokens * n.backbone.embed_dim * width for n in nets) + 16 * proc_hw[0] * proc_hw[1] * 4


def auto_window(cfg: DA3Config | NestedConfig, proc_hw: tuple[int, int], device: torch.device,
                dtype: str) -> int:
    """Frames per window that fit half of the free memory, after the float32 weights and the DPT head's
    fixed working set (:data:`.da3.HEAD_PIXELS` at half the head width, a few maps deep), within
    [:data:`MIN_WINDOW`, :data:`MAX_WINDOW`]."""
    nets = [cfg.anyview, cfg.metric] if isinstance(cfg, NestedConfig) else [cfg]
    weights = sum(4 * 12 * n.backbone.depth * n.backbone.embed_dim ** 2 for n in nets)
    head = max(HEAD_PIXELS * (n.head.features // 2) * 4 * 4 for n in nets)
    budget = available_memory(device) // 2 - weights - head
    return int(min(MAX_WINDOW, max(MIN_WINDOW, budget // bytes_per_frame(cfg, proc_hw, dtype))))


@dataclass
class _Window:
    """One window's results at the processed size in the chained world: c2w ``(n, 4, 4)`` float64, depth
    and confidence ``(n, h, w)`` and K ``(n, 3, 3)`` float32 on the CPU."""

    c2w: np.ndarray
    depth: torch.Tensor
    conf: torch.Tensor
    K: torch.Tensor

    def __len__(self) -> int:
        return len(self.c2w)

    def part(self, sl: slice) -> "_Window":
        return _Window(self.c2w[sl], self.depth[sl], self.conf[sl], self.K[sl])

    @staticmethod
    def join(parts: Sequence["_Window"]) -> "_Window":
        return _Window(np.concatenate([p.c2w for p in parts]), torch.cat([p.depth for p in parts]),
                       torch.cat([p.conf for p in parts]), torch.cat([p.K for p in parts]))


class _Runner:
    """Runs the network on one window of processed uint8 frames and chains it onto the previous one."""

    def __init__(self, net: DA3Net | NestedDA3Net, device: torch.device, dtype: str, reporter: Reporter):
        self.net, self.device, self.dtype, self.reporter = net, device, dtype, reporter
        self.warned = False

    def run(self, frames: list[np.ndarray]) -> _Window:
        images = normalize(np.stack(frames))[None].to(self.device)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                     enabled=self.dtype == "bf16"):
            try:
                out = self.net(images)
            except torch.OutOfMemoryError:
                raise RuntimeFailure(f"out of memory running DA3 on a window of {len(frames)} frames; "
                                     "pass a smaller --window") from None
        if out.sky_fallback and not self.warned:
            self.warned = True
            self.reporter.warn("almost every pixel looks like sky to the metric model; depth was aligned on "
                               "all pixels and no sky depth was filled in")
        return _Window(w2c_to_c2w(out.extrinsics[0].double().cpu().numpy()), out.depth[0].float().cpu(),
                       out.conf[0].float().cpu(), out.intrinsics[0].float().cpu())

    @staticmethod
    def chain(new: _Window, held: _Window) -> _Window:
        """``new`` (whose first ``len(held)`` frames are ``held``'s frames) mapped into ``held``'s world."""
        n = len(held)
        scale = depth_scale(held.depth, new.depth[:n], held.conf, new.conf[:n])
        sim: Sim3 = fit_sim3(held.c2w, new.c2w[:n], scale)
        return _Window(sim.apply_to_poses(new.c2w), new.depth * scale, new.conf, new.K)


def estimate_depth(frames: Iterable[np.ndarray], net: DA3Net | NestedDA3Net, fit: Fit, *,
                   window: int = MAX_WINDOW, overlap: int = DEFAULT_OVERLAP, process_res: int = PROCESS_RES,
                   smooth_sigma: float = SMOOTH_SIGMA, dtype: str = "fp32",
                   device: str | torch.device = "auto", reporter: Reporter | None = None,
                   total: int | None = None, spill: str | Path | None = None) -> DepthResult:
    """Depth, K and poses of a frame sequence on the canvas of ``fit``.

    ``frames``: uint8 ``(H0, W0, 3)`` RGB frames of size ``fit.src_hw`` (any iterable; consumed once, only a
    window is held). ``net``: a loaded DA3 network on ``device``. ``window``/``overlap``: frames per call
    and frames shared by consecutive calls (see the module doc). ``dtype``: ``fp32``, ``bf16`` (autocast, as
    upstream) or ``auto`` (:func:`inspatio_cli.devices.resolve_dtype`). Returns depth ``(T, H, W)`` and
    confidence on the canvas, ``K (T, 3, 3)`` in canvas pixels and smoothed camera-to-world poses
    normalised to frame 0. ``total`` only sizes the progress bar. ``spill``: a folder where the canvas maps
    are written as they are made (unnamed temporary files, memory-mapped in the result), so the estimate of
    a long video costs disk rather than memory (3.2 MB a frame at 480x832); None keeps them in memory.
    """
    reporter = reporter or Reporter("silent")
    if window < 2:
        raise UsageError(f"--window must be at least 2 (windows are chained on shared frames), got {window}")
    overlap = max(1, min(overlap, window // 2))
    dev = resolve_device(device)
    runner = _Runner(net, dev, resolve_dtype(dtype, dev, allowed=DEPTH_DTYPE_NAMES), reporter)
    proc_hw = process_sizes(fit.src_hw, process_res)[1]
    transform = processed_to_canvas(fit, proc_hw)
    poses: list[np.ndarray] = []
    Ks: list[torch.Tensor] = []
    canvas_depth, canvas_conf = _Maps(spill), _Maps(spill)
    buffer: list[np.ndarray] = []
    held: _Window | None = None

    def emit(part: _Window, stage) -> None:
        poses.append(part.c2w)
        Ks.append(intrinsics_to_canvas(part.K, transform))
        canvas_depth.append(maps_to_canvas(part.depth, transform, fit.dst_hw, part.depth.flatten(1).amax(dim=1)))
        canvas_conf.append(maps_to_canvas(part.conf, transform, fit.dst_hw, 0.0))
        stage.advance(len(part), frames=sum(len(p) for p in poses))

    def process(stage, final: bool) -> None:
        nonlocal held, buffer
        result = runner.run(buffer)
        if held is not None:
            result = runner.chain(result, held)
            half = len(held) // 2
            emit(_Window.join([held.part(slice(0, half)), result.part(slice(half, len(held)))]), stage)
            result = result.part(slice(len(held), None))
        keep = 0 if final else overlap
        emit(result.part(slice(0, len(result) - keep)), stage)
        held = result.part(slice(len(result) - keep, None)) if keep else None
        buffer = buffer[len(buffer) - keep:] if keep else []

    with reporter.stage("depth", total=total) as stage:
        for frame in frames:
            if tuple(frame.shape[:2]) != fit.src_hw:
                raise VideoError(f"frame size changed from {fit.src_hw} to {tuple(frame.shape[:2])} mid-video")
            buffer.append(resize_for_model(frame, process_res))
            if len(buffer) == window:
                process(stage, final=False)
        if held is not None and len(buffer) == len(held):
            emit(held, stage)
        elif buffer:
            process(stage, final=True)
    if not poses:
        raise VideoError("no frames to estimate depth from")
    c2w = smooth_poses(normalize_to_first(np.concatenate(poses)), smooth_sigma)
    return DepthResult(depth=canvas_depth.stacked(), K=torch.cat(Ks), c2w=torch.from_numpy(c2w).float(),
                       confidence=canvas_conf.stacked(), meta={"process_size": f"{proc_hw[0]}x{proc_hw[1]}"})


class _Maps:
    """Per-frame float32 maps ``(n, H, W)`` appended window by window, then :meth:`stacked` into one
    ``(T, H, W)`` tensor: in memory, or written to an unnamed temporary file in the folder ``spill`` and
    memory-mapped (the file disappears with the last reference to the result)."""

    def __init__(self, spill: str | Path | None):
        self.parts: list[torch.Tensor] = []
        self.file = tempfile.TemporaryFile(dir=spill) if spill is not None else None
        self.frames, self.size = 0, (0, 0)

    def append(self, maps: torch.Tensor) -> None:
        if self.file is None:
            self.parts.append(maps)
        else:
            self.file.write(maps.float().contiguous().numpy().tobytes())
        self.frames, self.size = self.frames + len(maps), tuple(maps.shape[1:])

    def stacked(self) -> torch.Tensor:
        if self.file is None:
            return torch.cat(self.parts)
        self.file.flush()
        with self.file:
            return torch.from_numpy(np.memmap(self.file, dtype=np.float32, mode="c", shape=(self.frames, *self.size)))


def _cache_key(video: Path | Views, settings: DepthSettings, weights: Sequence[str | Path] | None) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION};{source_fingerprint(video)};{settings.describe()}".encode())
    for path in weights or ():
        p = Path(path)
        target = p / "model.safetensors" if p.is_dir() else p
        try:
            digest.update(f";{fingerprint_file(target) if target.is_file() else p.resolve()}".encode())
        except OSError as exc:  # read before the model is built: the weights' own error, not a failed run
            raise WeightsError(f"cannot read the depth weights: {exc.strerror or exc}", target) from None
    return digest.hexdigest()[:20]


def cache_path(video: str | Path | Views, settings: DepthSettings,
               weights: Sequence[str | Path] | None = None) -> Path:
    """Where :func:`get_depth` keeps the depth of ``video`` (or of views) for ``settings``."""
    source = video if isinstance(video, Views) else Path(video)
    return cache_dir("depth") / f"{_cache_key(source, settings, weights)}.depth.safetensors"


def get_depth(video: str | Path | Views, *, model: str | DepthModel = DEFAULT_MODEL,
              weights: Sequence[str | Path] | None = None, weights_dir: str | Path | None = None,
              fit: str = "stretch", size: tuple[int, int] = MODEL_SIZE, window: int | None = None,
              overlap: int = DEFAULT_OVERLAP, process_res: int = PROCESS_RES,
              smooth_sigma: float = SMOOTH_SIGMA, dtype: str = "auto",
              device: str | torch.device = "auto", cache: bool = True, skip_bad_frames: bool = False,
              reporter: Reporter | None = None) -> DepthResult:
    """The depth cache of ``video``: loaded from the cache when these settings were computed before,
    else estimated with DA3 (see :func:`estimate_depth`) and stored in the cache. ``video`` may be the
    :class:`~inspatio_cli.video.multiview.Views` of one scene: one joint estimate over the views, as over
    the frames of a clip (one per view, view 0 the reference camera).

    ``model``: a ``--model`` name (:data:`.checkpoints.DEPTH_MODELS`); ``weights``: user weight files or
    folders (one per checkpoint of the model) instead of the registry lookup in ``weights_dir`` / the
    Hugging Face cache; ``fit``/``size``: the canvas (as for the frames); ``window``: frames per DA3 call
    (default: from free memory); ``dtype``: ``auto`` (bf16 autocast on GPUs, as upstream), ``fp32`` or
    ``bf16``; ``device``: a name of :mod:`inspatio_cli.devices` (``auto``: the GPU if any); ``cache=False``
    always recomputes and stores nothing; ``skip_bad_frames``: frames that do not decode are replaced by
    the previous good one (warned about, counted in ``meta["lost_frames"]``).
    The resolved window and dtype are recorded in the result's ``meta``.
    Raises :class:`WeightsError` for missing weights (with the download command), :class:`VideoError`
    for unreadable videos, :class:`UsageError` for invalid options.
    """
    reporter = reporter or Reporter("silent")
    spec = depth_model(model) if isinstance(model, str) else model
    dev = resolve_device(device)
    prec = resolve_dtype(dtype, dev, allowed=DEPTH_DTYPE_NAMES)
    if window is not None and window < 2:
        raise UsageError(f"--window must be at least 2 (windows are chained on shared frames), got {window}")
    info = source_info(video)
    cut_off = cut_off_warning(info, skip_bad_frames)
    if cut_off:
        reporter.warn(cut_off)
    video_fit = Fit.make((info.height, info.width), size, fit)
    settings = DepthSettings(spec.name, fit, video_fit.dst_hw, window, overlap, process_res, float(smooth_sigma),
                             dtype)
    path = cache_path(video, settings, weights)
    if cache and path.is_file():
        reporter.info(f"depth: using the cached result {path}")
        reporter.event("depth_cache", path=str(path), hit=True)
        return DepthResult.load(path)
    net = load_model(spec, weights, weights_dir, dev)
    proc_hw = process_sizes(video_fit.src_hw, process_res)[1]
    win = window if window is not None else auto_window(spec.config, proc_hw, dev, prec)
    decoding: dict = {}
    frames = (frame for _, frame in source_frames(video, skip_bad_frames=skip_bad_frames, stats=decoding))
    result = estimate_depth(frames, net, video_fit, window=win, overlap=overlap, process_res=process_res,
                            smooth_sigma=smooth_sigma, dtype=prec, device=dev, reporter=reporter,
                            total=info.frame_count, spill=path.parent)
    result.meta.update(model=spec.name, units="metric" if spec.metric else "relative", licence=spec.licence,
                       video_hash=source_fingerprint(video), fit=fit, settings=settings.describe(),
                       window=str(win), dtype=prec)
    if decoding.get("skipped"):
        result.meta["lost_frames"] = str(decoding["skipped"])
        reporter.warn(lost_frames_warning(video, decoding["skipped"], result.num_frames))
    if cache:
        result.save(path)
        reporter.event("depth_cache", path=str(path), hit=False)
    return result


__all__ = ["DepthSettings", "estimate_depth", "get_depth", "cache_path", "auto_window"]
