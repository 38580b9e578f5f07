"""Warp throughput at the model size (480x832): frames per second of the Lmax first pass and of the
forward splat, on CPU and on CUDA when present. Prints one line per device and chunk size.

Run: ``python benchmarks/bench_warp.py [--frames 24] [--chunk 12] [--threads N]``.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from inspatio_cli.choices import MODEL_SIZE
from inspatio_cli.warp import forward_warp, log_depth_max


def scene(frames: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Random colours, a box in front of a wall, and a yaw/translation per frame (an orbit-like path)."""
    h, w = MODEL_SIZE
    g = torch.Generator().manual_seed(0)
    depth = torch.full((frames, h, w), 5.0)
    depth[:, 120:360, 200:500] = 2.0
    K = torch.tensor([[600.0, 0, w / 2], [0, 600.0, h / 2], [0, 0, 1]]).expand(frames, 3, 3)
    target = torch.eye(4).repeat(frames, 1, 1)
    for i in range(frames):
        a = math.radians(0.5 * i)
        c, s = math.cos(a), math.sin(a)
        target[i, 0, 0], target[i, 0, 2], target[i, 2, 0], target[i, 2, 2] = c, -s, s, c
        target[i, 0, 3] = 0.02 * i
    data = {"frames": torch.rand(frames, 3, h, w, generator=g) * 2 - 1, "depth": depth,
            "source_w2c": torch.eye(4).repeat(frames, 1, 1), "target_w2c": target, "K": K.contiguous()}
    return {k: v.to(device) for k, v in data.items()}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(device: torch.device, frames: int, chunk: int) -> None:
    data = scene(frames, device)
    chunks = [{k: v[i:i + chunk] for k, v in data.items()} for i in range(0, frames, chunk)]
    forward_warp(**chunks[0])  # warm-up (allocations, CUDA kernels)
    sync(device)
    start = time.perf_counter()
    lmax = torch.stack([log_depth_max(c["depth"], c["source_w2c"], c["target_w2c"], c["K"]) for c in chunks]).max()
    sync(device)
    first_pass = time.perf_counter() - start
    start = time.perf_counter()
    for c in chunks:
        forward_warp(**c, lmax=lmax)
    sync(device)
    splat = time.perf_counter() - start
    h, w = MODEL_SIZE
    print(f"{device.type:4s} {h}x{w} chunk {chunk:3d}: Lmax pass {frames / first_pass:8.1f} frames/s, "
          f"warp {frames / splat:7.1f} frames/s, both {frames / (first_pass + splat):7.1f} frames/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--chunk", type=int, default=12)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s)")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        for chunk in sorted({1, args.chunk}):
            run(device, args.frames, chunk)


if __name__ == "__main__":
    main()
