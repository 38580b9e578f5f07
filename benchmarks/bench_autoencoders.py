"""Encode and decode speed (frames/s) and peak memory of the Wan2.1 VAE and TAEHV at the model size
480x832, real widths, random weights, streamed as the pipeline does: frames fed 4 at a time (after frame 0),
latents fed 3 at a time (one generator chunk). On CPU and on CUDA when present.

Each measurement runs in a fresh process, so "peak" is that process's own peak: on CUDA the peak
allocated GPU memory above the model, on CPU the peak resident memory above the model and inputs (Linux
``ru_maxrss``). "cache" is the streams' per-layer state, which stays constant however long the clip is.
The dtypes default to production (VAE bfloat16, TAEHV float16) on CUDA and float32 on CPU.

``--channels-last`` stores the convolution weights channels-last (4-D ``channels_last``, 5-D
``channels_last_3d``), so the convolutions run in that layout: to measure whether it pays on a GPU. On the
2-core CPU it changed little (Conv3d 96 channels at 96x160: 164 -> 138 ms, small ones slower) and moves
float32 results by up to ~1e-3 (another summation order), so the models do not use it by default.

Run: ``python benchmarks/bench_autoencoders.py [--latents 6] [--size 480 832] [--threads 2] [--devices cpu cuda]
[--channels-last]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time

import torch

from inspatio_cli.models.streaming import frame_count
from inspatio_cli.models.tae import TAEHV
from inspatio_cli.models.vae import WanVAE

PRODUCTION = {"vae": torch.bfloat16, "tae": torch.float16}


def build(name: str, device: torch.device, dtype: torch.dtype, channels_last: bool = False) -> torch.nn.Module:
    """The release-width model with random weights of a moderate spread."""
    with torch.device("meta"):
        model = WanVAE() if name == "vae" else TAEHV()
    model = model.to_empty(device=device).to(dtype).eval().requires_grad_(False)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 1 / (p[0].numel() if p.ndim > 1 else 10) ** 0.5)
            if channels_last and p.ndim in (4, 5):
                layout = torch.channels_last if p.ndim == 4 else torch.channels_last_3d
                p.data = p.data.contiguous(memory_format=layout)
    return model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_start(device: torch.device) -> int:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _peak_end(device: torch.device, start: int) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) - start
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - start


def measure(name: str, op: str, device_name: str, dtype_name: str, latents: int, size: tuple[int, int],
            threads: int, warmup: bool, channels_last: bool = False) -> tuple[float, int, int, int]:
    """(seconds, frames, peak bytes, cache bytes) of one streamed encode or decode, in this process."""
    torch.set_num_threads(threads)
    device, dtype = torch.device(device_name), getattr(torch, dtype_name)
    model = build(name, device, dtype, channels_last)
    frames = frame_count(latents)
    torch.manual_seed(0)
    video = torch.rand(1, 3, frames, *size, device=device) * 2 - 1
    z = torch.randn(1, latents, 16, size[0] // 8, size[1] // 8, device=device)

    def run():
        if op == "encode":
            stream = model.stream_encoder()
            stream.feed(video[:, :, :1])
            for start in range(1, frames, 4):
                stream.feed(video[:, :, start:start + 4])
            cache = stream.state_bytes()
            stream.finish()
        else:
            stream = model.stream_decoder()
            for start in range(0, latents, 3):
                stream.feed(z[:, start:start + 3])
            cache = stream.state_bytes()
        return cache

    if warmup:
        run()
    _sync(device)
    start_mem = _peak_start(device)
    start = time.perf_counter()
    cache = run()
    _sync(device)
    return time.perf_counter() - start, frames, _peak_end(device, start_mem), cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latents", type=int, default=6, help="latent frames (1 + 4(F-1) video frames)")
    parser.add_argument("--size", type=int, nargs=2, default=[480, 832], metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["vae", "tae"], choices=["vae", "tae"])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when present")
    parser.add_argument("--float32", action="store_true", help="float32 on CUDA too")
    parser.add_argument("--channels-last", action="store_true", help="convolution weights channels-last")
    args = parser.parse_args()
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    context = multiprocessing.get_context("spawn")
    for device in devices:
        for name in args.models:
            dtype = torch.float32 if device == "cpu" or args.float32 else PRODUCTION[name]
            for op in ("encode", "decode"):
                with context.Pool(1) as pool:
                    seconds, frames, peak, cache = pool.apply(measure, (
                        name, op, device, str(dtype).removeprefix("torch."), args.latents, tuple(args.size),
                        args.threads, device == "cuda", args.channels_last))
                print(f"{device:4s} {name} {str(dtype).removeprefix('torch.'):8s} {op:6s} {frames:3d} frames "
                      f"{args.size[0]}x{args.size[1]}: {frames / seconds:7.2f} frames/s ({seconds:6.2f} s), "
                      f"peak {peak / 2**20:8.0f} MiB, cache {cache / 2**20:6.1f} MiB", flush=True)


if __name__ == "__main__":
    main()
