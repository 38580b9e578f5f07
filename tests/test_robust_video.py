"""The broken-video corpus (tests/broken_media.py): every file works or fails with one clear line, and
decoding damaged data keeps the good frames when asked (``skip_bad_frames``) and counts the lost ones."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
import torch

from broken_media import build_corpus
from decoded import read_video
from inspatio_cli.cli import main
from inspatio_cli.depth import DepthResult, estimate
from inspatio_cli.errors import InspatioError, VideoError
from inspatio_cli.video import iter_frames, probe
from media import make_clip, pattern


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("corpus"))


def _by_name(corpus, name):
    return next(case for case in corpus if case.name == name)


def _cli(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out, err = capsys.readouterr()
    return done.value.code, out, err


def _decode(path, skip: bool) -> str:
    """``ok`` when every frame decodes (and as many as probe counts), else the error's one line."""
    try:
        video = read_video(path, skip_bad_frames=skip)
    except InspatioError as exc:
        assert isinstance(exc, VideoError)
        return exc.one_line()
    assert video.num_frames == video.info.frame_count
    return "ok"


def test_every_file_works_or_fails_in_one_line(corpus, capsys):
    assert len(corpus) >= 30
    outcome = {}
    for case in corpus:
        code, out, err = _cli(capsys, "info", "--json", str(case.path))
        assert "Traceback" not in err and "internal error" not in err, (case.name, err)
        assert code in (0, 3), (case.name, code, err)
        if code == 3:
            assert err.count("\n") == 1 and err.startswith(f"error: {case.path}"), (case.name, err)
            event = json.loads(out)  # --json: stdout is the one error event
            assert (event["event"], event["exit_code"]) == ("error", 3) and str(case.path) in event["message"]
            outcome[case.name] = "fails"
            continue
        strict, lenient = _decode(case.path, skip=False), _decode(case.path, skip=True)
        if strict == "ok":
            outcome[case.name] = "works"
        elif lenient == "ok":
            assert "--skip-bad-frames" in strict, (case.name, strict)
            outcome[case.name] = "works with --skip-bad-frames"
        else:
            outcome[case.name] = "fails"
        assert case.expect in ("either", outcome[case.name]), (case.name, outcome[case.name], strict)
    counts = {kind: sum(v == kind for v in outcome.values()) for kind in
              ("works", "works with --skip-bad-frames", "fails")}
    print(f"broken-video corpus: {len(corpus)} files, {counts['works']} work, {counts['works with --skip-bad-frames']} "
          f"work with --skip-bad-frames, {counts['fails']} fail cleanly with one line, 0 tracebacks")
    assert counts["works with --skip-bad-frames"] >= 1


def test_damaged_middle_keeps_every_good_frame_in_place(corpus):
    path = _by_name(corpus, "noise-middle.mp4").path
    with pytest.raises(VideoError, match="use --skip-bad-frames"):
        read_video(path)
    good = read_video(_by_name(corpus, "good.mp4").path)
    stats: dict = {}
    frames = list(iter_frames(path, skip_bad_frames=True, stats=stats))
    assert len(frames) == probe(path).frame_count == good.num_frames
    assert 0 < stats["skipped"] < len(frames)
    stamps = np.array([t for t, _ in frames])
    assert np.allclose(stamps, good.timestamps)  # replaced frames keep their own time
    same = [np.array_equal(image, good.frames[i]) for i, (_, image) in enumerate(frames)]
    replaced = [i for i in range(1, len(frames)) if np.array_equal(frames[i][1], frames[i - 1][1])]
    assert same[0] and len(replaced) >= stats["skipped"]
    assert read_video(path, skip_bad_frames=True).skipped_frames == stats["skipped"]


def test_cut_off_end_is_an_error_unless_skipped(corpus):
    path = _by_name(corpus, "truncated-faststart-0.95.mp4").path
    with pytest.raises(VideoError, match=r"frame\(s\) at the end could not be decoded.*--skip-bad-frames"):
        read_video(path)
    video = read_video(path, skip_bad_frames=True)
    assert video.num_frames == video.info.frame_count and video.skipped_frames > 0
    assert np.array_equal(video.frames[-1], video.frames[-1 - video.skipped_frames])


def test_a_cut_off_index_first_file_is_recognised(corpus, capsys, tmp_path):
    """An mp4 whose index comes first, cut in the middle (a partial download): the index still lists every
    frame, the data holds fewer. info says so; preview refuses before any work unless --skip-bad-frames,
    then uses the frames that are there and says how many the index lists."""
    path = _by_name(corpus, "truncated-faststart-0.95.mp4").path
    facts = probe(path)
    assert facts.missing_frames > 0 and facts.frame_count + facts.missing_frames == 12
    code, out, _ = _cli(capsys, "info", str(path))
    assert code == 0 and f"{facts.frame_count} of 12 (cut off)" in out
    depth = _depth_for(path, tmp_path)
    args = ["preview", str(path), "-t", "static", "-o", str(tmp_path / "p.mp4"), "--depth", depth]
    code, _, err = _cli(capsys, *args)
    assert code == 3 and "the file is cut off: its index lists 12 frames" in err and "--skip-bad-frames" in err
    assert not (tmp_path / "p.mp4").exists()
    code, _, err = _cli(capsys, *args, "--skip-bad-frames")
    assert code == 0 and f"using those {facts.frame_count} frames" in err
    assert probe(tmp_path / "p.mp4").frame_count == facts.frame_count


