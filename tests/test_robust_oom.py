"""Out of memory, on the GPU or the CPU, from any stage: one line with concrete advice (exit 5), no traceback,
no output file left behind."""

from __future__ import annotations

import pytest
import torch

from inspatio_cli import scene as scene_module
from inspatio_cli.cli import main
from inspatio_cli.errors import OOM_ADVICE, RuntimeFailure, out_of_memory
from test_preview_pipeline import scene_files

CUDA_TEXT = ("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.65 GiB of which "
             "1.02 GiB is free.\nIncluding non-PyTorch memory, this process has 22.6 GiB memory in use.")


@pytest.mark.parametrize("exc, expected", [
    (torch.cuda.OutOfMemoryError(CUDA_TEXT), "out of GPU memory while generating (tried to allocate 2.00 GiB)"),
    (torch.OutOfMemoryError("out of memory"), "out of GPU memory while generating"),
    (RuntimeError("MPS backend out of memory (MPS allocated: 9.0 GB)"), "out of GPU memory while generating"),
    (MemoryError(), "out of memory (RAM) while generating"),
    (MemoryError("Unable to allocate 116. TiB for an array"), "out of memory (RAM) while generating"),
])
def test_out_of_memory_errors_become_one_line_with_advice(exc, expected):
    failure = out_of_memory(exc, "generating")
    assert isinstance(failure, RuntimeFailure) and failure.exit_code == 5
    line = failure.one_line()
    assert line.startswith(expected) and "\n" not in line
    for option in ("--decoder tae", "--dtype bf16", "--text-device cpu", "--window"):
        assert option in line


@pytest.mark.parametrize("exc", [RuntimeError("CUDA error: device-side assert"), ValueError("out of range"),
                                 KeyError("memory")])
def test_other_errors_are_not_mistaken_for_out_of_memory(exc):
    assert out_of_memory(exc) is None


@pytest.mark.parametrize("exc, message", [
    (torch.cuda.OutOfMemoryError(CUDA_TEXT), "error: out of GPU memory (tried to allocate 2.00 GiB)"),
    (MemoryError(), "error: out of memory (RAM)"),
])
def test_preview_running_out_of_memory_mid_warp(tmp_path, capsys, monkeypatch, exc, message):
    files = scene_files(tmp_path, 30, 12)
    calls = []

    def warp(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second chunk: the output file has frames in it by now
            raise exc
        return real(*args, **kwargs)

    real = scene_module.forward_warp
    monkeypatch.setattr(scene_module, "forward_warp", warp)
    output = tmp_path / "out" / "preview.mp4"
    with pytest.raises(SystemExit) as done:
        main(["preview", str(files["video"]), "-t", str(files["traj"]), "-o", str(output), "--save-condition",
              str(tmp_path / "cond"), "--quiet"])
    _, err = capsys.readouterr()
    assert done.value.code == 5 and len(calls) == 2
    assert err.startswith(message) and err.count("\n") == 1 and OOM_ADVICE in err and "Traceback" not in err
    assert list(output.parent.iterdir()) == [] and list((tmp_path / "cond").iterdir()) == []


@pytest.mark.parametrize("stage, exc, message", [
    ("generate", torch.cuda.OutOfMemoryError(CUDA_TEXT),
     "error: out of GPU memory while generating on cpu (tried to allocate 2.00 GiB)"),
    ("encode", MemoryError(), "error: out of memory (RAM)"),
])
def test_rerender_running_out_of_memory_mid_run(tiny_weights, tmp_path, capsys, monkeypatch, stage, exc, message):
    from inspatio_cli.generate.star import StarSampler
    from inspatio_cli.video import VideoWriter

    owner, name = (StarSampler, "step") if stage == "generate" else (VideoWriter, "write")
    real = getattr(owner, name)
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise exc
        return real(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, failing)
    files = scene_files(tmp_path, 30, 12)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as done:
        main(["rerender", str(files["video"]), "-t", str(files["traj"]), "-o", str(out / "render.mp4"),
              "--weights-dir", str(tiny_weights), "--size", "48x80", "--device", "cpu", "--decoder", "tae",
              "--prompt", "x", "--save-condition", str(tmp_path / "cond"), "--quiet"])
    _, err = capsys.readouterr()
    assert done.value.code == 5 and len(calls) == 2
    assert err.startswith(message) and err.count("\n") == 1 and OOM_ADVICE in err and "Traceback" not in err
    assert list(out.iterdir()) == [] and list((tmp_path / "cond").iterdir()) == []
