"""The depth folder of an InSpatio-World v1.5 scene: cameras as text, depth as 16-bit PNGs or a lossless video.

A v1.5 scene folder (REFERENCE-v1.5.md R2) keeps the depth stage's output in ``<scene>/depth/``:

* ``source_intrinsics.txt``: one line per view or frame, the 9 numbers of ``K`` row-major (pixels);
* ``source_tcw.txt``: one line per view or frame, the 16 numbers of the 4x4 world-to-camera pose;
* ``metadata.txt``: ``"<min> <max>"``, the depth range the uint16 values span (``%.9g``);
* ``depth.png`` (one image), ``depth_00.png``, ``depth_01.png``, ... (several views): 16-bit greyscale;
* ``depth.mp4`` (video): the uint16 value split over R (high byte) and G (low byte), B = 0, libx264rgb crf 0.

Depth is quantised as ``q = rint(clip((d - min) / (max - min), 0, 1) * 65535)`` in float64 and read back as
``float32(min + q / 65535 * (max - min))`` (the step is ``(max - min) / 65535``). Images use ``min = 0`` and
store unknown depth (NaN, negative, infinite) as 0, which the v1.5 warp never splats; videos use the
clip-wide range of the finite values. Matrices are written with ``%.9g`` and read as float32, so float32
cameras survive the round trip exactly. The same reader serves ``input/target_tcw.txt`` (:func:`load_matrix`).

:func:`read_scene_depth` decodes a folder into a :class:`SceneDepth`; :func:`write_scene_depth` writes one
(the official ``convert_image`` / ``convert_video`` encodings). Every problem with a file is a one-line
:class:`~inspatio_cli.errors.DepthError` naming it.
"""

from __future__ import annotations

import math
import re
from contextlib import closing
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Literal, Sequence

import av
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DepthError, VideoError
from ..files import atomic_output
from ..video import as_rate, iter_frames

MAX_UINT16 = 65535
"""The largest stored depth code."""
DEPTH_ENCODING = "uint16_minmax_v1"
"""``scene.json``'s name for this encoding."""
INTRINSICS_FILE, POSES_FILE, RANGE_FILE = "source_intrinsics.txt", "source_tcw.txt", "metadata.txt"
IMAGE_DEPTH_FILE, VIDEO_DEPTH_FILE = "depth.png", "depth.mp4"
MIN_IMAGE_DEPTH_MAX = 1e-6
"""Smallest ``max`` of an image scene's range (all-zero depth still gets a range)."""
SceneKind = Literal["image", "video"]
_VIEW_PNG = re.compile(r"depth_(\d{2})\.png")


def view_depth_name(view: int, views: int) -> str:
    """The PNG holding ``view``'s depth in an image scene of ``views`` views: ``depth.png`` for a single
    image, ``depth_{view:02d}.png`` otherwise."""
    return IMAGE_DEPTH_FILE if views == 1 else f"depth_{view:02d}.png"


# --------------------------------------------------------------------------------------------------
# Values


def encode_depth(depth: np.ndarray, low: float, high: float) -> np.ndarray:
    """Float depth (any shape) -> uint16 codes of the range [low, high]: ``rint`` (half to even) of the
    clipped float64 fraction times 65535; all 0 when ``high <= low``; NaN is stored as 0."""
    if high <= low:
        return np.zeros(np.shape(depth), dtype=np.uint16)
    fraction = np.clip((np.asarray(depth, dtype=np.float64) - low) / (high - low), 0.0, 1.0)
    return np.rint(np.nan_to_num(fraction, nan=0.0) * MAX_UINT16).astype(np.uint16)


def decode_depth(codes: np.ndarray, low: float, high: float) -> np.ndarray:
    """uint16 codes -> float32 depth ``low + q / 65535 * (high - low)``, computed in float64 then rounded."""
    return (low + np.asarray(codes).astype(np.float64) / MAX_UINT16 * (high - low)).astype(np.float32)


def image_depth_range(depth: np.ndarray) -> tuple[float, float]:
    """The range of an image scene (``convert_image``): ``min = 0`` and ``max`` the largest finite
    depth >= 0 (1.0 when there is none), at least 1e-6."""
    depth = np.asarray(depth)
    valid = depth[np.isfinite(depth) & (depth >= 0)]
    return 0.0, max(float(valid.max()) if valid.size else 1.0, MIN_IMAGE_DEPTH_MAX)


def video_depth_range(frames: Iterable[np.ndarray]) -> tuple[float, float]:
    """The range of a video scene (``convert_video``): min and max of the finite depth of all frames."""
    low, high = math.inf, -math.inf
    for frame in frames:
        finite = np.asarray(frame)[np.isfinite(frame)]
        if finite.size:
            low, high = min(low, float(finite.min())), max(high, float(finite.max()))
    if low > high:
        raise ValueError("the depth has no finite value")
    return low, high