def test_healthy_files_lose_nothing(tmp_path):
    path = make_clip(tmp_path / "c.mp4", pattern(20, 32, 48), 25)
    stats: dict = {}
    strict = read_video(path)
    lenient = [image for _, image in iter_frames(path, skip_bad_frames=True, stats=stats)]
    assert stats["skipped"] == 0 and np.array_equal(np.stack(lenient), strict.frames)


def test_probe_passes_over_damaged_leading_packets(tmp_path):
    path = make_clip(tmp_path / "c.mp4", pattern(30, 32, 48), 25, codec_options={"g": "5", "bf": "0"})
    with av.open(str(path)) as container:
        first = next(p for p in container.demux(video=0) if p.size)
        start, size = first.pos, first.size
    data = bytearray(path.read_bytes())
    data[start + 8:start + size] = np.random.default_rng(0).integers(0, 256, size - 8, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    assert probe(path).frame_count == 30
    with pytest.raises(VideoError, match="--skip-bad-frames"):
        read_video(path)
    video = read_video(path, skip_bad_frames=True)
    assert video.num_frames == 30 and video.skipped_frames >= 1


def _depth_for(path, folder) -> str:
    """A small synthetic depth file matching ``path``'s frame count (24x32 canvas)."""
    n = probe(path).frame_count
    K = torch.tensor([[30.0, 0, 16], [0, 30.0, 12], [0, 0, 1]]).expand(n, 3, 3).clone()
    depth = DepthResult(depth=torch.full((n, 24, 32), 2.0), K=K, c2w=torch.eye(4).expand(n, 4, 4).clone())
    return str(depth.save(folder / f"{path.name}.depth.safetensors"))


def test_preview_over_the_corpus(corpus, capsys, tmp_path):
    """The command that decodes every frame: works, works with --skip-bad-frames (and says how many frames
    were lost), or fails with one line; never a traceback, never an output file when it fails."""
    tally = {"works": 0, "works with --skip-bad-frames": 0, "fails": 0}
    for case in corpus:
        try:
            depth = _depth_for(case.path, tmp_path)
        except VideoError:
            tally["fails"] += 1
            continue
        output = tmp_path / f"{case.path.name}.preview.mp4"
        args = ["preview", str(case.path), "-t", "static", "-o", str(output), "--depth", depth, "--layout", "warped"]
        code, out, err = _cli(capsys, *args, "--json")
        assert "Traceback" not in err and code in (0, 3), (case.name, code, err)
        if code == 0:
            tally["works"] += 1
            assert json.loads(out.splitlines()[-1])["lost_frames"] == 0
            continue
        assert err.count("\n") == 1 and not output.exists(), (case.name, err)
        assert case.expect != "works", (case.name, err)
        if "--skip-bad-frames" not in err:
            tally["fails"] += 1
            continue
        cut_off = "the file is cut off" in err  # an index listing frames beyond the end: the rest is used
        code, out, err = _cli(capsys, *args, "--json", "--skip-bad-frames")
        assert code == 0 and output.exists(), (case.name, err)
        lost = json.loads(out.splitlines()[-1])["lost_frames"]
        told = f"{lost} of {probe(case.path).frame_count} frames could not be decoded" in " ".join(err.split())
        assert (lost > 0 and told) or (cut_off and "using those" in err), (case.name, err)
        tally["works with --skip-bad-frames"] += 1
    print(f"preview over the broken-video corpus: {len(corpus)} files, " +
          ", ".join(f"{count} {kind}" for kind, count in tally.items()) + ", 0 tracebacks")
    assert tally["works with --skip-bad-frames"] >= 2 and not [p for p in tmp_path.iterdir() if ".inspatio-tmp-" in p.name]


def test_depth_command_with_skip_bad_frames(corpus, capsys, monkeypatch, tmp_path):
    from test_depth_estimate import CountingLoader

    monkeypatch.setenv("INSPATIO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(estimate, "load_model", CountingLoader())
    video = _by_name(corpus, "noise-middle.mp4").path
    target = tmp_path / "noise.depth.safetensors"
    args = ["depth", str(video), "-o", str(target), "--model", "base-metric", "--size", "28x42", "--window", "4",
            "--device", "cpu", "--dtype", "fp32", "--no-cache"]
    code, _, err = _cli(capsys, *args)
    assert code == 3 and "--skip-bad-frames" in err and err.count("\n") == 1 and not target.exists()
    code, _, err = _cli(capsys, *args, "--skip-bad-frames")
    saved = DepthResult.load(target)
    assert code == 0 and saved.num_frames == probe(video).frame_count
    assert int(saved.meta["lost_frames"]) > 0 and "could not be decoded" in err


def test_rerender_command_with_skip_bad_frames(corpus, capsys, tiny_weights, tmp_path):
    video = _by_name(corpus, "noise-middle.mp4").path
    output = tmp_path / "render.mp4"
    args = ["rerender", str(video), "-t", "orbit_left", "-o", str(output), "--depth", _depth_for(video, tmp_path),
            "--weights-dir", str(tiny_weights), "--size", "48x64", "--device", "cpu", "--decoder", "tae",
            "--prompt", "x", "--quiet"]
    code, _, err = _cli(capsys, *args)
    assert code == 3 and "--skip-bad-frames" in err and err.count("\n") == 1
    assert not output.exists() and not output.with_suffix(".json").exists()
    code, _, err = _cli(capsys, *args, "--skip-bad-frames")
    summary = json.loads(output.with_suffix(".json").read_text())
    assert code == 0 and summary["lost_frames"] > 0 and probe(output).frame_count == probe(video).frame_count
