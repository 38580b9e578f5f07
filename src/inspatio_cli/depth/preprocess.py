"""Depth-Anything-3 input preprocessing: the official 504 "upper bound" resize, without OpenCV.

The official ``InputProcessor`` resizes each uint8 RGB frame twice with ``cv2.resize``: the longest side to
``process_res`` (``INTER_AREA`` when shrinking, ``INTER_CUBIC`` when enlarging), then each side to the nearest
multiple of 14 (``INTER_CUBIC`` if either side grows, else ``INTER_AREA``), and normalises with the ImageNet
mean/std. This module reproduces both OpenCV filters on uint8 data in numpy, so the tool does not depend on
OpenCV:

* ``INTER_CUBIC``: Keys cubic (A = -0.75) weights sampled at ``(d + 0.5) * src/dst - 0.5`` (the position
  rounded to float32 as OpenCV does), border pixels replicated, horizontal pass then vertical pass, rounded
  to nearest and saturated to [0, 255]. Computed in float64.
* ``INTER_AREA`` when shrinking is the box-overlap average (each destination pixel averages the source
  area it covers, partial pixels weighted by their covered fraction), accumulated in float32 in OpenCV's
  order and rounded to nearest.

Against ``cv2.resize`` (OpenCV 5.0, the golden files) every pixel agrees within one uint8 level (the golden
tolerance); the only differences are values within about 1e-4 of a rounding tie (about 1 value in 20,000).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

PATCH = 14
PROCESS_RES = 504
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_CUBIC_A = -0.75


@lru_cache(maxsize=64)
def _cubic_weights(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """Cubic taps for one axis: the first of four source indices per output (``(dst,)`` int64) and the
    Keys weights (``(dst, 4)`` float64) at OpenCV's sample positions ``(d + 0.5) * src/dst - 0.5``."""
    pos = ((np.arange(dst, dtype=np.float64) + 0.5) * (1.0 / (dst / src)) - 0.5).astype(np.float32)
    start = np.floor(pos)
    x = (pos - start).astype(np.float64)
    a = _CUBIC_A
    w0 = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a
    w1 = ((a + 2) * x - (a + 3)) * x * x + 1
    w2 = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1
    return start.astype(np.int64) - 1, np.stack([w0, w1, w2, 1 - w0 - w1 - w2], axis=1)


def _resize_cubic(img: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """uint8 ``(H, W, C)`` -> uint8 ``out_hw``: separable cubic (horizontal, then vertical), border
    replicated, rounded to nearest and saturated."""
    h, w = img.shape[:2]
    x0, wx = _cubic_weights(w, out_hw[1])
    y0, wy = _cubic_weights(h, out_hw[0])
    cols = np.clip(x0[:, None] + np.arange(4), 0, w - 1)
    rows = np.clip(y0[:, None] + np.arange(4), 0, h - 1)
    horiz = np.einsum("hwkc,wk->hwc", img.astype(np.float64)[:, cols], wx)
    out = np.einsum("hkwc,hk->hwc", horiz[rows], wy)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@lru_cache(maxsize=64)
def _area_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's shrinking ``INTER_AREA`` taps for one axis: source indices ``(dst, K)`` int64 and float32
    weights ``(dst, K)`` (each output averages the source cells it covers, partial cells by their covered
    fraction; unused taps have weight 0), in the order OpenCV accumulates them."""
    scale = 1.0 / (dst / src)
    taps: list[list[tuple[int, float]]] = []
    for d in range(dst):
        lo = d * scale
        hi = lo + scale
        cell = min(scale, src - lo)
        last = min(math.floor(hi), src - 1)
        first = min(math.ceil(lo), last)
        row = [(first - 1, (first - lo) / cell)] if first - lo > 1e-3 else []
        row += [(s, 1.0 / cell) for s in range(first, last)]
        if hi - last > 1e-3:
            row.append((last, min(hi - last, 1.0, cell) / cell))
        taps.append(row)
    k = max(len(row) for row in taps)
    index = np.zeros((dst, k), dtype=np.int64)
    weight = np.zeros((dst, k), dtype=np.float32)
    for d, row in enumerate(taps):
        for j, (s, a) in enumerate(row):
            index[d, j], weight[d, j] = s, a
    return index, weight


def _resize_area(img: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """uint8 ``(H, W, C)`` -> uint8 ``out_hw`` (no side larger than the input) by area averaging, summed in
    float32 in OpenCV's order (horizontal taps per row, then rows) so that rounding ties fall the same way."""
    xi, xw = _area_taps(img.shape[1], out_hw[1])
    yi, yw = _area_taps(img.shape[0], out_hw[0])
    src = img.astype(np.float32)
    rows = np.zeros((img.shape[0], out_hw[1], img.shape[2]), dtype=np.float32)
    for j in range(xi.shape[1]):
        rows += src[:, xi[:, j]] * xw[None, :, j, None]
    out = np.zeros((out_hw[0], out_hw[1], img.shape[2]), dtype=np.float32)
    for j in range(yi.shape[1]):
        out += yw[:, j, None, None] * rows[yi[:, j]]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def resize_uint8(img: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Resize a uint8 ``(H, W, 3)`` image as the official code does: area when no side grows, else cubic."""
    h, w = img.shape[:2]
    if (h, w) == tuple(out_hw):
        return img
    if out_hw[0] > h or out_hw[1] > w:
        return _resize_cubic(img, out_hw)
    return _resize_area(img, out_hw)


def _nearest_multiple(x: int, m: int = PATCH) -> int:
    down = (x // m) * m
    up = down + m
    return up if up - x <= x - down else max(down, m)


def process_sizes(src_hw: tuple[int, int], process_res: int = PROCESS_RES) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(size1, size)``: the size after the longest-side resize and the final multiple-of-14 size (H, W).

    ``round`` is Python's round-half-to-even on the float64 product (640x280 -> 220, not 221), as upstream.
    """
    h0, w0 = map(int, src_hw)
    longest = max(h0, w0)
    if longest == process_res:
        size1 = (h0, w0)
    else:
        s = process_res / longest
        size1 = (max(1, round(h0 * s)), max(1, round(w0 * s)))
    return size1, (_nearest_multiple(size1[0]), _nearest_multiple(size1[1]))


def resize_for_model(frame: np.ndarray, process_res: int = PROCESS_RES) -> np.ndarray:
    """uint8 ``(H0, W0, 3)`` RGB -> uint8 ``(H, W, 3)`` with H, W multiples of 14 (the official two resizes)."""
    size1, size = process_sizes(frame.shape[:2], process_res)
    return resize_uint8(resize_uint8(frame, size1), size)


def normalize(frames_u8: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 ``(S, H, W, 3)`` RGB -> float32 ``(S, 3, H, W)`` ``(u8/255 - mean)/std`` (ImageNet statistics)."""
    x = torch.as_tensor(np.ascontiguousarray(frames_u8)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean) / std
