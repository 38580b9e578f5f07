"""Batch rerendering (issue 10) on tiny random checkpoints (``tiny_weights``): the cross product of
``inspatio rerender``, manifests, validation of every job up front, resume after a kill, failure isolation,
sharding, ``--json`` events and ``--dry-run``; construction counts prove that models load once and each
video's depth is computed once."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from inspatio_cli import caption
from inspatio_cli.render import stream
from inspatio_cli.batch import (ALL_KEYS, InvalidJobs, Job, JobDefaults, output_is_folder, parse_shard,
                                plan_inputs, plan_jobs, read_manifest, run_jobs, select_shard)
from inspatio_cli.cameras import CameraOptions
from inspatio_cli.depth import estimate
from inspatio_cli.errors import ManifestError, TrajectoryError, UsageError, VideoError
from inspatio_cli.files import TEMP_MARK, cleanup_stale_temps, host_tag, temp_path_for
from inspatio_cli.models import dit
from inspatio_cli.render.rerender import Rerenderer
from inspatio_cli.text import PromptEmbedder
from inspatio_cli.video import probe
from clirun import run
from conftest import WEIGHT_FILES
from media import make_clip, pattern
from test_depth_estimate import tiny_net
from test_preview_pipeline import ORBIT, H, W, planar_depth

SIZE = f"{H}x{W}"
FAST = ["--size", SIZE, "--device", "cpu", "--decoder", "tae"]
EVENTS = {"job_started", "chunk_done", "job_done", "job_failed", "job_skipped", "summary", "warning"}


@pytest.fixture(autouse=True)
def setup(tmp_path, monkeypatch):
    """One torch thread (the 2-core CI runner is shared), a private cache, no weights folder from the
    environment; paths in manifests and on the command line are relative to ``tmp_path``."""
    monkeypatch.setenv("INSPATIO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("INSPATIO_WEIGHTS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def clips(folder: Path, names: str, frames: int = 20, depth: bool = True) -> dict[str, Path]:
    """Videos ``<name>.mp4`` (different content each) at 10 fps, with a sidecar depth when ``depth``."""
    out = {}
    for seed, name in enumerate(names):
        out[name] = make_clip(folder / f"{name}.mp4", pattern(frames, H, W, seed=seed), fps=10)
        if depth:
            planar_depth(frames).save(folder / f"{name}.depth.safetensors")
    return out


def trajectories(folder: Path) -> list[str]:
    """Three trajectories: a file and two presets."""
    (folder / "orbit.txt").write_text(ORBIT)
    return ["orbit.txt", "dolly_in", "orbit_left"]


def events_of(stdout: str) -> list[dict]:
    """Every stdout line parsed as one JSON object (fails on any other line)."""
    return [json.loads(line) for line in stdout.splitlines()]


def numbers(events: list[dict], kind: str) -> list[int]:
    return [e["job"] for e in events if e["event"] == kind]


class Counter:
    """Wraps a function and counts its calls."""

    def __init__(self, func):
        self.func, self.calls = func, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.func(*args, **kwargs)


# --------------------------------------------------------------------------------------------------
# Manifests and planning (no rendering)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_manifest_kinds_from_extension_or_content(tmp_path):
    jsonl = '{"video": "a.mp4", "trajectory": "orbit.txt"}\n\n# a comment\n{"video": "b.mp4", "seed": 3}\n'
    csv_text = 'video,trajectory,prompt\na.mp4,orbit.txt,"a cat, sleeping"\n# skipped\nb.mp4,,"two\nlines"\n'
    cases = {"jobs.jsonl": (jsonl, "jsonl"), "jobs.txt": (jsonl, "jsonl"), "jobs.csv": (csv_text, "csv"),
             "jobs.lst": (csv_text, "csv"), "videos.txt": ("a.mp4\n\n# no\nb.mp4\n", "list"),
             "jobs.tsv": ("video\ttrajectory\na.mp4\torbit.txt\nb.mp4\t\n", "csv")}
    for name, (text, kind) in cases.items():
        manifest = read_manifest(write(tmp_path / name, text))
        assert manifest.kind == kind and manifest.problems == [], name
        assert [r.line for r in manifest.rows] == ([1, 4] if kind != "csv" else [2, 4] if "tsv" not in name
                                                  else [2, 3]), name
        assert [r.values["video"] for r in manifest.rows] == ["a.mp4", "b.mp4"]
    rows = read_manifest(tmp_path / "jobs.csv").rows
    assert rows[0].values == {"video": "a.mp4", "trajectory": "orbit.txt", "prompt": "a cat, sleeping"}
    assert rows[1].values == {"video": "b.mp4", "prompt": "two\nlines"}  # empty cells are unset
    assert read_manifest(tmp_path / "jobs.jsonl").rows[1].values == {"video": "b.mp4", "seed": 3}
    piped = read_manifest("-", stdin=io.BytesIO(b"\xef\xbb\xbfclips/a.mp4\nb.mp4\n"))
    assert piped.kind == "list" and piped.path is None and piped.base == Path()
    assert [r.values["video"] for r in piped.rows] == ["clips/a.mp4", "b.mp4"]


def test_unreadable_manifests(tmp_path):
    with pytest.raises(ManifestError, match="cannot read"):
        read_manifest(tmp_path / "missing.jsonl")
    (tmp_path / "latin.jsonl").write_bytes(b"{}\n\xff\n")
    with pytest.raises(ManifestError, match="line 2: not UTF-8"):
        read_manifest(tmp_path / "latin.jsonl")
    with pytest.raises(ManifestError, match="there are no jobs"):
        manifest = read_manifest(write(tmp_path / "empty.csv", "video,trajectory\n"))
        plan_jobs(manifest.rows, JobDefaults(), base=tmp_path, manifest=manifest.path)


def test_rows_expand_over_the_command_line_trajectories_and_seeds(tmp_path):
    videos = clips(tmp_path, "ab")
    trajs = trajectories(tmp_path)
    defaults = JobDefaults(tuple(trajs[:2]), (0, 7), prompt="x", size=(H, W))
    jobs = plan_inputs(list(videos.values()), defaults, "out/")
    assert [(j.video.stem, j.trajectory, j.seed) for j in jobs] == [
        (v, t, s) for v in "ab" for t in trajs[:2] for s in (0, 7)]
    assert [j.number for j in jobs] == list(range(1, 9)) and all(j.line is None for j in jobs)
    assert jobs[1].output == Path("out/a__orbit__7.mp4") and jobs[2].output == Path("out/a__dolly_in__0.mp4")
    assert all(j.frames == 20 and j.chunks == 2 for j in jobs)
    named = plan_inputs([videos["a"]], JobDefaults(tuple(trajs), prompt="x"), "out", name="{index}-{trajectory}")
    assert [j.output.name for j in named] == ["1-orbit.mp4", "2-dolly_in.mp4", "3-orbit_left.mp4"]
    moves = plan_inputs([videos["a"]], JobDefaults(("moves:forward*2:10,turn-left+up:10",), prompt="x"), "out/")
    assert [j.output.name for j in moves] == ["a__moves-forward-2-10-turn-left+up-10.mp4"]
    single = plan_inputs([videos["a"]], JobDefaults(("orbit.txt",)), "render.mkv")
    assert [j.output for j in single] == [Path("render.mkv")]
    with pytest.raises(UsageError, match="unknown field {take}"):
        plan_inputs([videos["a"]], JobDefaults(("orbit.txt",)), "out/", name="{video}-{take}")
    with pytest.raises(UsageError, match="-o must be a folder"):
        plan_inputs(list(videos.values()), JobDefaults(("orbit.txt",)), "render.mp4")
    with pytest.raises(UsageError, match="--depth gives the depth of one video"):
        plan_inputs(list(videos.values()), JobDefaults(("orbit.txt",), depth=tmp_path / "a.depth.safetensors"), "o/")
    assert output_is_folder("out/") and output_is_folder("out") and output_is_folder(tmp_path)
    assert not output_is_folder("out.mp4")


def test_a_single_command_line_problem_is_raised_as_itself(tmp_path):
    videos = clips(tmp_path, "a")
    with pytest.raises(VideoError):
        plan_inputs([tmp_path / "nothing.mp4"], JobDefaults(("orbit_left",)), "o.mp4")
    with pytest.raises(TrajectoryError, match="no such file or preset"):
        plan_inputs([videos["a"]], JobDefaults(("nothing.txt",)), "o.mp4")
    with pytest.raises(UsageError, match="would overwrite a source video"):
        plan_inputs([videos["a"]], JobDefaults(("orbit_left",)), videos["a"])
    with pytest.raises(InvalidJobs, match="2 problems in the jobs") as info:
        plan_inputs([tmp_path / "x.mp4", tmp_path / "y.mp4"], JobDefaults(("orbit_left",)), "out/")
    assert info.value.exit_code == 3 and [p.line for p in info.value.problems] == [None, None]


def test_per_job_overrides_are_typed_validated_and_applied(tmp_path):
    clips(tmp_path, "ab")
    trajectories(tmp_path)
    write(tmp_path / "prompt.txt", "a red car")
    manifest = write(tmp_path / "jobs.jsonl", "\n".join(json.dumps(row) for row in [
        {"video": "a.mp4", "trajectory": "orbit.txt", "seed": 5, "crf": 30, "size": [32, 64], "audio": False,
         "freeze": ["mid:4", "0:2"], "prompt_file": "prompt.txt", "output": "x/one.mp4"},
        {"video": "b.mp4", "trajectory": "dolly_in", "fit": "crop", "scale": 0.5, "skip-bad-frames": True,
         "relative_to_source": True, "extend": "loop", "min_frames": 33, "prompt": ""},
    ]) + "\n")
    read = read_manifest(manifest)
    jobs = plan_jobs(read.rows, JobDefaults(prompt="default", size=(H, W)), base=read.base, output="out",
                     manifest=read.path)
    first, second = jobs
    assert (first.seed, first.crf, first.size, first.audio, first.frames) == (5, 30, (32, 64), False, 26)
    assert first.prompt is None and first.prompt_file == tmp_path / "prompt.txt"
    assert first.output == Path("out/x/one.mp4") and first.camera.time.describe()["freeze"] == ["mid:4", "0:2"]
    assert (second.fit, second.camera.scale, second.skip_bad_frames, second.camera.relative_to_source) == (
        "crop", 0.5, True, True)
    assert (second.frames, second.prompt, second.size, second.seed) == (33, "", (H, W), 0)
    assert second.output == Path("out/b__dolly_in__0.mp4")  # the jobs use several seeds
    table = write(tmp_path / "jobs.csv", "video,trajectory,seed,crf,audio,size,reverse\n"
                                        "a.mp4,orbit.txt,2,0,no,32x64,0:9;12:15\n")
    read = read_manifest(table)
    (job,) = plan_jobs(read.rows, JobDefaults(), base=read.base, output="out")
    assert (job.seed, job.crf, job.audio, job.size) == (2, 0, False, (32, 64))
    assert job.camera.time.describe()["reverse"] == ["0:9", "12:15"]


def test_every_manifest_problem_is_reported_at_once_with_its_line(tmp_path):
    clips(tmp_path, "ab")
    trajectories(tmp_path)
    text = ("video,trajectory,output,seed,crf,dtype\n"
            "a.mp4,orbit.txt,one.mp4,1,18,\n")
    read = read_manifest(write(tmp_path / "header.csv", text))
    assert [(p.line, p.text()) for p in read.problems] == [
        (1, "line 1: column 'dtype': this option applies to the whole batch (the models are loaded once); "
            "give it on the command line")]
    read = read_manifest(write(tmp_path / "nameless.csv", "trajectory,output,output\norbit.txt,a.mp4,b.mp4\n"))
    assert [p.text() for p in read.problems] == ["line 1: column 'output' appears twice in the header",
                                                 "line 1: missing column 'video' in the header"]
    rows = [
        {"video": "a.mp4", "trajectory": "orbit.txt", "output": "one.mp4"},           # 1 fine
        {"trajectory": "orbit.txt"},                                                 # 2 missing video
        {"video": "a.mp4", "trajectory": "orbit.txt", "speed": 2},                   # 3 unknown option
        {"video": "missing.mp4", "trajectory": "orbit.txt"},                         # 4 bad path
        {"video": "b.mp4", "trajectory": "orbit.txt", "output": "one.mp4"},           # 5 duplicate output
        {"video": "b.mp4", "trajectory": "nowhere.txt"},                             # 6 bad trajectory
        {"video": "b.mp4", "trajectory": "orbit.txt", "output": "../a.mp4"},          # 7 overwrites a source
        {"video": "b.mp4", "trajectory": "orbit.txt", "seed": "3", "size": "50x50"},  # 8 two bad values
        {"video": "b.mp4", "trajectory": "orbit.txt", "freeze": "200:3"},            # 9 outside the video
        {"video": "b.mp4", "trajectory": "orbit.txt", "output": "../jobs.jsonl"},     # 10 not a video name
        {"video": "b.mp4", "trajectory": "orbit.txt", "depth": "none.safetensors"},  # 11 missing depth file
    ]
    manifest = write(tmp_path / "jobs.jsonl", "".join(json.dumps(r) + "\n" for r in rows) + "[1, 2]\n{oops\n")
    read = read_manifest(manifest)
    with pytest.raises(InvalidJobs) as info:
        plan_jobs(read.rows, JobDefaults(), base=read.base, output="out", manifest=read.path,
                  problems=read.problems)
    problems = [(p.line, p.text()) for p in info.value.problems]
    assert [line for line, _ in problems] == [2, 3, 4, 5, 6, 7, 8, 8, 9, 10, 11, 12, 13]
    expected = ["missing 'video'", "unknown key 'speed'", "missing.mp4", "also job 1's (line 1)", "nowhere.txt",
                "the output would overwrite a source video", "seed: expected an integer",
                "size: --size 50x50", "--freeze 200:3", "must be a video file", "no such depth file",
                "expected a JSON object", "not valid JSON"]
    for (line, text), part in zip(problems, expected):
        assert part in text and text.startswith(f"line {line}: "), (part, text)
    error = info.value
    assert error.exit_code == 3 and error.path == str(manifest) and "\n" not in error.one_line()
    assert error.one_line().startswith(f"{manifest}: 13 problems in the jobs (nothing was run): line 2: "
                                       "missing 'video'")


def test_an_output_may_not_overwrite_the_manifest_or_a_trajectory(tmp_path):
    clips(tmp_path, "a")
    trajectories(tmp_path)
    read = read_manifest(write(tmp_path / "jobs.csv", "video,trajectory,output\na.mp4,orbit.txt,jobs.mp4\n"
                               "a.mp4,dolly_in,orbit.mp4\n"))
    jobs = plan_jobs(read.rows, JobDefaults(), base=read.base, manifest=read.path)
    assert [j.output.name for j in jobs] == ["jobs.mp4", "orbit.mp4"]  # only the stems are the same
    with pytest.raises(InvalidJobs, match="the sidecar would overwrite the manifest"):
        read = read_manifest(write(tmp_path / "jobs.json", '{"video": "a.mp4", "trajectory": "orbit.txt", '
                                                         '"output": "jobs.mp4"}\n'))
        plan_jobs(read.rows, JobDefaults(), base=read.base, manifest=read.path)


def test_shards_split_the_list_deterministically():
    jobs = [Job(n, n, Path(f"{n}.mp4"), "t", Path(f"o{n}.mp4"), 0, None, None, CameraOptions(), None, "stretch",
                None, 18, True, False, None, 9, 1) for n in range(1, 12)]
    for count in (1, 2, 3, 5, 20):
        parts = [select_shard(jobs, (k, count)) for k in range(1, count + 1)]
        assert sorted(j.number for part in parts for j in part) == list(range(1, 12))
        assert [j.number for j in parts[0]] == list(range(1, 12, count))
    assert parse_shard("2/4") == (2, 4)
    for bad in ("0/2", "3/2", "1", "a/b", "1/2/3"):
        with pytest.raises(UsageError):
            parse_shard(bad)


# --------------------------------------------------------------------------------------------------
# Rendering


@pytest.fixture
def weights_with_depth(tiny_weights, tmp_path) -> Path:
    """The tiny checkpoints plus a stand-in file for the default depth model (its loader is replaced)."""
    root = tmp_path / "weights"
    for rel in WEIGHT_FILES.values():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(tiny_weights / rel)
    (root / "DA3").mkdir()
    (root / "DA3" / "model.safetensors").write_bytes(b"stand-in")
    return root


def test_cross_product_models_once_depth_once_per_video(weights_with_depth, tmp_path, capsys, monkeypatch):
    """2 videos x 3 trajectories: 6 outputs, each one's frames equal to a single render's; the depth model is
    built and run twice, the generator, autoencoder and text encoder once; --json lines all parse."""
    written: dict[str, list[torch.Tensor]] = {}
    real_write = stream.VideoWriter.write

    def recording_write(self, frames):
        written.setdefault(Path(self.path).name, []).append(frames.clone())
        return real_write(self, frames)

    monkeypatch.setattr(stream.VideoWriter, "write", recording_write)
    loads = Counter(lambda *args: tiny_net())
    runs = Counter(estimate.estimate_depth)
    generator_loads = Counter(dit.load_generator)
    encoder_runs = Counter(PromptEmbedder._run_encoder)
    monkeypatch.setattr(estimate, "load_model", loads)
    monkeypatch.setattr(estimate, "estimate_depth", runs)
    monkeypatch.setattr(dit, "load_generator", generator_loads)
    monkeypatch.setattr(PromptEmbedder, "_run_encoder", lambda self, tokens: encoder_runs(self, tokens))
    clips(tmp_path, "ab", depth=False)
    trajs = trajectories(tmp_path)
    t_args = [a for t in trajs for a in ("-t", t)]
    code, stdout, err = run(capsys, "rerender", "a.mp4", "b.mp4", *t_args, "-o", "out/", "--weights-dir",
                            weights_with_depth, *FAST, "--prompt", "a room", "--json")
    assert code == 0, err
    assert (loads.calls, runs.calls, generator_loads.calls, encoder_runs.calls) == (2, 2, 1, 1)
    events = events_of(stdout)
    assert numbers(events, "job_done") == [1, 2, 3, 4, 5, 6] and events[-1]["event"] == "summary"
    results = [e for e in events if e["event"] == "result"]
    assert [r["job"] for r in results] == [1, 2, 3, 4, 5, 6]  # the renders' own events, tagged
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted(f"{v}__{Path(t).stem}.{ext}" for v in "ab" for t in trajs for ext in ("mp4", "json"))
    for result in results:
        sidecar = json.loads(Path(result["output"]).with_suffix(".json").read_text())
        assert {w["name"] for w in sidecar["weights"]} >= {"generator", "tae"}
        assert "estimate" in sidecar["scene"]["depth"] and probe(result["output"]).frame_count == 20
    # the 5th job, rendered alone by a fresh renderer, gives the same frames: nothing leaks between jobs
    Rerenderer(weights_with_depth, device="cpu", decoder="tae").render(
        "b.mp4", "dolly_in", tmp_path / "alone.mp4", prompt="a room", size=(H, W))
    assert torch.equal(torch.cat(written["alone.mp4"]), torch.cat(written["b__dolly_in.mp4"]))
    assert loads.calls == 2  # the cached estimate is reused


def test_batch_prompts_embedded_once_then_per_job_overrides(tiny_weights, tmp_path, capsys, monkeypatch):
    encoder_runs = Counter(PromptEmbedder._run_encoder)
    monkeypatch.setattr(PromptEmbedder, "_run_encoder", lambda self, tokens: encoder_runs(self, tokens))
    clips(tmp_path, "ab")
    trajectories(tmp_path)
    write(tmp_path / "jobs.jsonl", '{"video": "a.mp4", "prompt": "a cat"}\n'
                                   '{"video": "b.mp4", "prompt": "a dog", "trajectory": "dolly_in", "seed": 4}\n'
                                   '{"video": "b.mp4", "output": "custom.mkv", "crf": 40}\n')
    code, stdout, err = run(capsys, "batch", "jobs.jsonl", "-t", "orbit.txt", "-o", "out", "--prompt", "a bird",
                            "--weights-dir", tiny_weights, *FAST, "--json", "--seed", 2, "--save-condition", "cond")
    assert code == 0, err
    assert encoder_runs.calls == 1  # three prompts, one text encoder load, before the generator
    done = [e for e in events_of(stdout) if e["event"] == "job_done"]
    assert [Path(e["output"]) for e in done] == [Path("out/a__orbit__2.mp4"), Path("out/b__dolly_in__4.mp4"),
                                                 Path("out/custom.mkv")]  # several seeds: named with them
    sidecars = [json.loads(Path(e["sidecar"]).read_text()) for e in done]
    assert [s["prompt"]["text"] for s in sidecars] == ["a cat", "a dog", "a bird"]
    assert [s["settings"]["seed"] for s in sidecars] == [2, 4, 2] and sidecars[2]["settings"]["crf"] == 40
    assert sorted(p.name for p in (tmp_path / "cond").iterdir()) == ["a__orbit__2", "b__dolly_in__4", "custom"]
    assert probe(tmp_path / "cond" / "custom" / "warped.mp4").frame_count == 20


def _manifest(tmp_path: Path, frames: int) -> Path:
    clips(tmp_path, "ab", frames=frames)
    trajs = trajectories(tmp_path)
    return write(tmp_path / "jobs.csv", "video,trajectory\n" + "".join(f"{v}.mp4,{t}\n" for v in "ab" for t in trajs))


def test_killed_batch_redoes_only_unfinished_jobs(tiny_weights, tmp_path):
    """SIGKILL after the 3rd finished job: the rerun renders jobs 4-6 only; then a changed setting redoes
    that job alone."""
    manifest = _manifest(tmp_path, 36)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "INSPATIO_CACHE_DIR": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "inspatio_cli", "batch", str(manifest), "-o", str(tmp_path / "out"),
               "--weights-dir", str(tiny_weights), *FAST, "--prompt", "x", "--json"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        finished = []
        for line in proc.stdout:
            event = json.loads(line)
            if event["event"] == "job_done":
                finished.append(event["job"])
                if len(finished) == 3:
                    proc.kill()
                    break
        proc.communicate(timeout=60)
    assert finished == [1, 2, 3] and proc.returncode == -signal.SIGKILL
    outputs = sorted((tmp_path / "out").glob("*.mp4"))
    assert len(outputs) == 3
    stamps = {p: p.stat().st_mtime_ns for p in outputs}

    def again(*extra) -> list[dict]:
        done = subprocess.run(command + list(extra), capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        return events_of(done.stdout)

    events = again()
    assert numbers(events, "job_skipped") == [1, 2, 3] and numbers(events, "job_done") == [4, 5, 6]
    assert {p: p.stat().st_mtime_ns for p in outputs} == stamps
    assert not [p for p in (tmp_path / "out").iterdir() if ".inspatio-tmp-" in p.name]
    summary = events[-1]
    assert (summary["event"], summary["done"], summary["skipped"], summary["failed"]) == ("summary", 3, 3, 0)
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join([lines[0] + ",crf"] + [f"{ln},{30 if ln == 'b.mp4,dolly_in' else ''}"
                                                          for ln in lines[1:]]) + "\n")
    events = again("--shard", "2/3")
    assert numbers(events, "job_done") == [5] and numbers(events, "job_skipped") == [2]


def test_a_broken_input_fails_alone(tiny_weights, tmp_path, capsys):
    clips(tmp_path, "abc")
    trajectories(tmp_path)
    (tmp_path / "b.depth.safetensors").write_bytes(b"\0" * 300)  # damaged: found only when the job runs
    write(tmp_path / "videos.txt", "a.mp4\nb.mp4\nc.mp4\n")
    args = ["batch", "videos.txt", "-t", "orbit.txt", "-o", "out", "--weights-dir", tiny_weights, *FAST,
            "--prompt", "x"]
    code, stdout, err = run(capsys, *args, "--json")
    assert code == 1
    events = events_of(stdout)
    assert numbers(events, "job_done") == [1, 3] and numbers(events, "job_failed") == [2]
    failed = next(e for e in events if e["event"] == "job_failed")
    assert "b.depth.safetensors" in failed["error"] and failed["exit_code"] == 3
    assert events[-2]["failed"] == 1 and events[-2]["done"] == 2 and events[-2]["failures"][0]["job"] == 2
    assert events[-1] == {"event": "error", "message": "1 job(s) failed", "exit_code": 1}
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: job 2 (out/b__orbit.mp4): ")
    assert sorted(p.name for p in (tmp_path / "out").glob("*.mp4")) == ["a__orbit.mp4", "c__orbit.mp4"]
    code, stdout, err = run(capsys, *args, "--quiet", "--fail-fast", "--force")
    assert code == 1 and stdout == "" and err.count("\n") == 1 and err.startswith("error: job 2 ")
    code, stdout, _ = run(capsys, *args, "--json", "--fail-fast", "--force")
    events = events_of(stdout)
    assert events[-2]["not_run"] == 1 and numbers(events, "job_done") == [1] and events[-1]["event"] == "error"


def test_two_shards_render_every_job_exactly_once(tiny_weights, tmp_path, capsys, monkeypatch):
    """A plain list of videos from stdin with two -t: --shard 1/2 and 2/2 share the 4 jobs; the JSON lines
    parse, only known events appear, chunk events count every chunk and the summaries match."""
    clips(tmp_path, "ab")
    trajectories(tmp_path)
    seen = []
    for k in (1, 2):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a.mp4\nb.mp4\n")))
        code, stdout, err = run(capsys, "batch", "-", "-t", "orbit.txt", "-t", "orbit_left", "-o", "out",
                                "--weights-dir", tiny_weights, *FAST, "--prompt", "x", "--json", "--shard", f"{k}/2")
        assert code == 0, err
        events = events_of(stdout)
        assert {e["event"] for e in events} <= EVENTS
        done = numbers(events, "job_done")
        seen += done
        summary = events[-1]
        assert summary["event"] == "summary" and summary["shard"] == f"{k}/2" and summary["total_jobs"] == 4
        assert summary["done"] == len(done) == summary["jobs"] == 2 and summary["frames"] == 40
        assert [e["chunk"] for e in events if e["event"] == "chunk_done"] == [1, 2, 1, 2]
    assert sorted(seen) == [1, 2, 3, 4] and seen == [1, 3, 2, 4]
    assert len(list((tmp_path / "out").glob("*.mp4"))) == 4


def test_manifest_errors_on_the_command_line_before_any_model(tiny_weights, tmp_path, capsys, monkeypatch):
    def no_models(self, *args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(Rerenderer, "load_models", no_models)
    monkeypatch.setattr(Rerenderer, "embed_prompts", no_models)
    clips(tmp_path, "a")
    trajectories(tmp_path)
    write(tmp_path / "jobs.csv", "video,trajectory,output,steps\na.mp4,orbit.txt,o.mp4,4\n")
    code, stdout, err = run(capsys, "batch", "jobs.csv", "--weights-dir", tiny_weights, "--json")
    assert code == 3 and events_of(stdout)[0]["event"] == "invalid"
    assert err.splitlines() == ["error: jobs.csv:1: unknown column 'steps' (allowed: " + ", ".join(
        ALL_KEYS) + ")", "error: jobs.csv: 1 problem(s); nothing was run"]
    write(tmp_path / "jobs.csv", "video,trajectory,output\nmissing.mp4,orbit.txt,o.mp4\na.mp4,orbit.txt,o.mp4\n"
                                 "a.mp4,orbit.txt,o.mp4\na.mp4,,\n")
    code, stdout, err = run(capsys, "batch", "jobs.csv", "--weights-dir", tiny_weights)
    assert code == 3 and stdout == ""
    lines = err.splitlines()
    assert [line.split(":")[2] for line in lines[:-1]] == ["2", "4", "5"] and len(lines) == 4
    assert "missing.mp4: no such file" in lines[0] and "also job 2's (line 3)" in lines[1]
    assert "missing 'trajectory' (a column, or -t on the command line)" in lines[2]
    assert not (tmp_path / "o.mp4").exists()
    write(tmp_path / "jobs.csv", "video,trajectory,output,steps\na.mp4,orbit.txt,o.mp4,4\nmissing.mp4,orbit.txt,p.mp4,4\n")
    write(tmp_path / "jobs.jsonl", '{"video": "missing.mp4", "trajectory": "nope", "output": "q.mp4", "speed": 2}\n')
    for manifest, expected in (("jobs.csv", ["1", "3"]), ("jobs.jsonl", ["1", "1"])):
        code, _, err = run(capsys, "batch", manifest, "--weights-dir", tiny_weights)
        lines = err.splitlines()  # an unknown column or key does not hide the rows' other problems
        assert code == 3 and [line.split(":")[2] for line in lines[:-1]] == expected, err


def test_undecodable_prompts_are_refused_before_any_model(tiny_weights, tmp_path, capsys, monkeypatch):
    """A prompt no encoder can read (command-line bytes that are not UTF-8, a lone surrogate escape in a
    manifest) is a one-line input error found while validating: no model is loaded, no cache entry made."""
    def no_models(self, *args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(Rerenderer, "load_models", no_models)
    monkeypatch.setattr(Rerenderer, "embed_prompts", no_models)
    monkeypatch.setenv("INSPATIO_CACHE_DIR", str(tmp_path / "cache"))
    clips(tmp_path, "a")
    trajectories(tmp_path)
    undecodable = b"a caf\xe9".decode("utf-8", "surrogateescape")
    code, stdout, err = run(capsys, "rerender", "a.mp4", "-t", "orbit.txt", "-o", "o.mp4", "--prompt", undecodable,
                            "--weights-dir", tiny_weights, *FAST)
    assert code == 3 and stdout == "" and len(err.splitlines()) == 1
    assert "the prompt holds bytes that are not UTF-8 (at character 5)" in err
    write(tmp_path / "jobs.jsonl", '{"video": "a.mp4", "trajectory": "orbit.txt", "output": "o.mp4", '
                                   '"prompt": "a caf\\udce9"}\n')
    code, stdout, err = run(capsys, "batch", "jobs.jsonl", "--weights-dir", tiny_weights, *FAST)
    assert code == 3 and "jobs.jsonl:1: prompt: the prompt holds bytes that are not UTF-8" in err
    assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "cache").exists()


def test_dry_run_lists_jobs_and_estimates_without_models(tiny_weights, tmp_path, capsys, monkeypatch):
    manifest = _manifest(tmp_path, 20)
    args = ["batch", manifest, "-o", "out", "--weights-dir", tiny_weights, *FAST, "--prompt", "x"]
    code, stdout, err = run(capsys, *args, "--shard", "1/2", "--json")  # render jobs 1, 3 and 5 first
    assert code == 0, err

    def no_models(self, *a, **kw):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(Rerenderer, "load_models", no_models)
    monkeypatch.setattr(Rerenderer, "embed_prompts", no_models)
    code, stdout, err = run(capsys, *args, "--dry-run", "--json")
    assert code == 0, err
    events = events_of(stdout)
    planned = [e for e in events if e["event"] == "job_planned"]
    assert [(e["job"], e["status"], e["frames"], e["chunks"]) for e in planned] == [
        (n, "finished" if n % 2 else "pending", 20, 2) for n in range(1, 7)]
    plan = events[-1]
    assert plan["event"] == "plan" and plan["finished"] == 3 and plan["total_jobs"] == 6
    cost = plan["estimate"]
    assert (cost["jobs"], cost["frames"], cost["chunks"], cost["measured_from"]) == (3, 60, 6, 3)
    assert cost["seconds"] > 0 and cost["frames_per_second"] > 0 and cost["measured_peak_bytes"] > 0
    assert cost["weights_bytes"]["render"] > 0 and cost["weights_bytes"]["depth"] == 0
    code, stdout, err = run(capsys, *args, "--dry-run")
    assert code == 0 and "to render" in stdout and "finished (skipped)" in stdout
    assert "3 to render, 3 finished; 60 frames in 6 generator chunks" in stdout and "time: about" in stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    code, stdout, err = run(capsys, "batch", manifest, "-o", "out", "--weights-dir", empty, *FAST, "--dry-run")
    assert code == 4 and "missing weights" in err and "b__orbit_left.mp4" in stdout


def test_run_jobs_api_skips_finished_jobs_and_reports_outcomes(tiny_weights, tmp_path):
    clips(tmp_path, "a")
    trajectories(tmp_path)
    jobs = plan_inputs(["a.mp4"], JobDefaults(("orbit.txt", "dolly_in"), prompt="x", size=(H, W)), "out/")
    renderer = Rerenderer(tiny_weights, device="cpu", decoder="tae")
    first = run_jobs(jobs[:1], renderer)
    assert [o.status for o in first.outcomes] == ["done"] and first.outcomes[0].result.frames == 20
    second = run_jobs(jobs, renderer)
    assert [o.status for o in second.outcomes] == ["skipped", "done"]
    assert renderer.models.builds == {"generator": 1, "autoencoder": 1}
    assert second.as_dict()["done"] == 1 and second.as_dict()["skipped"] == 1


class FakeCaptioner:
    """Stands in for :class:`caption.Captioner`: a shared cache of captions by video; ``loads`` counts how
    often a model would be loaded (an instance's first cache miss)."""

    cache: dict[str, str] = {}
    loads = 0

    def __init__(self, model_dir=None, **options):
        self.loaded = False

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return None

    def caption(self, video, frame=None):
        key = str(Path(video).resolve())
        if key not in FakeCaptioner.cache:
            if not self.loaded:
                FakeCaptioner.loads, self.loaded = FakeCaptioner.loads + 1, True
            FakeCaptioner.cache[key] = f"a scene from {Path(video).stem}"
        return caption.Caption(str(video), FakeCaptioner.cache[key], 4, "florence-test", self.loaded)


def test_jobs_without_a_prompt_are_captioned_with_one_captioner_load(weights_with_depth, tmp_path, capsys,
                                                                     monkeypatch):
    florence = weights_with_depth / "Florence-2-large-hf" / "model.safetensors"
    florence.parent.mkdir()
    florence.write_bytes(b"stand-in: the captioner is replaced")
    monkeypatch.setattr(caption, "captioning_available", lambda: True)
    monkeypatch.setattr(caption, "Captioner", FakeCaptioner)
    monkeypatch.setattr(FakeCaptioner, "cache", {})
    monkeypatch.setattr(FakeCaptioner, "loads", 0)
    encoder_runs = Counter(PromptEmbedder._run_encoder)
    monkeypatch.setattr(PromptEmbedder, "_run_encoder", lambda self, tokens: encoder_runs(self, tokens))
    clips(tmp_path, "ab")
    trajectories(tmp_path)
    code, stdout, err = run(capsys, "rerender", "a.mp4", "b.mp4", "-t", "orbit.txt", "-t", "dolly_in", "-o", "out",
                            "--weights-dir", weights_with_depth, *FAST, "--json")
    assert code == 0, err
    assert (FakeCaptioner.loads, encoder_runs.calls) == (1, 1)  # both videos captioned, both prompts embedded
    prompts = [e["prompt"] for e in events_of(stdout) if e["event"] == "result"]
    assert [p["text"] for p in prompts] == ["a scene from a"] * 2 + ["a scene from b"] * 2
    assert {p["source"] for p in prompts} == {"caption"}


def test_absurd_time_edits_are_refused_before_allocating(tmp_path):
    """Found by fuzzing the manifest: a freeze count, slow factor or --min-frames of billions made the time
    map allocate tens of GB; the time edits are capped at a million output frames."""
    clips(tmp_path, "a")
    rows = [{"video": "a.mp4", "freeze": "0:10000000000"}, {"video": "a.mp4", "slow": "0:5:1e300"},
            {"video": "a.mp4", "extend": "loop", "min_frames": 10 ** 10},
            {"video": "a.mp4", "freeze": ["0:600000", "3:600000"]}]
    read = read_manifest(write(tmp_path / "jobs.jsonl", "".join(json.dumps(r) + "\n" for r in rows)))
    with pytest.raises(InvalidJobs) as info:
        plan_jobs(read.rows, JobDefaults(("orbit_left",)), base=read.base, output="out")
    assert [p.line for p in info.value.problems] == [1, 2, 3, 4]
    assert all("1000000 output frames" in p.text() for p in info.value.problems)


def test_stale_temporaries_of_other_machines_are_left_alone(tmp_path):
    """Shards on several machines write into one shared folder: a process id that is dead here may be alive
    on another machine, so only this machine's stale temporaries are removed (and the old unnamed ones)."""
    dead = 2 ** 22 + 12345  # above the default pid_max: no such process
    mine = tmp_path / f".a{TEMP_MARK}{dead}-{host_tag()}-0123abcd.mp4"
    other = tmp_path / f".b{TEMP_MARK}{dead}-{'0' * 8 if host_tag() != '0' * 8 else '1' * 8}-0123abcd.mp4"
    legacy = tmp_path / f".c{TEMP_MARK}{dead}-0123abcd.mp4"
    alive = tmp_path / f".d{TEMP_MARK}{os.getpid()}-{host_tag()}-0123abcd.mp4"
    for path in (mine, other, legacy, alive):
        path.write_bytes(b"partial")
    assert sorted(cleanup_stale_temps(tmp_path)) == sorted([mine, legacy])
    assert temp_path_for(tmp_path / "x.mp4").name.startswith(f".x{TEMP_MARK}{os.getpid()}-{host_tag()}-")
