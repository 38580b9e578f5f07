"""The two v1.5 scene layouts, both directions.

* ``v15``: the official scene folder (REFERENCE-v1.5.md R2), decoded and written by
  :mod:`inspatio_cli.depth.scene15`: ``depth/`` with the camera text files (world-to-camera, OpenCV),
  ``metadata.txt`` and uint16 PNGs (image scenes, 0 = unknown) or ``depth.mp4`` (video scenes). Import takes
  the scene folder or its ``depth/`` folder; export writes ``DIR/depth/`` (add ``input/`` yourself).
* ``v15-community``: the community v1.5 CLI's scene folder (``inspatio-world prepare``): ``scene.json``
  (``kind``, ``fps``, ``prompt``, ``depth_range`` [min, max], ``intrinsics`` V x 3 x 3 pixels,
  ``world_to_camera`` V x 4 x 4 OpenCV) and ``depth.mkv``, every view's depth as 16-bit grey FFV1,
  ``depth = float32(min + float32(q) / 65535 * (max - min))``. Export writes those two files (the source
  frames, ``video.mp4`` or ``view_XX.png``, are the user's).

Depth is quantised to 16 bits by both layouts: a round trip keeps it within one step ``(max - min) / 65535``
(and exactly from then on); cameras survive exactly in float32.
"""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import av
import numpy as np

from ..depth import scene15
from ..depth.result import DepthResult
from ..errors import DepthError
from ..files import atomic_output
from ..geometry import se3
from .checks import scene_result

COMMUNITY_JSON, COMMUNITY_DEPTH = "scene.json", "depth.mkv"
DEFAULT_FPS = 24.0
"""The frame rate written for a video scene when the depth file does not record its video's."""


def depth_folder(path: Path) -> Path:
    """The ``depth/`` folder of a v1.5 scene given as the scene or as that folder itself."""
    return path / "depth" if (path / "depth").is_dir() else path


def is_v15(path: Path) -> bool:
    return path.is_dir() and (depth_folder(path) / scene15.POSES_FILE).is_file()


def is_community(path: Path) -> bool:
    return path.is_dir() and (path / COMMUNITY_JSON).is_file() and (path / COMMUNITY_DEPTH).is_file()


def read_v15(path: Path) -> DepthResult:
    """Import an official v1.5 scene (module docstring)."""
    folder = depth_folder(path)
    scene = scene15.read_scene_depth(folder)
    return scene_result(scene.depth(), scene.K, scene.source_tcw, path=folder, direction="w2c", convention="opencv",
                        meta={"scene_kind": scene.kind})


def v15_outputs(result: DepthResult, folder: Path) -> list[Path]:
    """The files :func:`write_v15` writes for ``result`` into ``folder``."""
    depth = folder / "depth"
    if _kind(result) == "video":
        maps = [depth / scene15.VIDEO_DEPTH_FILE]
    else:
        maps = [depth / scene15.view_depth_name(v, result.num_frames) for v in range(result.num_frames)]
    return maps + [depth / name for name in (scene15.RANGE_FILE, scene15.INTRINSICS_FILE, scene15.POSES_FILE)]


def write_v15(result: DepthResult, c2w: np.ndarray, folder: Path) -> list[Path]:
    """Export as an official v1.5 scene into ``folder/depth/`` with the cameras ``c2w (T, 4, 4)``: an image scene (``scene_kind`` recorded as
    ``image``, or a single frame) stores pixels of confidence 0 as 0 (unknown); a video scene cannot mark
    unknown depth and stores the filled value, at the recorded ``fps`` (else :data:`DEFAULT_FPS`)."""
    kind = _kind(result)
    depth = result.depth.float()
    if kind == "image" and result.confidence is not None:
        depth = depth.masked_fill(result.confidence == 0, 0.0)
    scene15.write_scene_depth(folder / "depth", depth.numpy(), result.K.numpy(), _w2c(c2w), kind,
                              fps=float(result.meta.get("fps", DEFAULT_FPS)))
    return v15_outputs(result, folder)