def image_depth_codes(depth: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """An image scene's depth ``(V, H, W)`` as stored: unknown values (not finite, or negative) become 0,
    then :func:`encode_depth` with :func:`image_depth_range` as written to ``metadata.txt`` and read back.
    Returns the uint16 codes and that range."""
    depth = np.asarray(depth, dtype=np.float32)
    low, high = parse_range(format_range(*image_depth_range(depth)))
    known = np.where(np.isfinite(depth) & (depth >= 0), depth, np.float32(0))
    return encode_depth(known, low, high), (low, high)


def depth_to_rgb(codes: np.ndarray) -> np.ndarray:
    """uint16 codes ``(..., H, W)`` -> the uint8 RGB frames of ``depth.mp4``: R the high byte, G the low
    byte, B 0. ``(..., H, W, 3)``."""
    codes = np.asarray(codes, dtype=np.uint16)
    return np.stack([codes >> 8, codes & 0xFF, np.zeros_like(codes)], axis=-1).astype(np.uint8)


def rgb_to_depth(rgb: np.ndarray) -> np.ndarray:
    """Decoded ``depth.mp4`` RGB frames ``(..., H, W, 3)`` uint8 -> uint16 codes ``(R << 8) | G``."""
    rgb = np.asarray(rgb)
    return (rgb[..., 0].astype(np.uint16) << 8) | rgb[..., 1].astype(np.uint16)


# --------------------------------------------------------------------------------------------------
# Text files


def format_range(low: float, high: float) -> str:
    """``metadata.txt``'s text: ``"<min> <max>\\n"`` with ``%.9g``."""
    return f"{low:.9g} {high:.9g}\n"


def parse_range(text: str, path: str | Path | None = None) -> tuple[float, float]:
    """The (min, max) of ``metadata.txt``'s text: two finite numbers with ``min <= max``."""
    try:
        values = [float(token) for token in text.split()]
    except ValueError:
        values = []
    if len(values) != 2 or not all(math.isfinite(v) for v in values) or values[0] > values[1]:
        raise DepthError(f"expected the depth range as two finite numbers 'min max' with min <= max, "
                         f"got {' '.join(text.split())[:60]!r}", path)
    return values[0], values[1]


def read_range(path: str | Path) -> tuple[float, float]:
    """(min, max) from a ``metadata.txt`` file (see :func:`parse_range`)."""
    return parse_range(_read_text(path, "the depth range (min max) of the uint16 depth"), path)


def load_matrix(path: str | Path, size: int) -> np.ndarray:
    """A matrix text file as float32 ``(N, size, size)``: one row-major matrix of ``size * size`` numbers
    per line, parsed as float64 then rounded to float32 (the official ``load_matrix``)."""
    text = _read_text(path, f"one {size}x{size} matrix per line")
    rows = [line.split() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not rows:
        raise DepthError(f"no matrices: expected one {size}x{size} matrix ({size * size} numbers) per line", path)
    for number, row in enumerate(rows, 1):
        if len(row) != size * size:
            raise DepthError(f"matrix {number} has {len(row)} numbers; expected {size * size} "
                             f"(a row-major {size}x{size} matrix per line)", path)
    try:
        values = np.array(rows, dtype=np.float64)
    except ValueError:
        raise DepthError("not a matrix file: a value is not a number", path) from None
    if not np.isfinite(values).all():
        raise DepthError(f"matrix {int(np.argwhere(~np.isfinite(values))[0, 0]) + 1} has a non-finite value", path)
    return values.astype(np.float32).reshape(-1, size, size)


def save_matrix(path: str | Path, matrices: np.ndarray | torch.Tensor) -> Path:
    """Write ``(N, s, s)`` matrices, one row-major per line with ``%.9g`` (exact for float32), atomically."""
    flat = np.asarray(matrices, dtype=np.float32).reshape(len(matrices), -1)
    text = "".join(" ".join(f"{float(x):.9g}" for x in row) + "\n" for row in flat)
    return _write_text(path, text)


def _read_text(path: str | Path, what: str) -> str:
    path = Path(path)
    if not path.is_file():
        raise DepthError(f"missing (it should hold {what})" if not path.exists() else "not a file", path)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DepthError(f"cannot read the file ({' '.join(str(exc).split())[:80]})", path) from None


def _write_text(path: str | Path, text: str) -> Path:
    with atomic_output(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)


# --------------------------------------------------------------------------------------------------
# Depth files


def read_depth_png(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """A 16-bit greyscale PNG as uint16 ``(H, W)``; ``size`` (H, W) the size it must have."""
    path = Path(path)
    if not path.is_file():
        raise DepthError("missing depth PNG" if not path.exists() else "not a file", path)
    try:
        with Image.open(path) as image:
            mode = image.mode
            codes = np.array(image)
    except UnidentifiedImageError:
        raise DepthError("not an image Pillow can read (expected a 16-bit greyscale PNG)", path) from None
    except (OSError, ValueError) as exc:
        raise DepthError(f"not a readable PNG ({' '.join(str(exc).split())[:80]})", path) from None
    if mode not in ("I;16", "I;16B", "I;16L", "I") or codes.ndim != 2 or codes.min(initial=0) < 0 or (
            codes.max(initial=0) > MAX_UINT16):
        raise DepthError(f"not a 16-bit greyscale depth PNG (mode {mode})", path)
    _check_size(codes.shape, size, path)
    return codes.astype(np.uint16)


def write_depth_png(path: str | Path, codes: np.ndarray) -> Path:
    """Write uint16 codes ``(H, W)`` as a 16-bit greyscale PNG, atomically."""
    with atomic_output(path) as tmp:
        Image.fromarray(np.ascontiguousarray(codes, dtype=np.uint16)).save(tmp, format="PNG")
    return Path(path)


def iter_depth_video(path: str | Path, size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """The uint16 codes ``(H, W)`` of each frame of a ``depth.mp4`` (:func:`rgb_to_depth` of the decoded
    RGB; exact, the video being lossless RGB); ``size`` (H, W) the size every frame must have."""
    path = Path(path)
    if not path.is_file():
        raise DepthError("missing depth video" if not path.exists() else "not a file", path)
    try:
        for _, rgb in iter_frames(path):
            _check_size(rgb.shape[:2], size, path)
            yield rgb_to_depth(rgb)
    except VideoError as exc:
        raise DepthError(f"not a readable depth video ({exc.message})", path) from None


def write_depth_video(path: str | Path, codes: Iterable[np.ndarray], fps: float | Fraction) -> int:
    """Write uint16 code frames ``(H, W)`` as ``depth.mp4``: :func:`depth_to_rgb` frames, libx264rgb
    crf 0 (lossless RGB) at ``fps``, atomically. Returns the frame count."""
    rate = as_rate(fps)
    count = 0
    with atomic_output(path) as tmp, closing(av.open(str(tmp), mode="w", format="mp4")) as container:
        stream = None
        for frame_codes in codes:
            rgb = depth_to_rgb(frame_codes)
            if stream is None:
                stream = container.add_stream("libx264rgb", rate=rate)
                stream.height, stream.width = rgb.shape[:2]
                stream.pix_fmt = "rgb24"
                stream.options = {"crf": "0"}
                stream.codec_context.time_base = 1 / rate
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = count, stream.codec_context.time_base
            for packet in stream.encode(frame):
                container.mux(packet)
            count += 1
        if stream is None:
            raise ValueError("a depth video needs at least one frame")
        for packet in stream.encode(None):
            container.mux(packet)
    return count


def _check_size(shape: Sequence[int], size: tuple[int, int] | None, path: Path) -> None:
    if size is not None and tuple(shape) != tuple(size):
        raise DepthError(f"depth is {shape[1]}x{shape[0]} (WxH), expected {size[1]}x{size[0]}", path)


# --------------------------------------------------------------------------------------------------
# The folder


@dataclass(frozen=True)
class SceneDepth:
    """The decoded depth folder of a v1.5 scene.

    ``codes`` uint16 ``(V, H, W)``: the stored depth of each view (image scenes) or frame (video scenes);
    ``depth_range`` the (min, max) they span (:meth:`depth` decodes them); ``K`` float32 ``(V, 3, 3)`` in
    pixels, each view's own; ``source_tcw`` float32 ``(V, 4, 4)`` world-to-camera (OpenCV axes), in the
    scene's coordinates (frame 0 close to the identity for DA3 cameras); ``kind`` ``"image"`` or
    ``"video"``.
    """

    codes: np.ndarray
    depth_range: tuple[float, float]
    K: torch.Tensor
    source_tcw: torch.Tensor
    kind: SceneKind

    @property
    def num_views(self) -> int:
        return int(self.codes.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the depth maps."""
        return int(self.codes.shape[1]), int(self.codes.shape[2])

    def depth(self, views: slice | Sequence[int] | None = None) -> torch.Tensor:
        """Float32 depth ``(n, H, W)`` of ``views`` (default all): :func:`decode_depth`; 0 in an image scene
        marks unknown depth (never splatted by the v1.5 warp)."""
        codes = self.codes if views is None else self.codes[views]
        return torch.from_numpy(decode_depth(codes, *self.depth_range))


def read_scene_depth(folder: str | Path, size: tuple[int, int] | None = None) -> SceneDepth:
    """Decode ``<scene>/depth/`` (pass that folder): the kind from the files present (``depth.mp4``: video;
    ``depth.png`` or ``depth_NN.png``: image), then the range, the depth of every view or frame and the two
    camera files, whose line counts must equal the number of views or frames. ``size`` (H, W): the size the
    depth must have (the scene's resolution)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DepthError("not a scene depth folder" if folder.exists() else "no such scene depth folder", folder)
    video, single = folder / VIDEO_DEPTH_FILE, folder / IMAGE_DEPTH_FILE
    numbered = sorted((p for p in folder.iterdir() if _VIEW_PNG.fullmatch(p.name)), key=lambda p: p.name)
    present = [p.name for p in (video, single) if p.exists()] + ([numbered[0].name] if numbered else [])
    if len(present) != 1:
        found = f"found {', '.join(present)}" if present else "found none"
        raise DepthError(f"expected exactly one of {VIDEO_DEPTH_FILE}, {IMAGE_DEPTH_FILE} or depth_00.png.. "
                         f"({found})", folder)
    depth_range = read_range(folder / RANGE_FILE)
    if video.exists():
        kind: SceneKind = "video"
        frames = list(iter_depth_video(video, size))
    else:
        kind = "image"
        paths = [single] if single.exists() else numbered
        expected = [view_depth_name(v, len(paths)) for v in range(len(paths))]
        if [p.name for p in paths] != expected:
            raise DepthError(f"view depth files must be numbered {expected[0]}..{expected[-1]} without gaps, "
                             f"found {', '.join(p.name for p in paths)}", folder)
        frames = []
        for path in paths:
            frames.append(read_depth_png(path, size or (frames[0].shape if frames else None)))
    codes = np.stack(frames)
    cameras = []
    for name, side in ((INTRINSICS_FILE, 3), (POSES_FILE, 4)):
        matrices = load_matrix(folder / name, side)
        if len(matrices) != len(codes):
            raise DepthError(f"{len(matrices)} matrices for {len(codes)} depth "
                             f"{'frames' if kind == 'video' else 'views'}: expected one per line each",
                             folder / name)
        cameras.append(torch.from_numpy(matrices))
    return SceneDepth(codes=codes, depth_range=depth_range, K=cameras[0], source_tcw=cameras[1], kind=kind)


def write_scene_depth(folder: str | Path, depth: np.ndarray | torch.Tensor, K: np.ndarray | torch.Tensor,
                      source_tcw: np.ndarray | torch.Tensor, kind: SceneKind,
                      fps: float | Fraction | None = None) -> SceneDepth:
    """Write ``<scene>/depth/`` (pass that folder; created if needed) as the official tools do.

    ``depth`` float ``(V, H, W)`` z-depth per view (``kind="image"``: ``convert_image``, unknown values
    stored as 0) or per frame (``kind="video"``: ``convert_video``, clip-wide range, written at ``fps``);
    ``K (V, 3, 3)`` pixels; ``source_tcw (V, 4, 4)`` world-to-camera, or ``(V, 3, 4)`` (padded with
    ``[0, 0, 0, 1]``). Returns what :func:`read_scene_depth` will decode.
    """
    depth = np.asarray(depth, dtype=np.float32)
    K = np.asarray(K, dtype=np.float32)
    tcw = np.asarray(source_tcw, dtype=np.float32)
    views = len(depth)
    if depth.ndim != 3 or not views or K.shape != (views, 3, 3) or tcw.shape[1:] not in ((3, 4), (4, 4)) or (
            len(tcw) != views):
        raise ValueError(f"expected depth (V, H, W), K (V, 3, 3) and source_tcw (V, 4, 4) with one V, got "
                         f"{depth.shape}, {K.shape}, {tcw.shape}")
    if tcw.shape[1] == 3:
        tcw = np.concatenate([tcw, np.broadcast_to(np.float32([[[0, 0, 0, 1]]]), (views, 1, 4))], axis=1)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "image":
        codes, depth_range = image_depth_codes(depth)
        for view in range(views):
            write_depth_png(folder / view_depth_name(view, views), codes[view])
    elif kind == "video":
        if fps is None:
            raise ValueError("a video scene's depth needs the scene fps")
        depth_range = parse_range(format_range(*video_depth_range(depth)))
        codes = encode_depth(depth, *depth_range)
        write_depth_video(folder / VIDEO_DEPTH_FILE, codes, fps)
    else:
        raise ValueError(f"kind must be 'image' or 'video', got {kind!r}")
    _write_text(folder / RANGE_FILE, format_range(*depth_range))
    save_matrix(folder / INTRINSICS_FILE, K)
    save_matrix(folder / POSES_FILE, tcw)
    return SceneDepth(codes=codes, depth_range=depth_range, K=torch.from_numpy(K), source_tcw=torch.from_numpy(tcw),
                      kind=kind)
