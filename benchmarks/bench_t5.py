"""umT5 encoder time per prompt at the XXL width: ``encode_ids`` (runs only up to the last real token) against
the full 512-position forward the official wrapper runs, for a few prompt lengths, on CPU and CUDA when
present. Random weights; ``--layers`` runs fewer than the 24 blocks (time scales linearly with depth) so
it fits a small machine. Prints one line per device, dtype and prompt length.

Run: ``python benchmarks/bench_t5.py [--layers 2] [--threads N] [--lengths 16 77 512]``.
"""

from __future__ import annotations

import argparse
import time

import torch

from inspatio_cli.models.t5 import T5Config, T5Encoder


def build(layers: int, device: torch.device, dtype: torch.dtype) -> T5Encoder:
    """XXL-width encoder with ``layers`` blocks and a small vocabulary (the lookup costs nothing)."""
    with torch.device("meta"):
        model = T5Encoder(T5Config(vocab_size=1024, encoder_layers=layers))
    model = model.to_empty(device=device).to(dtype).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
    return model


def timed(fn, device: torch.device, repeats: int) -> float:
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 77, 512])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        for dtype in (torch.bfloat16, torch.float32):
            model = build(args.layers, device, dtype)
            for length in args.lengths:
                mask = (torch.arange(512, device=device) < length).long()[None]
                ids = torch.randint(2, 1024, (1, 512), device=device) * mask
                trimmed = timed(lambda m=model: m.encode_ids(ids, mask), device, args.repeats)
                with torch.no_grad():
                    full = timed(lambda m=model: m(ids, mask), device, args.repeats)
                per24 = 24 / args.layers
                print(f"{device.type:4s} {str(dtype).removeprefix('torch.'):8s} tokens {length:3d}: encode_ids "
                      f"{trimmed * 1e3:8.1f} ms, full 512 forward {full * 1e3:8.1f} ms for {args.layers} layers "
                      f"(24 layers: ~{trimmed * per24:.2f} s vs ~{full * per24:.2f} s)", flush=True)
            del model


if __name__ == "__main__":
    main()
