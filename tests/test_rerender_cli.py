"""``inspatio rerender``: the command on tiny random checkpoints (``tiny_weights``): output and sidecar,
``--json`` and ``--quiet``, missing weights, Ctrl-C / SIGTERM in a real subprocess; ``inspatio models
verify`` on the same checkpoints."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from inspatio_cli.files import TEMP_MARK
from inspatio_cli.video import probe
from clirun import run
from conftest import WEIGHT_FILES
from test_preview_pipeline import scene_files

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "room.mp4"


@pytest.fixture(autouse=True)
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv("INSPATIO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("INSPATIO_WEIGHTS_DIR", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_example_json_output_is_the_sidecar(tiny_weights, tmp_path, capsys):
    out = tmp_path / "room.mp4"
    code, stdout, err = run(capsys, "rerender", EXAMPLE, "-t", "orbit_left", "-o", out, "--weights-dir", tiny_weights,
                            "--size", "64x112", "--device", "cpu", "--decoder", "tae", "--prompt", "a room",
                            "--seed", 5, "--json")
    assert code == 0, err
    facts = probe(out)
    assert (facts.width, facts.height, facts.frame_count, facts.fps) == (112, 64, 49, 24.0)
    events = [json.loads(line) for line in stdout.splitlines()]
    result = events[-1]
    assert result.pop("event") == "result"
    assert result == json.loads(out.with_suffix(".json").read_text())
    assert result["settings"]["decoder"] == "tae" and result["settings"]["seed"] == 5
    assert set(result["setup_seconds"]) == {"depth", "prompts", "load"} and result["setup_seconds"]["load"] > 0
    assert result["seconds"]["load"] < result["setup_seconds"]["load"]  # loaded once, before the render
    assert {w["name"] for w in result["weights"]} == {"generator", "tae", "text-encoder", "tokenizer"}
    assert any(e["event"] == "progress" and e.get("chunk") == 5 for e in events)


def test_quiet_prints_nothing(tiny_weights, tmp_path, capsys):
    files = scene_files(tmp_path, 12, 12)
    code, stdout, err = run(capsys, "rerender", files["video"], "-t", files["traj"], "-o", tmp_path / "o.mp4",
                            "--weights-dir", tiny_weights, "--size", "48x80", "--device", "cpu", "--quiet",
                            "--prompt", "x", "--no-audio", "--crf", 30)
    assert (code, stdout, err) == (0, "", "")
    assert probe(tmp_path / "o.mp4").frame_count == 12


def test_missing_weights_one_line_with_the_download_command(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, stdout, err = run(capsys, "rerender", EXAMPLE, "-t", "orbit_left", "-o", tmp_path / "o.mp4",
                            "--weights-dir", empty, "--prompt", "a room")
    assert code == 4 and stdout == "" and len(err.strip().splitlines()) == 1
    assert "InSpatio-World-1.3B.safetensors" in err and "Wan2.1_VAE.pth" in err
    assert f"inspatio models download --only generator,text,vae --weights-dir {empty}" in err
    assert not any(tmp_path.glob("o.*"))
    code, stdout, err = run(capsys, "rerender", EXAMPLE, "-t", "orbit_left", "-o", tmp_path / "o.mp4",
                            "--weights-dir", empty, "--prompt", "a room", "--json")
    event = json.loads(stdout.splitlines()[-1])  # --json: why there is no result, on stdout too
    assert code == 4 and event["event"] == "error" and event["exit_code"] == 4
    assert event["message"] == " ".join(err.removeprefix("error: ").split())


def test_missing_weights_fail_before_pytorch_is_imported(tmp_path):
    """Without weights the command fails at once: a fresh interpreter reports the missing files without
    importing PyTorch (whose import alone takes seconds), with the exit code of missing weights."""
    script = ("import sys\nfrom inspatio_cli.cli import main\ntry:\n    main(sys.argv[1:])\n"
              "except SystemExit as stop:\n    print('torch' in sys.modules, stop.code)")
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    env.pop("INSPATIO_WEIGHTS_DIR", None)
    done = subprocess.run([sys.executable, "-c", script, "rerender", str(EXAMPLE), "-t", "orbit_left", "-o",
                           str(tmp_path / "o.mp4")], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.split() == ["False", "4"], done.stderr
    assert "InSpatio-World-1.3B.safetensors" in done.stderr and "inspatio models download" in done.stderr


def test_a_prompt_too_long_is_reported_once(tiny_weights, tmp_path, capsys):
    files = scene_files(tmp_path, 12, 12)
    code, _, err = run(capsys, "rerender", files["video"], "-t", files["traj"], "-o", tmp_path / "o.mp4",
                       "--weights-dir", tiny_weights, "--size", "48x80", "--device", "cpu",
                       "--prompt", " ".join(["cat"] * 600))
    assert code == 0, err
    assert err.count("tokens long; the text encoder reads at most 512") == 1, err


@pytest.mark.parametrize("value,message", [("48", "HxW"), ("50x80", "multiples of 16")])
def test_bad_size(tmp_path, capsys, value, message):
    code, _, err = run(capsys, "rerender", EXAMPLE, "-t", "orbit_left", "-o", tmp_path / "o.mp4", "--size", value)
    assert code == 2 and message in err


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_leaves_no_output(tiny_weights, tmp_path, signum, code):
    """A run stopped after its first chunk exits with 130 (Ctrl-C) or 143 (SIGTERM); neither the video,
    its sidecar nor a temporary file is left."""
    files = scene_files(tmp_path, 480, 24)  # 40 chunks: still running when the signal arrives
    out = tmp_path / "out.mp4"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "INSPATIO_CACHE_DIR": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "inspatio_cli", "rerender", str(files["video"]), "-t", str(files["traj"]),
               "-o", str(out), "--weights-dir", str(tiny_weights), "--size", "48x80", "--device", "cpu",
               "--prompt", "x", "--json"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        for line in proc.stdout:
            event = json.loads(line)
            if event["event"] == "progress" and event.get("chunk") == 1:
                break
        else:
            pytest.fail(f"no chunk finished: {proc.stderr.read()}")
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "interrupted" in err
    assert not out.exists() and not out.with_suffix(".json").exists()
    assert not [p for p in tmp_path.iterdir() if TEMP_MARK in p.name]


def test_models_verify_accepts_the_tiny_weights_and_names_a_truncated_file(tiny_weights, tmp_path, capsys):
    only = "generator,vae,text,tae"
    code, stdout, err = run(capsys, "models", "verify", "--weights-dir", tiny_weights, "--only", only, "--json")
    status = {c["name"]: c["status"] for c in map(json.loads, stdout.splitlines())}
    assert code == 0 and err == ""
    assert status == {"generator": "ok", "wan-config": "missing", "vae": "ok", "text-encoder": "ok",
                      "tokenizer": "ok", "tae": "ok"}
    broken = tmp_path / "broken"
    shutil.copytree(tiny_weights, broken)
    vae = broken / WEIGHT_FILES["vae"]
    vae.write_bytes(vae.read_bytes()[:4000])
    code, _, err = run(capsys, "models", "verify", "--weights-dir", broken, "--only", only)
    assert code == 1 and f"error: {vae}:" in err


def test_models_know_the_v15_generator(tiny_weights, tmp_path, capsys):
    code, stdout, err = run(capsys, "models", "list", "--weights-dir", tmp_path, "--only", "generator-1.5", "--json")
    (row,) = map(json.loads, stdout.splitlines())
    assert code == 0 and row["name"] == "generator-1.5" and row["needed_by"] == "rerender --model world-1.5"
    path = tmp_path / "InSpatio-World-1.5-1.3B" / "InSpatio-World-1.5-1.3B.safetensors"
    path.parent.mkdir()
    shutil.copyfile(tiny_weights / WEIGHT_FILES["generator"], path)  # the same architecture and keys as v1
    code, stdout, err = run(capsys, "models", "verify", "--weights-dir", tmp_path, "--only", "generator-1.5",
                            "--json")
    assert code == 0, err
    assert [(c["name"], c["status"]) for c in map(json.loads, stdout.splitlines())] == [("generator-1.5", "ok")]