def read_community(path: Path) -> DepthResult:
    """Import a community v1.5 scene folder (module docstring)."""
    config = path / COMMUNITY_JSON
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DepthError(f"not a readable scene.json ({' '.join(str(exc).split())[:80]})", config) from None
    if not isinstance(data, dict) or not {"depth_range", "intrinsics", "world_to_camera"} <= set(data):
        raise DepthError("scene.json must be an object with depth_range, intrinsics and world_to_camera", config)
    try:
        low, high = (float(v) for v in data["depth_range"])
        K = np.array(data["intrinsics"], dtype=np.float64)
        w2c = np.array(data["world_to_camera"], dtype=np.float64)
    except (TypeError, ValueError):
        raise DepthError("depth_range must be [min, max] and intrinsics, world_to_camera arrays of numbers",
                         config) from None
    if not (np.isfinite([low, high]).all() and low <= high):
        raise DepthError(f"depth_range must be two finite numbers min <= max, got {data['depth_range']}", config)
    codes = _read_gray16(path / COMMUNITY_DEPTH)
    depth = low + codes.astype(np.float32) / np.float32(scene15.MAX_UINT16) * np.float32(high - low)
    meta = {"scene_kind": str(data.get("kind", "video"))}
    if isinstance(data.get("fps"), (int, float)):
        meta["fps"] = str(float(data["fps"]))
    return scene_result(depth.astype(np.float32), K, w2c, path=path, direction="w2c", convention="opencv", meta=meta)


def community_outputs(folder: Path) -> list[Path]:
    """The files :func:`write_community` writes into ``folder``."""
    return [folder / COMMUNITY_JSON, folder / COMMUNITY_DEPTH]


def write_community(result: DepthResult, c2w: np.ndarray, folder: Path) -> list[Path]:
    """Export as a community v1.5 scene folder with the cameras ``c2w (T, 4, 4)``: ``scene.json`` (no prompt) and ``depth.mkv`` over the
    clip-wide depth range, quantised as that tool does (``rint`` of the clipped scaled depth)."""
    folder.mkdir(parents=True, exist_ok=True)
    depth = result.depth.float().numpy()
    low, high = float(depth.min()), float(depth.max())
    codes = np.rint(np.clip((depth - low) * (scene15.MAX_UINT16 / max(high - low, 1e-12)), 0, scene15.MAX_UINT16))
    config = {"kind": _kind(result), "fps": float(result.meta.get("fps", DEFAULT_FPS)), "prompt": "",
              "depth_range": [low, high], "intrinsics": result.K.double().tolist(),
              "world_to_camera": _w2c(c2w).astype(np.float64).tolist()}
    with atomic_output(folder / COMMUNITY_DEPTH) as tmp, closing(av.open(str(tmp), mode="w", format="matroska")) as out:
        stream = out.add_stream("ffv1", rate=1)
        stream.pix_fmt, stream.width, stream.height = "gray16le", depth.shape[2], depth.shape[1]
        for plane in codes.astype(np.uint16):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(plane, format="gray16le")))
        out.mux(stream.encode())
    with atomic_output(folder / COMMUNITY_JSON) as tmp:
        tmp.write_text(json.dumps(config, indent=1), encoding="utf-8")
    return community_outputs(folder)


def _kind(result: DepthResult) -> str:
    return result.meta.get("scene_kind", "image" if result.num_frames == 1 else "video")


def _w2c(c2w: np.ndarray) -> np.ndarray:
    """float32 world-to-camera ``(T, 4, 4)`` of camera-to-world poses."""
    return se3.invert(c2w).astype(np.float32)


def _read_gray16(path: Path) -> np.ndarray:
    """Every frame of a 16-bit grey video as uint16 ``(T, H, W)``; a one-line :class:`DepthError` otherwise."""
    if not path.is_file():
        raise DepthError("missing depth video", path)
    try:
        with closing(av.open(str(path))) as container:
            planes = [frame.to_ndarray(format="gray16le") for frame in container.decode(video=0)]
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise DepthError(f"not a readable 16-bit depth video ({' '.join(str(exc).split())[:80]})", path) from None
    if not planes:
        raise DepthError("the depth video has no frames", path)
    return np.stack(planes)
