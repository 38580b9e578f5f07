"""The hostile set (``benchmarks/hostile.py``) on a sample, one case of each class, in a real run of the
runner (``pytest -m fuzz``; the whole set is the script itself, see DEVELOPERS.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HOSTILE = Path(__file__).resolve().parents[1] / "benchmarks" / "hostile.py"
SAMPLE = ["video-000", "path-001", "manifest-006", "output-000", "weights-000", "depth-000", "signal-003"]


@pytest.mark.fuzz
def test_a_sample_of_the_hostile_set_ends_well(tmp_path):
    done = subprocess.run([sys.executable, str(HOSTILE), "--case", *SAMPLE, "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    total = next(line.split() for line in done.stdout.splitlines() if line.startswith("total"))
    cases, *outcomes = map(int, total[1:8])
    assert cases == len(SAMPLE) and outcomes == [0, 0, 0, 0, 0, len(SAMPLE)]
    assert all(f"{case:<14}" in done.stderr for case in SAMPLE)
