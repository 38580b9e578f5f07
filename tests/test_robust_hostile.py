"""What a hostile world throws at the command line, one test per class of input (issue 23): symbolic link
loops anywhere a path goes, bad ``--name`` templates, output and condition folders that collide with
inputs or other outputs, a console that cannot encode the text, ``--json`` output of failing commands,
prompt files and manifests that are pipes, unreadable arguments, hostile depth and weights files."""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import struct
import sys
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from clirun import run
from inspatio_cli.batch import JobDefaults, plan_inputs, plan_jobs, plan_manifest
from inspatio_cli.batch.manifest import InvalidJobs, Row
from inspatio_cli.cli import main
from inspatio_cli.depth import DepthResult
from inspatio_cli.errors import DepthError, InputError, UsageError, WeightsError
from inspatio_cli.files import OutputClaims
from inspatio_cli.weights.io import meta_state, read_state_dict
from test_preview_pipeline import scene_files

@pytest.fixture
def scene(tmp_path, monkeypatch):
    """A 48x80 clip with its sidecar depth and an orbit file in ``tmp_path/scene``; cwd is ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INSPATIO_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "scene").mkdir()
    return scene_files(tmp_path / "scene", 4, 10)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and "cache" not in p.parts}


def _one_line(code: int, err: str, expected_code: int, *words: str) -> None:
    assert code == expected_code and err.count("\n") == 1 and err.startswith("error: "), (code, err)
    assert all(w in err for w in words), err


def test_symbolic_link_loops_are_one_line_errors_and_nothing_is_written(scene, capsys, tmp_path):
    os.symlink("loop", tmp_path / "loop")
    before = _files(tmp_path)
    video, traj = scene["video"], scene["traj"]
    for args, code, words in [
            (("-o", "loop/p.mp4"), 3, ("loop/p.mp4", "symbolic link loop")),
            (("-o", "p.mp4", "--save-condition", "loop"), 3, ("loop/warped.mp4", "symbolic link loop")),
            (("-o", "p.mp4", "--save-condition", "loop/deeper"), 3, ("symbolic link loop",)),
            (("-o", "p.mp4", "--depth", "loop"), 3, ("loop:", "symbolic link loop")),
            (("-o", "p.mp4", "-t", "loop"), 3, ("loop",))]:
        extra = () if "-t" in args else ("-t", traj)
        result, _, err = run(capsys, "preview", video, *extra, *args, "--quiet")
        _one_line(result, err, code, *words)
    result, _, err = run(capsys, "batch", "loop", "-t", traj, "-o", "out", "--dry-run")
    _one_line(result, err, 3, "loop", "symbolic link")
    result, _, err = run(capsys, "models", "verify", "--weights-dir", "loop")
    assert result == 4 and "symbolic link loop" in err, err
    with pytest.raises(InputError, match="symbolic link"):
        JobDefaults(("orbit_left",), prompt_file=tmp_path / "loop").checked()
    assert _files(tmp_path) == before


def test_bad_name_templates_are_usage_errors_before_any_work(scene, tmp_path):
    defaults = JobDefaults((str(scene["traj"]),))
    for name in ["{video:d}", "{video!x}", "{video:99999999}", "{seed:s}", "{nothing}", "{video", "x}",
                 "{video:{seed}}", "{}", "{video[0]}", "{video:>300}"]:
        with pytest.raises(UsageError, match=r"^--name ") as info:
            plan_inputs([scene["video"]], defaults, tmp_path / "out", name)
        assert info.value.exit_code == 2 and "\n" not in str(info.value)
    jobs = plan_inputs([scene["video"]], defaults, tmp_path / "out", "{seed:03d}-{video!s}-{index}")
    assert jobs[0].output == tmp_path / "out" / "000-clip-1.mp4"


def test_outputs_and_condition_folders_may_not_take_the_place_of_inputs_or_other_outputs(scene, tmp_path):
    video, traj = str(scene["video"]), str(scene["traj"])
    defaults = JobDefaults((traj,))

    def problems(*rows: dict) -> list[str]:
        with pytest.raises(InvalidJobs) as info:
            plan_jobs([Row(n, {"video": video, **row}, False) for n, row in enumerate(rows, 1)], defaults,
                      base=tmp_path, output=tmp_path / "out")
        return [p.text() for p in info.value.problems]

    found = problems({"output": "a.mp4"}, {"output": "b.mp4", "save_condition": "out/a.mp4"})
    assert found == [f"line 2: {tmp_path}/out/a.mp4: the condition video warped.mp4 needs this to be a folder, but "
                     "it is job 1's (line 1) output"]
    found = problems({"output": "b.mp4", "save_condition": "out/c"}, {"output": "c"})
    assert len(found) == 1 and "the output must be a video file" in found[0]
    found = problems({"output": "b.mp4", "save_condition": "out/c.mp4"}, {"output": "c.mp4"})
    assert found == [f"line 2: {tmp_path}/out/c.mp4: the output is the folder of job 1's (line 1) condition video "
                     "warped.mp4; give each output its own name"]
    found = problems({"output": "b.mp4", "save_condition": video})
    assert found == [f"line 1: {video}: the condition video warped.mp4 needs this to be a folder, but it is a "
                     "source video"]
    found = problems({"output": "x/b.mp4", "save_condition": traj + "/c"})
    assert "needs this to be a folder, but it is a trajectory file" in found[0]
    (tmp_path / "file").write_text("mine")
    claims = OutputClaims({})
    assert "cannot create the folder of the output: it is a file" in str(claims.claim(tmp_path / "file" / "x.mp4", "the output"))
    assert "is a folder" in str(claims.claim(tmp_path / "scene", "the output"))
    assert claims.claim(tmp_path / "new" / "deeper" / "x.mp4", "the output") is None
    assert "is the folder of" in str(claims.claim(tmp_path / "new" / "deeper", "the sidecar"))


def test_an_ascii_console_gets_escapes_not_encoding_errors(scene, tmp_path, monkeypatch):
    """``PYTHONIOENCODING=ascii`` (strict ASCII streams) with non-ASCII paths: error lines and tables are
    escaped, JSON is ASCII; the streams are as they were afterwards."""
    odd = tmp_path / "caf\u00e9 \u2615"
    odd.mkdir()
    (odd / "out.mp4").write_bytes(b"mine")

    def run_ascii(*args: object) -> tuple[int, str, str]:
        out, err = (io.TextIOWrapper(io.BytesIO(), encoding="ascii", errors="strict") for _ in range(2))
        monkeypatch.setattr(sys, "stdout", out)
        monkeypatch.setattr(sys, "stderr", err)
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in args])
        assert out.errors == err.errors == "strict"
        texts = []
        for stream in (out, err):
            stream.flush()
            texts.append(stream.buffer.getvalue().decode("ascii"))
        return exit_info.value.code, *texts

    code, out, err = run_ascii("preview", scene["video"], "-t", scene["traj"], "-o", odd / "out.mp4", "--json")
    assert code == 2 and "caf\\xe9 \\u2615/out.mp4: the output already exists" in err
    event = json.loads(out.splitlines()[-1])
    assert event["event"] == "error" and f"{odd}/out.mp4" in event["message"]
    code, out, err = run_ascii("info", scene["video"], odd)
    assert code == 3 and "clip.mp4" in out and "caf\\xe9" in err


def test_every_failing_command_ends_its_json_output_with_the_error_event(scene, capsys, tmp_path, monkeypatch):
    def last_event(*args: object) -> tuple[int, dict]:
        code, out, _ = run(capsys, *args, "--json")
        return code, json.loads(out.splitlines()[-1])

    code, event = last_event("info", scene["video"], tmp_path)
    assert code == 3 and event == {"event": "error", "message": f"{tmp_path}: is a directory, not a video file",
                                   "exit_code": 3}
    (tmp_path / "jobs.jsonl").write_text('{"video": "nothing.mp4"}\n')
    code, event = last_event("batch", "jobs.jsonl", "-t", scene["traj"], "-o", "out")
    assert code == 3 and event["event"] == "error" and "1 problem(s); nothing was run" in event["message"]
    code, event = last_event("info", "--no-such-option")
    assert code == 2 and event["event"] == "error" and "--no-such-option" in event["message"]
    bad = tmp_path / "weights" / "InSpatio-World-1.3B" / "InSpatio-World-1.3B.safetensors"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not weights")
    code, event = last_event("models", "verify", "--weights-dir", tmp_path / "weights", "--only", "generator")
    assert code == 1 and event == {"event": "error", "message": "failed with exit code 1 (the errors are on stderr)",
                                   "exit_code": 1}

    def broken(*_args, **_kwargs):
        raise ZeroDivisionError("a bug")

    from inspatio_cli import video
    monkeypatch.setattr(video, "probe", broken)
    code, event = last_event("info", scene["video"])
    assert code == 1 and event["exit_code"] == 1 and "internal error: ZeroDivisionError: a bug" in event["message"]


def _safetensors_bytes(header: dict | bytes, data: bytes = b"") -> bytes:
    """A safetensors file: the 8-byte header size, the ``header`` (as JSON, or these bytes), then ``data``."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def test_hostile_depth_files_are_one_line_depth_errors(tmp_path):
    frames, K = 2, torch.tensor([[10.0, 0, 6], [0, 10.0, 4], [0, 0, 1]]).expand(2, 3, 3).contiguous()
    good = DepthResult(torch.rand(frames, 8, 12) + 1, K, torch.eye(4).repeat(frames, 1, 1))
    good.save(tmp_path / "good.safetensors")
    deep = b"[" * 100_000 + b"]" * 100_000
    (tmp_path / "deep.safetensors").write_bytes(struct.pack("<Q", len(deep)) + deep)
    with gzip.open(tmp_path / "bomb.safetensors.gz", "wb", compresslevel=1) as packed:
        packed.write((tmp_path / "good.safetensors").read_bytes())
        for _ in range(64):  # 64 MiB of zeros past the promised end, from a file of a few hundred KiB
            packed.write(bytes(1 << 20))
    with gzip.open(tmp_path / "claims.safetensors.gz", "wb") as packed:
        packed.write(struct.pack("<Q", 1 << 40) + b"{")
    for name, flaw in [("mirrored", lambda c2w: c2w[1, 0].neg_()), ("sheared", lambda c2w: c2w[0, 0, 1].add_(0.5)),
                       ("nan", lambda c2w: c2w[1, 2, 3].fill_(float("nan"))),
                       ("inf", lambda c2w: c2w[0, 0, 3].fill_(float("inf")))]:
        c2w = torch.eye(4).repeat(frames, 1, 1)
        flaw(c2w)
        save_file({"depth": good.depth, "K": K, "c2w": c2w}, str(tmp_path / f"{name}.safetensors"),
                  metadata={"format": "inspatio-depth"})
    expected = {"deep.safetensors": "too deeply nested",
                "bomb.safetensors.gz": "decompresses to more than the",
                "claims.safetensors.gz": "the header claims 1099511627776 bytes",
                "mirrored.safetensors": "c2w rotations are mirrored (determinant -1, first at frame 1)",
                "sheared.safetensors": "c2w rotations are not orthonormal",
                "nan.safetensors": "c2w has non-finite values (first at frame 1)",
                "inf.safetensors": "c2w has non-finite values (first at frame 0)"}
    for name, problem in expected.items():
        with pytest.raises(DepthError) as info:
            DepthResult.load(tmp_path / name)
        assert problem in info.value.one_line() and info.value.exit_code == 3 and "\n" not in str(info.value)


