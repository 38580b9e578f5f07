"""Per-chunk latency and peak memory of the generator (STAR loop: 1 context pass + 4 denoising calls per
chunk of 3 latent frames), with random weights. Prints figures; asserts nothing.

Chunk 0 (3 context frames) and chunk 1 (6, as every later chunk) have different shapes, so with
``--compile`` both compile; the steady state is the mean from chunk 2 on.

    python benchmarks/bench_generator.py                          # CPU: reduced model, small latents
    python benchmarks/bench_generator.py --size 1.3b --device cuda --dtype bf16 --latent 60x104 --compile
    python benchmarks/bench_generator.py --size 1.3b --device cuda --sdpa cudnn,flash   # another SDPA order
"""

from __future__ import annotations

import argparse
import resource
import time
from dataclasses import replace

import torch

from inspatio_cli.generate import ChunkInput, StarSampler
from torch.nn.attention import SDPBackend

from inspatio_cli.models.dit import DTYPES, DiTConfig, random_generator

SIZES = {
    "tiny": DiTConfig(dim=128, ffn_dim=256, freq_dim=256, num_heads=4, num_layers=2, text_dim=64, text_len=16),
    "small": DiTConfig(dim=512, ffn_dim=1536, num_heads=4, num_layers=4, text_dim=512, text_len=64),
    "1.3b": DiTConfig(),
}
SDPA = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=SIZES, default="small")
    ap.add_argument("--layers", type=int, help="override the number of transformer blocks")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=DTYPES, default=None, help="default: bf16 on cuda, fp32 on cpu")
    ap.add_argument("--latent", default=None, help="latent HxW (default 60x104 on cuda, 16x26 on cpu)")
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads")
    ap.add_argument("--compile", nargs="?", const="inductor", default=None, metavar="BACKEND",
                    help="torch.compile the blocks (default backend inductor)")
    ap.add_argument("--sdpa", default=None, help="CUDA SDPA kernels in order, e.g. cudnn,flash,efficient,math")
    ap.add_argument("--no-cache-text", action="store_true")
    ap.add_argument("--no-preallocate", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    dtype = DTYPES[args.dtype or ("bf16" if cuda else "fp32")]
    h, w = map(int, (args.latent or ("60x104" if cuda else "16x26")).split("x"))
    cfg = SIZES[args.size] if args.layers is None else replace(SIZES[args.size], num_layers=args.layers)
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    start = time.perf_counter()
    model = random_generator(cfg, device=args.device, dtype=dtype)
    built = time.perf_counter() - start
    if args.sdpa:
        model.sdpa_backends = tuple(SDPA[name] for name in args.sdpa.split(","))
    text = torch.randn(1, cfg.text_len, cfg.text_dim, device=args.device, dtype=dtype) * 0.1
    sampler = StarSampler(model, text, seed=0, compile=args.compile or False, cache_text=not args.no_cache_text,
                          preallocate=not args.no_preallocate)
    g = torch.Generator(device=args.device).manual_seed(0)
    params = sum(p.numel() for p in model.parameters())
    print(f"model {args.size} ({params / 1e6:.1f} M params, {cfg.num_layers} layers, dim {cfg.dim}) on {args.device} "
          f"{dtype}, latent {h}x{w} ({model.tokens_per_frame(h, w)} tokens/frame), built in {built:.2f} s, "
          f"compiled: {sampler.compiled or 'no'}")

    times = []
    for i in range(args.chunks):
        lat = [torch.randn(1, 3, c, h, w, generator=g, device=args.device, dtype=dtype) for c in (16, 16, 4)]
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        sampler.step(ChunkInput(lat[0], lat[1], lat[2].sign()))
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        print(f"chunk {i}: {times[-1] * 1000:.1f} ms")
    steady = times[2:] or times[-1:]
    print(f"steady state: {sum(steady) / len(steady) * 1000:.1f} ms per chunk (3 latent frames = 12 video frames), "
          f"{12 * len(steady) / sum(steady):.2f} video frames/s")
    print(f"sampler state (KV buffer, context, previous chunk): {sampler.state_bytes / 2**20:.1f} MiB")
    if cuda:
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated() / 2**20:.1f} MiB "
              f"({torch.cuda.get_device_name()})")
    else:
        print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
