"""Device and precision names: one parser, one error (exit 2, one line naming the option and the accepted
names) on every command that takes them, before PyTorch loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clirun import run
from inspatio_cli.devices import DEPTH_DTYPE_NAMES, check_device, check_dtype, resolve_device, resolve_dtype
from inspatio_cli.errors import UsageError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "room.mp4"


def _commands(tmp: Path) -> dict[str, list[str]]:
    """The arguments before the device options of every command that takes them."""
    return {
        "depth": ["depth", str(EXAMPLE)],
        "preview": ["preview", str(EXAMPLE), "-t", "orbit_left", "-o", str(tmp / "p.mp4")],
        "caption": ["caption", str(EXAMPLE)],
        "rerender": ["rerender", str(EXAMPLE), "-t", "orbit_left", "-o", str(tmp / "r.mp4")],
        "batch": ["batch", str(tmp / "jobs.jsonl"), "-t", "orbit_left", "-o", str(tmp / "out")],
    }


BAD = [("depth", "--device", "tpu"), ("depth", "--dtype", "fp16"), ("depth", "--dtype", "float32"),
       ("preview", "--device", "tpu"), ("preview", "--device", "cuda:x"),
       ("caption", "--device", "tpu"),
       ("rerender", "--device", "tpu"), ("rerender", "--dtype", "fp64"), ("rerender", "--text-device", "tpu"),
       ("batch", "--device", "tpu"), ("batch", "--dtype", "bfloat16"), ("batch", "--text-device", "gpu")]


@pytest.mark.parametrize("command,option,value", BAD)
def test_a_bad_name_is_a_usage_error_on_one_line(tmp_path, capsys, command, option, value):
    code, stdout, err = run(capsys, *_commands(tmp_path)[command], option, value)
    assert code == 2 and stdout == "", err
    assert len(err.strip().splitlines()) == 1, err
    assert f"{option} {value!r}" in err and "use auto, " in err, err
    assert not any(tmp_path.iterdir())


def test_bad_names_fail_before_pytorch_is_imported(tmp_path):
    """A fresh interpreter refuses every bad name of :data:`BAD` without importing PyTorch."""
    calls = [_commands(tmp_path)[command] + [option, value] for command, option, value in BAD]
    script = ("import sys\nfrom inspatio_cli.cli import main\nfor args in eval(sys.argv[1]):\n    try:\n"
              "        main(args)\n    except SystemExit as stop:\n        print(stop.code)\n"
              "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script, repr(calls)], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert done.stdout.split() == ["2"] * len(BAD) + ["False"], done.stderr


def test_device_names():
    for name in ("auto", "cpu", "cuda", "cuda:0", "cuda:12"):
        assert check_device(name) == name
    for bad in ("tpu", "gpu0", "meta", "cuda:", "cuda:-1", "CPU", " cpu", ""):
        with pytest.raises(UsageError, match="unknown device"):
            check_device(bad)
    assert resolve_device("cpu") == resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(UsageError, match="--text-device 'tpu'"):
        resolve_device("tpu", "--text-device")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == resolve_device(None) == torch.device("cpu")
        with pytest.raises(UsageError, match="no CUDA device"):
            resolve_device("cuda:1")
    else:
        with pytest.raises(UsageError, match="CUDA device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_dtype_names():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == "fp32"
    assert [resolve_dtype(name, cpu) for name in ("bf16", "fp16", "fp32")] == ["bf16", "fp16", "fp32"]
    assert check_dtype("bf16", allowed=DEPTH_DTYPE_NAMES) == "bf16"
    with pytest.raises(UsageError, match=r"--dtype 'fp16': unknown precision \(use auto, bf16, fp32\)"):
        resolve_dtype("fp16", cpu, allowed=DEPTH_DTYPE_NAMES)
    with pytest.raises(UsageError, match="unknown precision"):
        check_dtype("float32")
