"""Scaling out without Ray (issue 20): ``--shard auto`` reads K/N from the launcher's environment (SLURM tasks
and arrays, torchrun, Kubernetes indexed Jobs with ``INSPATIO_SHARDS``), with one clear usage error when it
cannot be known; the public planning API (plan a manifest, fingerprints, finished jobs) a user's own
scheduler calls."""

from __future__ import annotations

import pytest

import json

from inspatio_cli.batch import (JobDefaults, job_fingerprint, parse_shard, plan_manifest, run_jobs,
                                shard_from_environment, split_finished)
from inspatio_cli.errors import UsageError
from inspatio_cli.render.rerender import Rerenderer
from clirun import run
from test_batch import H, W, clips, setup, trajectories, write  # noqa: F401 (setup: the autouse fixture)


@pytest.mark.parametrize("environ, expected", [
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "4"}, (1, 4)),
    ({"SLURM_PROCID": "3", "SLURM_NTASKS": "4", "RANK": "0", "WORLD_SIZE": "2"}, (4, 4)),  # SLURM first
    ({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "8",
      "SLURM_PROCID": "0", "SLURM_NTASKS": "1"}, (8, 8)),  # an array of one-task jobs: the array index
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "4"}, (3, 4)),
    ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}, (2, 2)),
    ({"JOB_COMPLETION_INDEX": "2", "INSPATIO_SHARDS": "5"}, (3, 5)),
])
def test_the_launchers_variables_give_k_of_n(environ, expected):
    assert shard_from_environment(environ) == expected
    assert parse_shard("auto", environ) == expected


@pytest.mark.parametrize("environ, message", [
    ({}, "no launcher variables found"),
    ({"JOB_COMPLETION_INDEX": "0"}, "set INSPATIO_SHARDS to the Job's completions"),
    ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK=2 is outside 0..1"),
    ({"SLURM_PROCID": "x", "SLURM_NTASKS": "2"}, "SLURM_PROCID='x' is not a whole number"),
    ({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_STEP": "2"}, "step"),
])
def test_unknown_or_bad_environments_are_usage_errors(environ, message):
    with pytest.raises(UsageError, match=message):
        shard_from_environment(environ)


def test_the_command_line_reads_the_environment(tmp_path, capsys, monkeypatch):
    """``--shard auto`` with no launcher: exit 2 and one line, before the manifest is read."""
    for name in ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_ARRAY_TASK_COUNT", "RANK", "WORLD_SIZE",
                 "JOB_COMPLETION_INDEX", "INSPATIO_SHARDS"):
        monkeypatch.delenv(name, raising=False)
    code, stdout, err = run(capsys, "batch", tmp_path / "missing.jsonl", "-o", tmp_path, "--shard", "auto",
                            "--device", "cpu")
    assert code == 2 and stdout == "" and err.count("\n") == 1 and "--shard auto: no launcher" in err


def test_the_planning_api_lists_fingerprints_and_finished_jobs(tiny_weights, tmp_path):
    """What a user's Ray Data or Airflow code calls: the manifest planned as ``inspatio batch`` plans it,
    each job's fingerprint (the one its sidecar will record) and which jobs are finished."""
    clips(tmp_path, "ab")
    trajectories(tmp_path)
    write(tmp_path / "jobs.jsonl", '{"video": "a.mp4"}\n{"video": "b.mp4", "trajectory": "dolly_in"}\n')
    jobs = plan_manifest("jobs.jsonl", JobDefaults(("orbit.txt",), prompt="x", size=(H, W)), output="out")
    assert [(j.number, j.line, j.output.name) for j in jobs] == [(1, 1, "a__orbit.mp4"), (2, 2, "b__dolly_in.mp4")]
    renderer = Rerenderer(tiny_weights, device="cpu", decoder="tae")
    assert split_finished(jobs, renderer) == ([], jobs)
    fingerprints = [job_fingerprint(job, renderer) for job in jobs]
    assert len(set(fingerprints)) == 2
    run_jobs(jobs[:1], renderer)
    assert json.loads(jobs[0].sidecar.read_text())["fingerprint"] == fingerprints[0]
    assert split_finished(jobs, renderer) == ([jobs[0]], [jobs[1]])
    assert split_finished(jobs, renderer, force=True) == ([], jobs)
