"""Run every benchmark and print its figures, after a description of the machine: the CI-sized set
(``--size ci``, tiny or reduced models, a few minutes on 2 CPU cores) for regression tracking, or the
release sizes (``--size full``, for a GPU). Each benchmark runs in its own process; the exit status is
non-zero when one of them fails. Prints figures; asserts nothing.

    python benchmarks/run_all.py                      # CI-sized, on the CPU
    python benchmarks/run_all.py --size full          # release sizes (a CUDA GPU)
    python benchmarks/run_all.py --only warp video    # a subset
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
CI = {
    "warp": ["bench_warp.py", "--frames", "12", "--threads", "2"],
    "video": ["bench_video.py", "--frames", "72", "--source-size", "720", "1280"],
    "generator": ["bench_generator.py", "--size", "small", "--chunks", "4"],
    "generator-compiled": ["bench_generator.py", "--size", "small", "--chunks", "4", "--compile"],
    "autoencoders": ["bench_autoencoders.py", "--latents", "3", "--size", "48", "80"],
    "t5": ["bench_t5.py", "--layers", "1", "--lengths", "16", "77", "--repeats", "1"],
    "depth": ["bench_depth.py", "--models", "small", "--windows", "4", "--frames", "8", "--source", "280", "504"],
    "rerender": ["bench_rerender.py"],
    "precision": ["bench_precision.py"],
}
FULL = {
    "warp": ["bench_warp.py", "--frames", "48"],
    "video": ["bench_video.py", "--frames", "240"],
    "generator": ["bench_generator.py", "--size", "1.3b", "--chunks", "6"],
    "generator-compiled": ["bench_generator.py", "--size", "1.3b", "--chunks", "6", "--compile"],
    "autoencoders": ["bench_autoencoders.py", "--latents", "6"],
    "t5": ["bench_t5.py", "--layers", "24", "--lengths", "16", "77", "512"],
    "depth": ["bench_depth.py"],
    "rerender": ["bench_rerender.py", "--real", "--frames", "240"],
    "rerender-compiled": ["bench_rerender.py", "--real", "--frames", "240", "--compile"],
    "precision": ["bench_precision.py"],
}


def machine() -> str:
    """CPU model and cores, load, memory, torch build and the GPU, one line each."""
    cpu = platform.processor() or platform.machine()
    with open("/proc/cpuinfo") if Path("/proc/cpuinfo").is_file() else open(os.devnull) as info:
        names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
    cpu = names[0] if names else cpu
    lines = [f"cpu: {cpu}, {os.cpu_count()} logical cores, load average "
             f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
             f"python {platform.python_version()}, torch {torch.__version__}, {platform.system()} {platform.release()}"]
    if Path("/proc/meminfo").is_file():
        total = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
        lines.append(f"memory: {int(total.split()[1]) / 2**20:.1f} GiB")
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        lines.append(f"gpu: {props.name}, {props.total_memory / 2**30:.1f} GiB, CUDA {torch.version.cuda}")
    else:
        lines.append("gpu: none")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("ci", "full"), default="ci")
    ap.add_argument("--only", nargs="+", metavar="NAME", help=f"some of: {', '.join(FULL)}")
    args = ap.parse_args()
    table = CI if args.size == "ci" else FULL
    names = args.only or list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)} for --size {args.size}")
    print(machine(), flush=True)
    shared = HERE.parent.parent / "shared" / "golden"
    env = dict(os.environ)
    if "INSPATIO_GOLDEN_DIR" not in env and shared.is_dir():
        env["INSPATIO_GOLDEN_DIR"] = str(shared)  # every golden case for the precision table, where present
    failed = []
    for name in names:
        command = [sys.executable, str(HERE / table[name][0]), *table[name][1:]]
        print(f"\n=== {name}: python benchmarks/{' '.join(table[name])}", flush=True)
        start = time.perf_counter()
        done = subprocess.run(command, env=env)
        print(f"--- {name}: {time.perf_counter() - start:.1f} s wall{'' if done.returncode == 0 else ', FAILED'}",
              flush=True)
        if done.returncode:
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
