"""Seconds to plan and list a large batch (``inspatio batch --dry-run``): a generated manifest of ``--jobs``
lines over two videos and two trajectories, planned with :func:`plan_manifest` and listed as the dry run
lists it (the CLI's ``--json`` and human tables, written to a null stream), with the test suite's tiny
random checkpoints. Prints figures; asserts nothing. Planning must stay linear in the number of jobs: the
figure at ``--jobs N`` and at ``N/10`` should differ by about ten times.

    python benchmarks/bench_batch_plan.py                    # 100,000 jobs, then 10,000
    python benchmarks/bench_batch_plan.py --jobs 20000
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import write_tiny_weights  # noqa: E402
from media import make_clip, pattern  # noqa: E402
from test_preview_pipeline import H, ORBIT, W, planar_depth  # noqa: E402

from inspatio_cli.batch import JobDefaults, plan_manifest  # noqa: E402
from inspatio_cli.cli import batch as batch_cli  # noqa: E402
from inspatio_cli.progress import Reporter  # noqa: E402
from inspatio_cli.render.rerender import Rerenderer  # noqa: E402


def _inputs(folder: Path, jobs: int) -> Path:
    """Two clips with their depth, a trajectory file and a manifest of ``jobs`` lines naming them."""
    for seed, name in enumerate("ab"):
        make_clip(folder / f"{name}.mp4", pattern(12, H, W, seed=seed), fps=10)
        planar_depth(12).save(folder / f"{name}.depth.safetensors")
    (folder / "orbit.txt").write_text(ORBIT)
    manifest = folder / "jobs.jsonl"
    with manifest.open("w") as out:
        for n in range(jobs):
            out.write(json.dumps({"video": "ab"[n % 2] + ".mp4", "trajectory": ("orbit.txt", "dolly_in")[n // 2 % 2],
                                  "output": f"out/{n:06d}.mp4", "seed": n}) + "\n")
    return manifest


def measure(folder: Path, jobs: int, weights: Path) -> dict[str, float]:
    """Seconds to plan ``jobs`` jobs and to list them in each dry-run mode."""
    manifest = _inputs(folder, jobs)
    renderer = Rerenderer(weights_dir=weights, device="cpu", decoder="tae")
    figures = {}
    started = time.perf_counter()
    planned = plan_manifest(manifest, JobDefaults(prompt="x", size=(H, W)))
    figures["plan"] = time.perf_counter() - started
    for mode in ("json", "human"):
        sink = io.StringIO()
        started = time.perf_counter()
        with redirect_stdout(sink):
            batch_cli._show_plan(planned, planned, renderer, False, Reporter(mode, stdout=sink))
        figures[f"list ({mode})"] = time.perf_counter() - started
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["INSPATIO_CACHE_DIR"] = str(root / "cache")
        weights = root / "weights"
        write_tiny_weights(weights)
        for jobs in (args.jobs, args.jobs // 10):
            folder = root / f"n{jobs}"
            folder.mkdir()
            figures = measure(folder, jobs, weights)
            print(f"{jobs:>8,} jobs: " + ", ".join(f"{k} {v:.2f} s" for k, v in figures.items())
                  + f" ({sum(figures.values()) / jobs * 1e6:.0f} us/job)", flush=True)


if __name__ == "__main__":
    main()
