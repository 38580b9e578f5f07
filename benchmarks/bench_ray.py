"""Jobs per second of a local batch (:func:`run_jobs`, one process) against the Ray pool (``--ray local``,
:func:`run_on_ray`) on the same manifest, with the test suite's tiny random checkpoints. Prints figures;
asserts nothing and has no target: on a 2-core CPU the pool mostly shows its own costs (a cluster to start,
a process and a model load per worker), on a machine with several GPUs it shows the scaling.

    python benchmarks/bench_ray.py                          # 8 jobs of 20 frames at 48x80, 2 workers
    python benchmarks/bench_ray.py --jobs 16 --workers 4 --frames 40

Both runs start from empty caches (the prompt is embedded and no depth is estimated: every clip has its
depth file). The Ray figure excludes the cluster's start, printed on its own. Each Ray worker runs PyTorch
on one thread (Ray sets ``OMP_NUM_THREADS=1`` for a 1-CPU actor); the local batch uses ``--threads``
(default 1, the same per process; more threads on a shared machine can be much slower).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import write_tiny_weights  # noqa: E402
from media import make_clip, pattern  # noqa: E402
from test_preview_pipeline import H, ORBIT, W, planar_depth  # noqa: E402

from inspatio_cli.batch import JobDefaults, RayOptions, plan_manifest, run_jobs, run_on_ray  # noqa: E402
from inspatio_cli.render.rerender import Rerenderer  # noqa: E402

TRAJECTORIES = ("orbit.txt", "dolly_in", "orbit_left", "dolly_out")


def manifest(root: Path, jobs: int, frames: int) -> Path:
    """``jobs`` jobs: clips of ``frames`` frames (each with its depth file) x the trajectories."""
    (root / "orbit.txt").write_text(ORBIT)
    lines = ["video,trajectory"]
    for index in range(jobs):
        video = root / f"clip{index // len(TRAJECTORIES)}.mp4"
        if not video.exists():
            make_clip(video, pattern(frames, H, W, seed=index), fps=10)
            planar_depth(frames).save(video.with_suffix(".depth.safetensors"))
        lines.append(f"{video.name},{TRAJECTORIES[index % len(TRAJECTORIES)]}")
    path = root / "jobs.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads of the local batch")
    args = parser.parse_args()
    import ray
    import torch

    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        weights = root / "weights"
        write_tiny_weights(weights)
        jobs_file = manifest(root, args.jobs, args.frames)
        renderer_args = dict(weights_dir=weights, device="cpu", decoder="tae")
        defaults = JobDefaults(prompt="a room", size=(H, W))
        print(f"{args.jobs} jobs of {args.frames} frames at {H}x{W}, tiny random models, CPU "
              f"({os.cpu_count()} cores)")

        os.environ["INSPATIO_CACHE_DIR"] = str(root / "cache-local")
        started = time.perf_counter()
        summary = run_jobs(plan_manifest(jobs_file, defaults, output=root / "local"), Rerenderer(**renderer_args))
        seconds = time.perf_counter() - started
        print(f"local batch (1 process, {args.threads} thread(s)): {summary.count('done')} jobs in {seconds:.1f} s = "
              f"{summary.count('done') / seconds:.2f} jobs/s (models loaded once)")

        os.environ["INSPATIO_CACHE_DIR"] = str(root / "cache-ray")
        started = time.perf_counter()
        ray.init(num_cpus=max(os.cpu_count() or 1, args.workers), include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        print(f"ray local: cluster started in {time.perf_counter() - started:.1f} s")
        try:
            started = time.perf_counter()
            summary = run_on_ray(plan_manifest(jobs_file, defaults, output=root / "ray"), renderer_args,
                                 RayOptions("local", workers=args.workers))
            seconds = time.perf_counter() - started
        finally:
            ray.shutdown()
        print(f"ray local ({args.workers} workers): {summary.count('done')} jobs in {seconds:.1f} s = "
              f"{summary.count('done') / seconds:.2f} jobs/s (worker start and one model load per worker included)")


if __name__ == "__main__":
    main()
