"""The depth cache: per-frame depth, intrinsics and source camera poses of one video, as one file.

A :class:`DepthResult` is what the depth stage produces and what the warp consumes. It is saved as a
``.safetensors`` file (tensors ``depth``, ``K``, ``c2w`` and optionally ``confidence``, plus string
metadata) so previews and reruns with other trajectories never run the depth model again. A path ending in
``.safetensors.gz`` holds the same bytes gzip-compressed (depth maps of synthetic or smooth scenes shrink
many times; the bundled example uses it), and depth may be stored as float16 (relative precision 5e-4).
An uncompressed file is memory-mapped when loaded: a frame's depth is read from disk when the warp uses
it, so the depth of a long video costs no memory (a ``.gz`` file is decompressed into memory: keep those
for short clips).

Next to a video ``clip.mp4``, a file ``clip.depth.safetensors`` (or ``.safetensors.gz``) is its sidecar
depth: :func:`find_sidecar` finds it, and preview/rerender use it when no depth file is given.

Conventions: depth is z-depth along the camera's optical axis, in the depth model's units (metres for
the metric models); ``K`` is in pixels of the model resolution; ``c2w`` are OpenCV camera-to-world poses
(x right, y down, z forward) normalised so frame 0 is (close to) the identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import gzip
import json
import math
import os
import struct
import zlib
from typing import BinaryIO, Iterator

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes

from ..errors import DepthError
from ..files import LOOP, atomic_output, link_loop
from .sidecar import find_sidecar

__all__ = ["DepthResult", "find_sidecar"]


FORMAT = "inspatio-depth"
FORMAT_VERSION = "1"
BLOCK_FRAMES = 16
"""Frames checked, converted or written at a time (validate, describe, save): no full-size temporaries."""
DESCRIBE_FRAMES = 16
"""Frames whose depth values give the median in :meth:`DepthResult.describe`."""
_SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float16: "F16"}
"""How a depth file stores its tensors."""
MAX_HEADER_BYTES = 100 << 20
"""The largest header read (as the safetensors library's own limit): a depth file's is a few hundred bytes."""
_NUMPY_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16}
"""Safetensors dtypes an uncompressed depth file may hold; anything else is not a depth file."""


@dataclass
class DepthResult:
    """Depth ``(T, H, W)`` > 0 (float32, or float16 as stored in a file), ``K (T, 3, 3)``, source
    ``c2w (T, 4, 4)`` and metadata.

    ``meta`` keys used by the tool: ``model`` (depth model name), ``units`` (``"metric"`` or
    ``"relative"``), ``video_hash`` (see :func:`inspatio_cli.files.fingerprint_file`), ``fit``
    (stretch|crop|pad), ``settings`` (a string identifying the depth settings, for cache keys). A file
    made by ``inspatio scene import`` (:mod:`inspatio_cli.interchange`) also records ``import_format`` and
    ``import_source`` (what it was converted from), ``import_convention`` and ``import_direction`` (the
    source's pose axes and c2w/w2c, converted to OpenCV c2w), ``import_anchor`` (the source's first
    camera-to-world pose, 16 numbers: imported poses are relative to it, and exports restore it),
    ``unknown_depth`` (how many pixels had no depth: they hold the frame's largest depth with confidence
    0), ``scene_kind`` (``image``/``video``, for v1.5 scenes) and, for COLMAP models, ``import_scale`` (the
    factor applied to the model's depth to reach the COLMAP units), ``import_scale_points`` and
    ``import_scale_spread`` (how many observations gave it, and their median relative deviation).
    """

    depth: torch.Tensor
    K: torch.Tensor
    c2w: torch.Tensor
    confidence: torch.Tensor | None = None
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.depth.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the depth maps, i.e. the model resolution."""
        return int(self.depth.shape[1]), int(self.depth.shape[2])

    def validate(self, path: str | Path | None = None) -> "DepthResult":
        """Check shapes, dtypes and values; raise :class:`DepthError` naming ``path`` and the problem."""
        d, K, c2w = self.depth, self.K, self.c2w
        if d.ndim != 3 or d.shape[0] < 1:
            raise DepthError(f"depth must have shape (T, H, W), got {tuple(d.shape)}", path)
        t = d.shape[0]
        if tuple(K.shape) != (t, 3, 3):
            raise DepthError(f"K must have shape ({t}, 3, 3), got {tuple(K.shape)}", path)
        if tuple(c2w.shape) != (t, 4, 4):
            raise DepthError(f"c2w must have shape ({t}, 4, 4), got {tuple(c2w.shape)}", path)
        if self.confidence is not None and self.confidence.shape != d.shape:
            raise DepthError(f"confidence must match depth {tuple(d.shape)}, got {tuple(self.confidence.shape)}", path)
        for name, tensor in (("depth", d), ("K", K), ("c2w", c2w)):
            if not tensor.is_floating_point():
                raise DepthError(f"{name} must be floating point, got {tensor.dtype}", path)
            for start, block in _blocks(tensor):
                bad = ~torch.isfinite(block)
                if bad.any():
                    raise DepthError(f"{name} has non-finite values (first at frame {start + _first(bad)})", path)
        count, first = 0, 0
        for start, block in _blocks(d):
            bad = block <= 0
            found = int(bad.sum())
            first, count = (start + _first(bad) if found and not count else first), count + found
        if count:
            raise DepthError(f"depth must be positive; {count} value(s) <= 0 (first at frame {first})", path)
        if (K[:, 0, 0] <= 0).any() or (K[:, 1, 1] <= 0).any():
            raise DepthError("K has a non-positive focal length", path)
        last = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=c2w.dtype)
        if not torch.allclose(c2w[:, 3], last.expand(t, 4), atol=1e-5):
            raise DepthError("c2w matrices must end with the row [0, 0, 0, 1]", path)
        rot = c2w[:, :3, :3].double()
        eye = torch.eye(3, dtype=torch.float64).expand(t, 3, 3)
        if not torch.allclose(rot @ rot.transpose(1, 2), eye, atol=1e-3):
            raise DepthError("c2w rotations are not orthonormal", path)
        mirrored = torch.linalg.det(rot) < 0
        if mirrored.any():
            raise DepthError(f"c2w rotations are mirrored (determinant -1, first at frame {_first(mirrored[:, None])}); "
                             "poses must be proper rotations", path)
        return self

    def check_matches(self, num_frames: int, size: tuple[int, int], path: str | Path | None = None) -> None:
        """Raise :class:`DepthError` unless this result covers ``num_frames`` frames at ``size`` (H, W)."""
        if self.num_frames != num_frames:
            raise DepthError(f"depth has {self.num_frames} frames but the video has {num_frames}", path)
        if self.size != tuple(size):
            raise DepthError(f"depth is {self.size[0]}x{self.size[1]} but the model size is "
                             f"{size[0]}x{size[1]}", path)

    def save(self, path: str | Path, *, depth_dtype: torch.dtype = torch.float32) -> Path:
        """Validate and write atomically to ``path`` (``.safetensors``, or ``.safetensors.gz`` for a
        gzip-compressed file). ``depth_dtype=torch.float16`` halves the depth maps' size. The maps are
        written a block of frames at a time: saving makes no full-size copy of them."""
        self.validate(path)
        if depth_dtype not in _SAFETENSORS_DTYPES:
            raise ValueError(f"depth can be stored as float32 or float16, not {depth_dtype}")
        tensors = {"depth": (self.depth, depth_dtype), "K": (self.K, torch.float32), "c2w": (self.c2w, torch.float32)}
        if self.confidence is not None:
            tensors["confidence"] = (self.confidence, depth_dtype)
        meta = {str(k): str(v) for k, v in self.meta.items()}
        meta.update(format=FORMAT, format_version=FORMAT_VERSION)
        with atomic_output(path) as tmp, open(tmp, "wb") as raw:
            if _compressed(path):
                with gzip.GzipFile(filename="", mode="wb", compresslevel=6, fileobj=raw, mtime=0) as packed:
                    _write_safetensors(packed, tensors, meta)
            else:
                _write_safetensors(raw, tensors, meta)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "DepthResult":
        """Read and validate a depth cache file; every problem is a one-line :class:`DepthError`. The
        maps of an uncompressed file stay on disk (memory-mapped, in their stored precision) until used."""
        p = Path(path)
        if not p.is_file():
            raise DepthError(LOOP if link_loop(p) else "no such depth file" if not p.exists() else "not a file", p)
        try:
            if _compressed(p):
                data = _decompress(p)
                tensors, meta = load_bytes(data), _header_metadata(data)
            else:
                tensors, meta = _map_safetensors(p)
        except RecursionError:
            raise DepthError("not a readable depth file (its header is too deeply nested)", p) from None
        except (SafetensorError, OSError, ValueError, EOFError, zlib.error, struct.error) as exc:
            raise DepthError(f"not a readable depth file ({' '.join(str(exc).split())[:160]})", p) from None
        missing = [k for k in ("depth", "K", "c2w") if k not in tensors]
        if missing:
            raise DepthError(f"missing tensor(s) {', '.join(missing)}; expected depth, K, c2w", p)
        if meta.get("format", FORMAT) != FORMAT:
            raise DepthError(f"unknown format {meta.get('format')!r}", p)
        result = cls(depth=tensors["depth"], K=tensors["K"].float(), c2w=tensors["c2w"].float(),
                     confidence=tensors.get("confidence"),
                     meta={k: v for k, v in meta.items() if k not in ("format", "format_version")})
        return result.validate(p)

    def describe(self) -> dict:
        """Summary for ``--json`` and logs: frames, size, depth range and the median depth of up to
        :data:`DESCRIBE_FRAMES` evenly spaced frames (the whole clip is never held at once), metadata."""
        d = self.depth
        low, high = zip(*((float(b.min()), float(b.max())) for _, b in _blocks(d)))
        sample = d[torch.linspace(0, self.num_frames - 1, min(self.num_frames, DESCRIBE_FRAMES)).round().long()]
        return {"frames": self.num_frames, "size": list(self.size), "depth_min": min(low),
                "depth_median": float(sample.float().median()), "depth_max": max(high), **self.meta}


def _compressed(path: str | Path) -> bool:
    return str(path).endswith(".gz")


def _first(bad: torch.Tensor) -> int:
    """Index of the first frame (along dim 0) of a boolean block that has a True value."""
    return int(bad.flatten(1).any(1).nonzero()[0, 0])


def _blocks(maps: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
    """``(first frame, maps[first:first + BLOCK_FRAMES])``: checks over a clip without full-size temporaries."""
    for start in range(0, maps.shape[0], BLOCK_FRAMES):
        yield start, maps[start:start + BLOCK_FRAMES]


def _write_safetensors(out: BinaryIO, tensors: dict[str, tuple[torch.Tensor, torch.dtype]],
                       meta: dict[str, str]) -> None:
    """Write ``name -> (tensor, dtype to store)`` and ``meta`` in the safetensors layout (little-endian
    header size, JSON header padded to 8 bytes, then each tensor's bytes in header order), converting and
    writing :data:`BLOCK_FRAMES` frames at a time."""
    header: dict[str, object] = {}
    offset = 0
    for name, (tensor, dtype) in sorted(tensors.items()):
        size = tensor.numel() * dtype.itemsize
        header[name] = {"dtype": _SAFETENSORS_DTYPES[dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = meta
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    out.write(struct.pack("<Q", len(text)) + text)
    for _, (tensor, dtype) in sorted(tensors.items()):
        for _, block in _blocks(tensor):
            out.write(block.to(dtype).contiguous().numpy().tobytes())  # little-endian hosts, as safetensors


def _header(fh: BinaryIO, size: int | None) -> tuple[int, dict]:
    """The header size and JSON header at the start of a safetensors stream ``fh`` of ``size`` bytes (None:
    unknown, a decompressing stream); ValueError for a header larger than the file or than
    :data:`MAX_HEADER_BYTES`, or that is not a JSON object (RecursionError for absurd nesting)."""
    (header_size,) = struct.unpack("<Q", fh.read(8))
    if header_size > MAX_HEADER_BYTES or (size is not None and header_size > size - 8):
        raise ValueError(f"the header claims {header_size} bytes" + (f" of a {size}-byte file" if size else ""))
    header = json.loads(fh.read(header_size))
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    return header_size, header


def _decompress(path: Path) -> bytes:
    """The safetensors bytes of a ``.safetensors.gz`` file, decompressed no further than the size its header
    promises (header plus the last tensor's end): a file that expands beyond that (a gzip bomb) or promises
    more than this machine's memory is refused (ValueError) before it fills the memory."""
    with gzip.open(path, "rb") as fh:
        header_size, header = _header(fh, None)
        ends = [info.get("data_offsets", [0, 0])[1] for name, info in header.items()
                if name != "__metadata__" and isinstance(info, dict)]
        promised = 8 + header_size + max((e for e in ends if isinstance(e, int)), default=0)
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
        if memory and promised > memory // 2:
            raise ValueError(f"it would decompress to {promised / 2**30:.1f} GiB, more than half of this machine's "
                             "memory; store it uncompressed (.safetensors), which is read from disk as needed")
        fh.seek(0)
        data = fh.read(promised)
        if fh.read(1):
            raise ValueError(f"it decompresses to more than the {promised} bytes its header promises")
    return data


def _map_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors of an uncompressed safetensors file over a copy-on-write memory map (nothing is read
    until used; writing to them never changes the file), and its metadata. Raises ValueError (and the
    errors of reading the header) for a file that does not hold what its header says."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        header_size, header = _header(fh, size)
    meta = header.pop("__metadata__", None) or {}
    tensors = {}
    for name, info in header.items():
        try:
            dtype, shape, (start, end) = _NUMPY_DTYPES[info["dtype"]], tuple(info["shape"]), info["data_offsets"]
            if not all(type(n) is int for n in (*shape, start, end)):
                raise TypeError
            count = math.prod(shape)
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"tensor {name!r}: a malformed or unsupported entry {str(info)[:80]}") from None
        if min(shape, default=0) < 0 or not 0 <= start <= end or end - start != count * np.dtype(dtype).itemsize \
                or 8 + header_size + end > size:
            raise ValueError(f"tensor {name!r}: offsets {start}..{end} do not hold its shape {list(shape)}")
        array = (np.zeros(shape, dtype) if count == 0 else
                 np.memmap(path, dtype=dtype, mode="c", offset=8 + header_size + start, shape=shape))
        tensors[name] = torch.from_numpy(array)
    return tensors, {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def _header_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors byte string (8-byte little-endian header size, JSON header)."""
    (size,) = struct.unpack("<Q", data[:8])
    return dict(json.loads(data[8:8 + size]).get("__metadata__") or {})
