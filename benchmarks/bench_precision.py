"""How far bfloat16 and float16 runs land from float32: the error of each model in each precision against
the official float32 outputs of the golden cases, and against our own float32 run for a reduced random
generator over several chunks. Prints figures; asserts nothing (tests/test_perf_equivalence.py holds
the documented bounds).

The golden cases come from ``INSPATIO_GOLDEN_DIR`` when set, else ``tests/golden/`` (cases missing from
both are skipped); each model is built as its golden check builds it (``tests/golden_checks``). Errors:
``max``, the largest absolute difference, and ``rel``, the relative RMS error ``||a - b|| / ||b||``.
These are random small models: the released weights may amplify rounding differently.

    python benchmarks/bench_precision.py
    INSPATIO_GOLDEN_DIR=../shared/golden python benchmarks/bench_precision.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from golden_checks import generator, taehv, vae  # noqa: E402
from golden_checks.common import GoldenCase, golden_path  # noqa: E402
from inspatio_cli.generate import ChunkInput, ReplayNoise, StarSampler  # noqa: E402
from inspatio_cli.models.dit import DiTConfig, random_generator  # noqa: E402

DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def errors(actual: torch.Tensor, expected: torch.Tensor) -> tuple[float, float]:
    """(max absolute, relative RMS) error of ``actual`` against ``expected``, in float64."""
    a, b = actual.detach().double(), expected.detach().double()
    return (a - b).abs().max().item(), ((a - b).norm() / b.norm()).item()


def dit_block(case: GoldenCase, dtype: torch.dtype) -> torch.Tensor:
    return generator._call(generator._model(case).to(dtype), case, "input.", None)


def dit_pipeline(case: GoldenCase, dtype: torch.dtype) -> torch.Tensor:
    model = generator._model(case).to(dtype)
    draws = [case[f"input.noise.{i:03d}"] for i in range(len(case.group("input.noise.")))]
    sampler = StarSampler(model, case["input.context"], noise=ReplayNoise(draws))
    ref, warped, mask = case["input.ref_latent"], case["input.render_latent"], case["input.mask_latent"]
    return torch.cat([sampler.step(ChunkInput(ref[:, i:i + 3], warped[:, i:i + 3], mask[:, i:i + 3]))
                      for i in range(0, ref.shape[1], 3)], dim=1)


CASES: dict[str, tuple[str, Callable[[GoldenCase, torch.dtype], torch.Tensor]]] = {
    "generator_dit_block": ("output.flow_pred", dit_block),
    "generator_pipeline": ("output.latents", dit_pipeline),
    "vae_encode": ("output.latent", lambda c, d: vae.build(c).to(d).encode(c["input.video"], tail="official")),
    "vae_decode": ("output.video", lambda c, d: vae.build(c).to(d).decode(c["input.latent"])),
    "taehv_encode": ("output.latent", lambda c, d: taehv.build(c).to(d).encode(c["input.video"], tail="official")),
    "taehv_decode": ("output.video", lambda c, d: taehv.build(c).to(d).decode(c["input.latent"]) * 0.5 + 0.5),
}


def golden_table() -> None:
    print(f"{'golden case':22s} {'dtype':9s} {'max':>10s} {'rel':>10s}")
    for name, (key, run) in CASES.items():
        path = golden_path(f"{name}.safetensors")
        if path is None:
            print(f"{name:22s} (not available)")
            continue
        case = GoldenCase(path)
        for dtype in DTYPES:
            with torch.no_grad():
                worst, rel = errors(run(case, dtype).float(), case[key])
            print(f"{name:22s} {str(dtype).removeprefix('torch.'):9s} {worst:10.3g} {rel:10.3g}")


def random_generator_table(chunks: int) -> None:
    """The reduced 'small' generator (4 layers, dim 512) over ``chunks`` chunks at a 16x26 latent."""
    cfg = DiTConfig(dim=512, ffn_dim=1536, num_heads=4, num_layers=4, text_dim=512, text_len=64)
    g = torch.Generator().manual_seed(0)
    text = torch.randn(1, cfg.text_len, cfg.text_dim, generator=g) * 0.1
    lat = lambda c: torch.randn(1, 3, c, 16, 26, generator=g)
    inputs = [ChunkInput(lat(16), lat(16), lat(4).sign()) for _ in range(chunks)]
    outs = {}
    for dtype in DTYPES:
        sampler = StarSampler(random_generator(cfg, dtype=dtype), text, seed=0)
        outs[dtype] = [sampler.step(c).float() for c in inputs]
    print("\nrandom generator 'small' (4 layers, dim 512), 16x26 latent, against our float32, per chunk:")
    for dtype in DTYPES[1:]:
        figures = ", ".join(f"{errors(a, b)[1]:.3g}" for a, b in zip(outs[dtype], outs[torch.float32]))
        print(f"  {str(dtype).removeprefix('torch.'):9s} rel {figures}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=4, help="chunks of the random generator")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    golden_table()
    random_generator_table(args.chunks)


if __name__ == "__main__":
    main()
