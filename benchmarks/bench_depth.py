"""Depth stage speed (seconds per frame) and peak memory by DA3 model and window size.

The released architectures are built with random weights (speed and memory do not depend on the values)
and run through :func:`inspatio_cli.depth.estimate.estimate_depth` on random frames of the given source
size, exactly as the pipeline runs them: 504 preprocessing, windows chained by Sim(3), canvas mapping and
smoothing. Each measurement runs in a fresh process: "peak" is the peak allocated GPU memory above the
weights on CUDA, or the growth of the peak resident memory (Linux ``ru_maxrss``) on CPU.

Run: ``python benchmarks/bench_depth.py [--models small-metric base-metric nested-giant-large]
[--windows 16 32 64] [--frames 64] [--source 1080 1920] [--device cuda] [--dtype auto]``.
On a 2-core CPU try ``--models small --windows 4 8 --frames 8 --source 280 504``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time

import numpy as np
import torch

from inspatio_cli.choices import MODEL_SIZE
from inspatio_cli.depth.catalog import depth_model
from inspatio_cli.depth.da3 import build
from inspatio_cli.depth.estimate import estimate_depth
from inspatio_cli.devices import DEPTH_DTYPE_NAMES, resolve_dtype
from inspatio_cli.video import Fit


def _peak(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(model: str, window: int, frames: int, source: tuple[int, int], device_name: str, dtype: str,
            threads: int) -> tuple[float, int]:
    """(seconds per frame, peak bytes above the weights) of one estimate, in this process."""
    torch.set_num_threads(threads)
    device = torch.device(device_name)
    with torch.device("meta"):
        net = build(depth_model(model).config)
    net = net.to_empty(device=device).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.02)
    rng = np.random.default_rng(0)
    video = [rng.integers(0, 256, (*source, 3), dtype=np.uint8) for _ in range(frames)]
    fit = Fit.make(source, MODEL_SIZE, "stretch")
    prec = resolve_dtype(dtype, device, allowed=DEPTH_DTYPE_NAMES)
    estimate_depth(iter(video[:2]), net, fit, window=2, dtype=prec, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device) if device.type == "cuda" else _peak(device)
    start = time.perf_counter()
    estimate_depth(iter(video), net, fit, window=window, dtype=prec, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / frames, _peak(device) - base


def _worker(args: tuple, queue: multiprocessing.Queue) -> None:
    queue.put(measure(*args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["small-metric", "base-metric", "nested-giant-large"])
    parser.add_argument("--windows", nargs="+", type=int, default=[16, 32, 64])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--source", nargs=2, type=int, default=[1080, 1920], metavar=("H", "W"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="auto", help="auto, bf16 or fp32")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    print(f"device {args.device}, source {args.source[0]}x{args.source[1]}, {args.frames} frames, "
          f"dtype {args.dtype}")
    print(f"{'model':<20} {'window':>6} {'s/frame':>9} {'peak MB':>9}")
    for model in args.models:
        for window in args.windows:
            queue = ctx.Queue()
            proc = ctx.Process(target=_worker, args=((model, window, args.frames, tuple(args.source),
                                                      args.device, args.dtype, args.threads), queue))
            proc.start()
            proc.join()
            if proc.exitcode != 0:
                print(f"{model:<20} {window:>6} {'failed (exit ' + str(proc.exitcode) + ')':>19}")
                continue
            seconds, peak = queue.get()
            print(f"{model:<20} {window:>6} {seconds:>9.3f} {peak / 2 ** 20:>9.0f}")


if __name__ == "__main__":
    main()
