"""``inspatio depth``: writes a depth file through the cache, reports JSON, fails clearly without weights."""

from __future__ import annotations

import json
from pathlib import Path


from inspatio_cli.depth import DepthResult, estimate
from clirun import run
from media import make_clip, pattern
from test_depth_estimate import CountingLoader


def test_depth_command_writes_the_file_and_reuses_the_cache(capsys, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INSPATIO_CACHE_DIR", str(tmp_path / "cache"))
    loader = CountingLoader()
    monkeypatch.setattr(estimate, "load_model", loader)
    video = make_clip(tmp_path / "clip.mp4", pattern(3, 28, 42))
    args = ["depth", str(video), "--model", "base-metric", "--size", "28x42", "--window", "4",
            "--device", "cpu", "--dtype", "fp32"]
    code, out, err = run(capsys, *args, "--json")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    summary = lines[-1]
    assert summary["event"] == "result" and summary["frames"] == 3 and summary["size"] == [28, 42]
    sidecar = tmp_path / "clip.depth.safetensors"
    assert summary["output"] == str(sidecar)
    assert DepthResult.load(sidecar).meta["model"] == "base-metric"
    code, _, err = run(capsys, *args, "-o", str(tmp_path / "again.depth.safetensors.gz"), "--quiet")
    assert code == 0 and err == ""
    assert loader.builds == 1
    assert DepthResult.load(tmp_path / "again.depth.safetensors.gz").num_frames == 3


def test_depth_command_without_weights_names_the_download(capsys, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INSPATIO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("INSPATIO_WEIGHTS_DIR", raising=False)
    video = make_clip(tmp_path / "clip.mp4", pattern(2, 28, 42))
    code, _, err = run(capsys, "depth", str(video), "--device", "cpu")
    assert code == 4
    assert "DA3NESTED-GIANT-LARGE" in err and "inspatio models download --only depth" in err


def test_depth_command_rejects_bad_options(capsys, tmp_path: Path) -> None:
    video = make_clip(tmp_path / "clip.mp4", pattern(2, 28, 42))
    assert run(capsys, "depth", str(video), "--model", "nope")[0] == 2
    assert run(capsys, "depth", str(video), "--size", "big")[0] == 2
    assert run(capsys, "depth", str(video), "--window", "1", "--device", "cpu")[0] == 2
