"""``inspatio batch --ray`` (issue 20) on a local Ray cluster of 2 CPUs (one for the module) with the tiny
random checkpoints: every job rendered exactly once, byte for byte as a local batch renders it; a worker
killed mid-job loses no job; an interrupted run leaves nothing under a final name and its rerun redoes none
of the finished jobs. Skipped where Ray is not installed (the ``ray`` extra)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import inspatio_cli
from inspatio_cli.batch import JobDefaults, RayOptions, plan_manifest, run_on_ray
from inspatio_cli.files import TEMP_MARK
from inspatio_cli.progress import Reporter
from clirun import run
from test_batch import FAST, EVENTS, H, W, clips, events_of, numbers, setup, trajectories, write  # noqa: F401

ray = pytest.importorskip("ray")
WORKERS = ["--ray", "auto", "--workers", "2"]


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """One local cluster for the module (``--ray auto`` and the API join it): 2 CPUs, so 2 workers."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def manifest(folder: Path, frames: int = 20) -> Path:
    """4 jobs: 2 videos x (a trajectory file, a preset)."""
    clips(folder, "ab", frames=frames)
    trajectories(folder)
    return write(folder / "jobs.csv", "video,trajectory\n" + "".join(f"{v}.mp4,{t}\n" for v in "ab"
                                                                    for t in ("orbit.txt", "dolly_in")))


class Watcher(io.StringIO):
    """The JSON events of an API run as they come; ``react(event)`` runs in the driver for each."""

    def __init__(self, react):
        super().__init__()
        self.react, self.events = react, []

    def write(self, text: str) -> int:
        for line in filter(None, text.splitlines()):
            self.events.append(json.loads(line))
            self.react(self.events[-1])
        return len(text)


def plan(folder: Path) -> list:
    return plan_manifest(folder / "jobs.csv", JobDefaults(prompt="x", size=(H, W)), output="out")


def renderer_args(weights: Path) -> dict:
    return dict(weights_dir=weights, device="cpu", decoder="tae")


def test_every_job_once_and_bytes_equal_to_a_local_batch(tiny_weights, tmp_path, capsys):
    jobs = manifest(tmp_path)
    common = ["batch", jobs, "--weights-dir", tiny_weights, *FAST, "--prompt", "x", "--json"]
    code, stdout, err = run(capsys, *common, "-o", "out", *WORKERS)
    assert code == 0, err
    events = events_of(stdout)
    assert {e["event"] for e in events} <= EVENTS
    assert sorted(numbers(events, "job_started")) == sorted(numbers(events, "job_done")) == [1, 2, 3, 4]
    assert all(e["worker"].startswith("inspatio-") for e in events if e["event"] == "job_started")
    assert [e["chunk"] for e in events if e["event"] == "chunk_done" and e["job"] == 1] == [1, 2]
    done = {e["job"]: e for e in events if e["event"] == "job_done"}
    assert done[2]["output"] == str(Path("out/a__dolly_in.mp4"))  # the planned paths, as a local batch prints
    summary = events[-1]
    assert (summary["event"], summary["done"], summary["failed"], summary["frames"]) == ("summary", 4, 0, 80)
    code, _, err = run(capsys, *common, "-o", "local")
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "local").glob("*.mp4"))
    assert names == sorted(p.name for p in (tmp_path / "out").glob("*.mp4")) and len(names) == 4
    for name in names:
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name


def test_a_killed_worker_loses_no_job(tiny_weights, tmp_path):
    """The worker of the first job to finish a chunk is killed: that job is retried on another worker and
    the batch completes; the dead worker's temporary file is gone."""
    manifest(tmp_path, frames=28)
    workers: dict[int, str] = {}
    killed: list[int] = []

    def react(event: dict) -> None:
        if event["event"] == "job_started":
            workers[event["job"]] = event["worker"]
        elif event["event"] == "chunk_done" and event["chunk"] == 1 and not killed:
            killed.append(event["job"])
            ray.kill(ray.get_actor(workers[event["job"]]))

    watcher = Watcher(react)
    summary = run_on_ray(plan(tmp_path), renderer_args(tiny_weights), RayOptions("auto", workers=2),
                         reporter=Reporter("json", stdout=watcher))
    assert (summary.count("done"), summary.count("failed")) == (4, 0)
    assert numbers(watcher.events, "job_retried") == killed
    assert sorted(numbers(watcher.events, "job_done")) == [1, 2, 3, 4]
    assert len(list((tmp_path / "out").glob("*.mp4"))) == 4
    assert not [p for p in (tmp_path / "out").iterdir() if TEMP_MARK in p.name]


def test_an_interrupted_run_then_a_rerun_redoes_none(tiny_weights, tmp_path, capsys):
    """Ctrl-C in the middle of a job, after a first one finished: only finished jobs are under a final name
    (the running ones unwind at their next chunk, leaving no temporary file); the rerun skips every finished
    job and renders the rest."""
    manifest(tmp_path, frames=36)
    cut: list[int] = []

    def react(event: dict) -> None:
        if event["event"] == "chunk_done" and event["chunk"] == 1 and "job_done" in {e["event"] for e in
                                                                                     watcher.events}:
            cut.append(event["job"])
            raise KeyboardInterrupt

    watcher = Watcher(react)
    with pytest.raises(KeyboardInterrupt):
        run_on_ray(plan(tmp_path), renderer_args(tiny_weights), RayOptions("auto", workers=2),
                   reporter=Reporter("json", stdout=watcher))
    finished = sorted(numbers(watcher.events, "job_done"))  # the first, and any other worker's meanwhile
    outputs = sorted((tmp_path / "out").glob("*.mp4"))
    assert 1 <= len(finished) < 4 and len(outputs) == len(finished) and cut[0] not in finished
    assert not [p for p in (tmp_path / "out").iterdir() if TEMP_MARK in p.name]
    stamps = {p: p.stat().st_mtime_ns for p in outputs}
    code, stdout, err = run(capsys, "batch", "jobs.csv", "-o", "out", "--weights-dir", tiny_weights, *FAST,
                            "--prompt", "x", "--json", *WORKERS)
    assert code == 0, err
    events = events_of(stdout)
    assert numbers(events, "job_skipped") == finished
    assert sorted(numbers(events, "job_done") + finished) == [1, 2, 3, 4]
    assert {p: p.stat().st_mtime_ns for p in outputs} == stamps
    assert not [p for p in (tmp_path / "out").iterdir() if TEMP_MARK in p.name]


def test_without_ray_one_line_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    code, stdout, err = run(capsys, "batch", "jobs.csv", "-o", "out", "--ray", "local")
    assert code == 2 and err.count("\n") == 1 and "'ray' extra" in err and 'inspatio-cli[ray]' in err
    code, _, err = run(capsys, "batch", "jobs.csv", "-o", "out", "--workers", "2")
    assert code == 2 and "--workers and --gpus-per-worker need --ray" in err


def test_the_command_line_starts_without_ray():
    code = "import sys, inspatio_cli.cli; assert 'ray' not in sys.modules"
    source = str(Path(inspatio_cli.__file__).parents[1])
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, env={**os.environ, "PYTHONPATH": source})