def test_hostile_weights_files_are_one_line_weights_errors(tmp_path):
    entry = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
    files = {"meta-values.safetensors": _safetensors_bytes({"__metadata__": {"n": 1}, "w": entry}, bytes(4)),
             "meta-list.safetensors": _safetensors_bytes({"__metadata__": [1], "w": entry}, bytes(4)),
             "dtype.safetensors": _safetensors_bytes({"w": {**entry, "dtype": "X99"}}, bytes(4)),
             "offsets.safetensors": _safetensors_bytes({"w": {**entry, "data_offsets": [0, 1 << 40]}}, bytes(4)),
             "nested.safetensors": _safetensors_bytes(b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    torch.save({1: torch.zeros(2)}, tmp_path / "int-keys.pth")
    torch.save({"w": torch.zeros(2, device="meta")}, tmp_path / "meta.pth")
    torch.save({"w": torch.zeros(2).to_sparse()}, tmp_path / "sparse.pth")
    expected = {**dict.fromkeys(files, "unreadable safetensors"), "int-keys.pth": "keys that are not strings: 1",
                "meta.pth": "w (meta, no data)", "sparse.pth": "w (sparse_coo)"}
    for name, problem in expected.items():
        for read in (read_state_dict, meta_state):
            with pytest.raises(WeightsError) as info:
                read(tmp_path / name)
            assert problem in info.value.one_line() and info.value.exit_code == 4
    os.symlink("loop.safetensors", tmp_path / "loop.safetensors")
    with pytest.raises(WeightsError, match="symbolic link loop"):
        read_state_dict(tmp_path / "loop.safetensors")


def _pipe(path: Path, text: str) -> threading.Thread:
    """A FIFO at ``path`` (as a shell's ``<(...)`` makes) that a thread fills with ``text`` once read."""
    os.mkfifo(path)

    def fill() -> None:
        with open(path, "w", encoding="utf-8") as fifo:
            fifo.write(text)

    writer = threading.Thread(target=fill, daemon=True)
    writer.start()
    return writer


def test_prompt_files_and_manifests_that_are_pipes_are_read_once(scene, tmp_path):
    _pipe(tmp_path / "prompt", "a caf\u00e9 at dusk\n")
    defaults = JobDefaults((str(scene["traj"]),), prompt_file=tmp_path / "prompt")
    jobs = plan_inputs([scene["video"]], defaults, tmp_path / "out" / "a.mp4")
    assert (jobs[0].prompt, jobs[0].prompt_file) == ("a caf\u00e9 at dusk\n", None)
    _pipe(tmp_path / "row-prompt", "from the row\n")
    _pipe(tmp_path / "jobs", json.dumps({"video": "scene/clip.mp4", "output": "out/b.mp4",
                                         "prompt_file": str(tmp_path / "row-prompt")}) + "\n")
    jobs = plan_manifest(tmp_path / "jobs", JobDefaults((str(scene["traj"]),)))
    assert [(j.video, j.prompt, j.prompt_file) for j in jobs] == [(Path("scene/clip.mp4"), "from the row\n", None)]


def test_unreadable_arguments_are_bad_input_or_weights_not_usage_errors(scene, capsys, tmp_path, monkeypatch):
    """A weights file the process may not read says "permission denied" (simulated: the tests may run as
    root, where permissions do not bite); as another user, every unreadable argument is our one line with
    exit 3 (inputs) or 4 (weights), and an output folder that cannot be written in is refused before work."""
    weights = tmp_path / "w.safetensors"
    save_file({"w": torch.zeros(2)}, str(weights))
    opened = Path.open

    def deny(self, *args, **kwargs):
        if self == weights:
            raise PermissionError(13, "Permission denied", str(self))
        return opened(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", deny)
    for read in (read_state_dict, meta_state):
        with pytest.raises(WeightsError, match="permission denied: the weights file cannot be read"):
            read(weights)
    monkeypatch.undo()
    locked = {name: tmp_path / name for name in ("prompt.txt", "jobs.jsonl", "locked", "w")}
    locked["prompt.txt"].write_text("x")
    locked["jobs.jsonl"].write_text(json.dumps({"video": str(scene["video"])}) + "\n")
    locked["locked"].mkdir()
    locked["w"].mkdir()
    for path in locked.values():
        path.chmod(0)
    try:
        if os.access(locked["prompt.txt"], os.R_OK):
            pytest.skip("file permissions do not apply to this process (root)")
        base = ["preview", scene["video"], "-t", scene["traj"], "--quiet"]
        for args, code in [((*base, "-o", tmp_path / "locked" / "p.mp4"), 3),
                           (("batch", locked["jobs.jsonl"], "-t", scene["traj"], "-o", "out", "--dry-run"), 3),
                           (("models", "verify", "--weights-dir", locked["w"]), 4)]:
            result, _, err = run(capsys, *args)
            _one_line(result, err, code, "ermission denied")
        with pytest.raises(InputError, match="Permission denied"):
            JobDefaults(("orbit_left",), prompt_file=locked["prompt.txt"]).checked()
    finally:
        for path in locked.values():
            path.chmod(0o700)


@pytest.mark.fuzz
def test_random_name_templates_plan_or_fail_as_usage_errors(scene, tmp_path):
    """Random ``--name`` templates from the characters of fields and format specs: each one either names
    the output or is a one-line usage error, never another exception."""
    rng = random.Random(23)
    pieces = ["{", "}", "video", "trajectory", "seed", "index", "!", "r", "x", ":", ">", "<", "^", "0", "3", "9",
              "999", ".", "d", "s", "x", "e", "_", "/", "[", "]"]
    defaults = JobDefaults((str(scene["traj"]),))
    for _ in range(400):
        name = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 8)))
        try:
            jobs = plan_inputs([scene["video"]], defaults, tmp_path / "out", name)
        except UsageError as exc:
            assert exc.exit_code == 2 and "\n" not in str(exc)
        except InvalidJobs as exc:  # a name the file system refuses: a problem of the job, exit 3
            assert exc.exit_code == 3
        else:
            assert jobs[0].output.suffix in (".mp4", ".m4v", ".mov", ".mkv")
