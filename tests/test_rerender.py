"""``Rerenderer``: the whole pipeline on tiny random checkpoints in the official layout (``tiny_weights``):
outputs, determinism, the streaming plumbing against whole-clip references, constant memory, weight
checks, prompts and captions, audio, condition videos, the sidecar, and sessions (the render made chunk by
chunk, equal to it bit for bit)."""

from __future__ import annotations

import json
import shutil
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch

from decoded import read_video
from inspatio_cli import caption
from inspatio_cli.render import rerender, stream
from inspatio_cli.cameras import CameraOptions, TimeControl, TrajectorySource
from inspatio_cli.errors import UsageError, VideoError, WeightsError
from inspatio_cli.models import t5
from inspatio_cli.scene import open_scene, padded_length
from inspatio_cli.progress import Reporter
from inspatio_cli.render.models import Models
from inspatio_cli.render.rerender import Rerenderer
from inspatio_cli.text import NO_PROMPT_WARNING
from inspatio_cli.video import Fit, probe, to_uint8
from inspatio_cli.warp import mask_to_latent_channels
from media import make_clip, pattern
from test_preview_pipeline import ORBIT, H, W, count_calls, importers, planar_depth, scene_files

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "room.mp4"
PROMPT = "a cat sits on the mat"


@pytest.fixture(autouse=True)
def setup(tmp_path, monkeypatch):
    """One torch thread (the 2-core CI runner is shared) and a private cache per test."""
    monkeypatch.setenv("INSPATIO_CACHE_DIR", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models() -> dict[str, Models]:
    """Model holders shared by the tests of this module, one per decoder (each is built once)."""
    return {"wan": Models(), "tae": Models()}


def renderer(weights: Path, models: dict[str, Models], decoder: str = "wan", **kw) -> Rerenderer:
    return Rerenderer(weights, device="cpu", decoder=decoder, models=models[decoder], **kw)


@pytest.fixture
def clip(tmp_path):
    """20 frames at 10 fps, 48x80, with its sidecar depth and an orbit trajectory."""
    return scene_files(tmp_path, 20, 10)


def frames_of(path: Path) -> np.ndarray:
    return read_video(path).frames


def test_bundled_example_end_to_end(tiny_weights, models, tmp_path):
    out = tmp_path / "room.mp4"
    result = renderer(tiny_weights, models).render(EXAMPLE, "orbit_left", out, prompt=PROMPT, size=(64, 112))
    facts = probe(out)
    assert (facts.height, facts.width, facts.frame_count, facts.fps) == (64, 112, 49, 24.0)
    assert (result.frames, result.chunks, result.padded_frames) == (49, 5, 8)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar == json.loads(json.dumps(result.summary()))
    assert sidecar["scene"]["depth_resampled_from"] == "480x832" and sidecar["scene"]["source_frames"] == 49
    assert sidecar["settings"]["seed"] == 0 and sidecar["settings"]["size"] == [64, 112]
    assert sidecar["prompt"] == {"text": PROMPT, "source": "prompt", "caption": None}
    files = {w["name"]: w for w in sidecar["weights"]}
    assert set(files) == {"generator", "vae", "text-encoder", "tokenizer"}
    for item in files.values():
        assert item["size"] == Path(item["file"]).stat().st_size > 0 and len(item["fingerprint"]) == 16
    assert {"scene", "prompt", "load", "warp", "encode", "generate", "decode", "write", "total"} <= set(
        sidecar["seconds"])
    assert sidecar["peak_memory"]["process_peak_rss"] > 0 and sidecar["frames_per_second"] > 0
    assert 0 < sidecar["coverage"]["min"] <= sidecar["coverage"]["mean"] <= 1 and sidecar["warnings"] == []


def test_same_seed_gives_the_same_video_and_models_load_once(tiny_weights, models, clip, tmp_path):
    rr = renderer(tiny_weights, models)
    first = rr.render(clip["video"], clip["traj"], tmp_path / "a.mp4", prompt=PROMPT, size=(H, W), seed=7)
    rr.render(clip["video"], clip["traj"], tmp_path / "b.mp4", prompt=PROMPT, size=(H, W), seed=7)
    other = rr.render(clip["video"], clip["traj"], tmp_path / "c.mp4", prompt=PROMPT, size=(H, W), seed=8)
    a, b, c = (frames_of(tmp_path / f"{n}.mp4") for n in "abc")
    assert a.shape == (20, H, W, 3) and probe(tmp_path / "a.mp4").fps == 10
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert first.fingerprint != other.fingerprint
    assert rr.models.builds == {"generator": 1, "autoencoder": 1}


class _CopySampler:
    """Stands in for the STAR sampler: returns one of its inputs as the chunk's latents and records all."""

    def __init__(self, model, text, **options):
        self.inputs = []
        _CopySampler.last = self

    def step(self, inputs):
        self.inputs.append(inputs)
        return inputs.reference


@pytest.mark.parametrize("decoder", ["wan", "tae"])
def test_streamed_chunks_equal_whole_clip_encoding_and_decoding(tiny_weights, models, clip, tmp_path, monkeypatch,
                                                                decoder):
    """Every chunk gets the latents of its own frames (source, 8-bit warped, folded mask), padded with the
    last frame; the decoded, trimmed output equals decoding the whole clip at once. Time edits included."""
    written = []

    class RecordingWriter(stream.VideoWriter):
        def write(self, frames):
            written.append(frames.clone())
            super().write(frames)

    monkeypatch.setattr(stream, "StarSampler", _CopySampler)
    monkeypatch.setattr(stream, "VideoWriter", RecordingWriter)
    camera = CameraOptions(time=TimeControl.from_options(reverse=["3:9"], freeze=["12:3"]))
    rr = renderer(tiny_weights, models, decoder)
    result = rr.render(clip["video"], clip["traj"], tmp_path / "o.mp4", prompt=PROMPT, camera=camera, size=(H, W))
    assert result.frames == 23 and result.chunks == 3 and not result.audio
    ae = rr.models.autoencoder
    scene = open_scene(clip["video"], clip["traj"], camera=camera)
    padded = scene.padded(padded_length(23))
    index = padded.trajectory.time_map
    source = Fit.make((H, W), (H, W)).frames(read_video(clip["video"]).frames)[index]
    warped, mask = padded.warp(range(33), source, scene.log_depth_max())
    quantised = torch.from_numpy(to_uint8(warped)).permute(0, 3, 1, 2).float() / 255 * 2 - 1
    inputs = _CopySampler.last.inputs
    tol = dict(atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat([i.reference for i in inputs], 1), ae.encode(source), **tol)
    torch.testing.assert_close(torch.cat([i.warped for i in inputs], 1), ae.encode(quantised), **tol)
    assert torch.equal(torch.cat([i.mask for i in inputs], 1), mask_to_latent_channels(mask[:, 0][None]))
    output = torch.cat(written)
    assert output.shape == (23, 3, H, W)
    torch.testing.assert_close(output, ae.decode(ae.encode(source))[0, :23], **tol)


@pytest.mark.parametrize("decoder,frames,chunks", [("wan", (20, 54), (2, 5)), ("tae", (30, 54), (3, 5))])
def test_peak_memory_does_not_grow_with_the_number_of_chunks(tiny_weights, models, tmp_path, decoder, frames,
                                                             chunks):
    """Live tensor bytes (everything torch allocates during the run) peak at the same value in the
    generator and the decoder for a short and a long video. A first untracked run fills the model's
    lasting caches (RoPE tables). TAEHV's latents lag by 3 frames, so a middle chunk also holds the next
    chunk's first latents: its short video has a middle chunk too (3 chunks)."""
    peaks = []
    for count, tracked in ((frames[0], False), (frames[0], True), (frames[1], True)):
        folder = tmp_path / f"{count}-{tracked}"
        folder.mkdir()
        files = scene_files(folder, count, 10)
        rr = renderer(tiny_weights, models, decoder, track_memory=tracked)
        result = rr.render(files["video"], files["traj"], folder / "o.mp4", prompt=PROMPT, size=(H, W))
        peaks.append((result.chunks, result.peak_memory))
    (short, a), (long, b) = peaks[1:]
    assert (short, long) == chunks and a["kind"] == "live_tensors"
    for stage in ("generate", "decode"):
        assert a["stages"][stage] == b["stages"][stage] > 0, stage


def test_missing_weights_fail_fast_naming_every_file_and_the_command(tiny_weights, clip, tmp_path, monkeypatch):
    """Fail fast: the missing files are found before any frame is decoded or any model is loaded."""
    empty = tmp_path / "empty"
    empty.mkdir()

    def no_work(*args, **kwargs):
        raise AssertionError("work started before the weights were checked")

    monkeypatch.setattr(rerender, "open_scene", no_work)
    monkeypatch.setattr(Rerenderer, "load_models", no_work)
    rr = Rerenderer(empty, device="cpu")
    with pytest.raises(WeightsError) as info:
        rr.render(clip["video"], clip["traj"], tmp_path / "o.mp4", prompt=PROMPT)
    message = str(info.value)
    for name in ("InSpatio-World-1.3B.safetensors", "Wan2.1_VAE.pth", "models_t5_umt5-xxl-enc-bf16.pth",
                 "tokenizer.json", f"inspatio models download --only generator,text,vae --weights-dir {empty}"):
        assert name in message
    assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "o.json").exists()
    lonely = shutil.copy(clip["video"], tmp_path / "lonely.mp4")
    with pytest.raises(WeightsError) as info:
        Rerenderer(empty, device="cpu", decoder="tae").render(lonely, clip["traj"], tmp_path / "o.mp4", prompt="x")
    message = str(info.value)
    assert "taew2_1.pth" in message and "Wan2.1_VAE.pth" not in message and "DA3NESTED-GIANT-LARGE" in message
    assert "--only depth,generator,tae,text" in message


def test_cached_prompt_needs_no_text_encoder_and_tae_needs_no_vae(tiny_weights, models, clip, tmp_path):
    renderer(tiny_weights, models).embed_prompts([PROMPT])  # fills the prompt cache
    partial = tmp_path / "partial"
    for rel in ("InSpatio-World-1.3B", "taehv"):
        shutil.copytree(tiny_weights / rel, partial / rel)
    rr = Rerenderer(partial, device="cpu", decoder="tae")
    assert rr.required_weights(clip["video"], prompt=PROMPT) == ["generator", "tae"]
    result = rr.render(clip["video"], clip["traj"], tmp_path / "o.mp4", prompt=PROMPT, size=(H, W))
    assert result.frames == 20 and {w["name"] for w in result.weights} == {"generator", "tae"}
    with pytest.raises(WeightsError, match="models_t5_umt5-xxl-enc-bf16.pth"):
        rr.render(clip["video"], clip["traj"], tmp_path / "o.mp4", prompt="another prompt", size=(H, W),
                  overwrite=True)


def test_prompt_is_embedded_and_the_encoder_freed_before_the_generator_loads(tiny_weights, clip, tmp_path,
                                                                             monkeypatch):
    from inspatio_cli.models import dit

    events, encoders = [], []
    original_init, original_load = t5.T5Encoder.__init__, dit.load_generator

    def counting_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        encoders.append(weakref.ref(self))
        events.append("text encoder")

    def load_generator(*args, **kwargs):
        events.append("generator")
        assert encoders and all(ref() is None for ref in encoders), "the text encoder is still alive"
        return original_load(*args, **kwargs)

    monkeypatch.setattr(t5.T5Encoder, "__init__", counting_init)
    monkeypatch.setattr(dit, "load_generator", load_generator)
    Rerenderer(tiny_weights, device="cpu").render(clip["video"], clip["traj"], tmp_path / "o.mp4", prompt=PROMPT,
                                                  size=(H, W))
    assert events == ["text encoder", "generator"]


def test_without_a_prompt_the_video_is_captioned(tiny_weights, models, clip, tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights, weights)
    florence = weights / "Florence-2-large-hf" / "model.safetensors"
    florence.parent.mkdir()
    florence.write_bytes(b"stand-in: the captioner is replaced below")
    calls = []

    def caption_video(video, **options):
        calls.append(Path(video))
        return caption.Caption(str(video), "a cat sits on the mat in a park", 10, "florence-test", False)

    monkeypatch.setattr(caption, "captioning_available", lambda: True)
    monkeypatch.setattr(caption, "caption_video", caption_video)
    rr = Rerenderer(weights, device="cpu", models=models["wan"])
    assert "captioner" not in rr.required_weights(clip["video"])
    result = rr.render(clip["video"], clip["traj"], tmp_path / "o.mp4", size=(H, W))
    assert calls == [clip["video"]]
    assert result.prompt["source"] == "caption" and result.prompt["text"] == "a cat sits on the mat in a park"
    assert result.prompt["caption"]["frame"] == 10
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["prompt"]["caption"]["model"] == "florence-test"
    assert sidecar["inputs"]["prompt"] is None  # the user gave none: the caption is in "prompt"


def test_without_a_prompt_or_the_caption_extra_the_empty_prompt_is_used_with_a_warning(tiny_weights, models, clip,
                                                                                       tmp_path, monkeypatch):
    monkeypatch.setattr(caption, "captioning_available", lambda: False)
    rr = renderer(tiny_weights, models)
    result = rr.render(clip["video"], clip["traj"], tmp_path / "o.mp4", size=(H, W))
    assert result.prompt == {"text": "", "source": "empty", "caption": None}
    assert len(result.warnings) == 1 and NO_PROMPT_WARNING in result.warnings[0]
    assert caption.EXTRA_COMMAND in result.warnings[0]
    assert json.loads(result.sidecar.read_text())["warnings"] == result.warnings


def test_without_the_captioner_weights_the_empty_prompt_is_used_with_the_download_command(
        tiny_weights, models, clip, tmp_path, monkeypatch):
    monkeypatch.setattr(caption, "captioning_available", lambda: True)
    monkeypatch.setattr(caption, "caption_video", lambda *a, **k: pytest.fail("no captioner weights: no caption"))
    result = renderer(tiny_weights, models).render(clip["video"], clip["traj"], tmp_path / "o.mp4", size=(H, W))
    assert result.prompt == {"text": "", "source": "empty", "caption": None}
    assert len(result.warnings) == 1 and "inspatio models download --only caption" in result.warnings[0]


def test_audio_is_kept_only_for_the_identity_time_map(tiny_weights, models, tmp_path):
    files = scene_files(tmp_path, 20, 10, audio_seconds=2.0)
    rr = renderer(tiny_weights, models)
    kept = rr.render(files["video"], files["traj"], tmp_path / "kept.mp4", prompt=PROMPT, size=(H, W))
    dropped = rr.render(files["video"], files["traj"], tmp_path / "off.mp4", prompt=PROMPT, size=(H, W), audio=False)
    camera = CameraOptions(time=TimeControl.from_options(reverse=["2:5"]))
    edited = rr.render(files["video"], files["traj"], tmp_path / "edit.mp4", prompt=PROMPT, size=(H, W),
                       camera=camera)
    assert kept.audio and probe(tmp_path / "kept.mp4").has_audio
    assert not dropped.audio and not probe(tmp_path / "off.mp4").has_audio
    assert not edited.audio and not probe(tmp_path / "edit.mp4").has_audio


def test_condition_videos_hold_the_output_frames(tiny_weights, models, clip, tmp_path):
    cond = tmp_path / "cond"
    result = renderer(tiny_weights, models).render(clip["video"], clip["traj"], tmp_path / "o.mp4", prompt=PROMPT,
                                                   size=(H, W), save_condition=cond)
    assert result.condition_dir == cond
    assert probe(cond / "warped.mp4").frame_count == probe(cond / "mask.mp4").frame_count == 20
    mask = frames_of(cond / "mask.mp4")
    assert set(np.unique(mask)) <= {0, 255}
    assert mask.mean() / 255 == pytest.approx(result.coverage["mean"], abs=1e-6)


def test_fingerprint_identifies_the_settings_not_the_paths(tiny_weights, models, clip, tmp_path):
    rr = renderer(tiny_weights, models)
    result = rr.render(clip["video"], clip["traj"], tmp_path / "o.mp4", prompt=PROMPT, size=(H, W), seed=3)
    assert rr.fingerprint(clip["video"], clip["traj"], prompt=PROMPT, size=(H, W), seed=3) == result.fingerprint
    moved = tmp_path / "moved"
    moved.mkdir()
    for key in ("video", "traj", "depth"):
        shutil.copy(clip[key], moved / clip[key].name)
    same = rr.fingerprint(moved / "clip.mp4", moved / "orbit.txt", prompt=PROMPT, size=(H, W), seed=3)
    assert same == result.fingerprint
    for change in ({"seed": 4}, {"prompt": "a dog"}, {"crf": 20}, {"audio": False},
                   {"camera": CameraOptions(rotation_only=True)}):
        options = {"prompt": PROMPT, "size": (H, W), "seed": 3, **change}
        assert rr.fingerprint(clip["video"], clip["traj"], **options) != result.fingerprint, change


def test_bad_options_are_usage_errors(tiny_weights, clip, tmp_path):
    rr = Rerenderer(tiny_weights, device="cpu")
    for output, options, message in ((clip["video"], {}, "overwrite the source"),
                                     (tmp_path / "o.avi", {}, "must be a video file"),
                                     (tmp_path / "o.mp4", {"size": (50, 80)}, "multiples of 16"),
                                     (tmp_path / "o.mp4", {"prompt": "a", "prompt_file": clip["traj"]}, "not both")):
        with pytest.raises(UsageError, match=message):
            rr.render(clip["video"], clip["traj"], output, **options)
    for options in ({"decoder": "vqgan"}, {"dtype": "int8"}, {"device": "tpu"}):
        with pytest.raises(UsageError):
            Rerenderer(tiny_weights, **options)


def test_progress_events_report_chunks(tiny_weights, models, clip, tmp_path):
    lines = []

    class Sink:
        def write(self, text):
            lines.extend(t for t in text.splitlines() if t)

        def flush(self):
            pass

    rr = renderer(tiny_weights, models, reporter=Reporter("json", stdout=Sink()))
    rr.render(clip["video"], clip["traj"], tmp_path / "o.mp4", prompt=PROMPT, size=(H, W))
    events = [json.loads(line) for line in lines]
    chunks = [e for e in events if e["event"] == "progress" and e["stage"] == "rerender"]
    assert [(e["chunk"], e["chunks"], e["done"]) for e in chunks] == [(1, 2, 9), (2, 2, 20)]
    assert events[-1]["event"] == "result" and events[-1]["frames"] == 20


def test_damaged_source_frames_stop_the_run_unless_skipped(tiny_weights, models, tmp_path):
    whole = make_clip(tmp_path / "whole.mp4", pattern(12, H, W), 12, container_options={"movflags": "faststart"})
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[:int(whole.stat().st_size * 0.9)])
    count = probe(cut).frame_count
    planar_depth(count).save(tmp_path / "cut.depth.safetensors")
    traj = tmp_path / "orbit.txt"
    traj.write_text(ORBIT)
    rr = renderer(tiny_weights, models)
    with pytest.raises(VideoError, match="--skip-bad-frames"):
        rr.render(cut, traj, tmp_path / "strict.mp4", prompt=PROMPT, size=(H, W))
    assert not (tmp_path / "strict.mp4").exists()
    result = rr.render(cut, traj, tmp_path / "lenient.mp4", prompt=PROMPT, size=(H, W), skip_bad_frames=True)
    assert result.frames == count == probe(tmp_path / "lenient.mp4").frame_count and result.lost_frames > 0
    assert any("could not be decoded" in w for w in result.warnings)
    assert json.loads(result.sidecar.read_text())["lost_frames"] == result.lost_frames


def test_fingerprint_follows_the_trajectory_content_and_intrinsics(clip, tmp_path):
    """The resume fingerprint covers what the trajectory resolves to, not its name: a file edited in place
    (other poses, or other intrinsics through a keyframe ``fov``/``intrinsics``) gives another one; the
    same content under another name gives the same one."""
    rr = Rerenderer(tmp_path / "no-weights", device="cpu")

    def fingerprint(trajectory, **options):
        return rr.fingerprint(clip["video"], trajectory, prompt=PROMPT, size=(H, W), **options)

    poses = fingerprint(clip["traj"])
    clip["traj"].write_text("0 -4 -8\n0 6 12\n1.5 1.5 2.0\n")
    assert fingerprint(clip["traj"]) != poses
    renamed = shutil.copy(clip["traj"], tmp_path / "renamed.txt")
    assert fingerprint(renamed) == fingerprint(clip["traj"])

    keys = tmp_path / "keys.json"
    found = {}
    for label, extra in (("none", {}), ("fov 50", {"fov": 50}), ("fov 60", {"fov": 60}),
                         ("intrinsics", {"intrinsics": [0.8, 1.3, 0.5, 0.5]})):
        keys.write_text(json.dumps({"keyframes": [{"at": 0, "orbit": {"pitch": 0, "yaw": 0, "displacement": 1}},
                                                  {"at": 19, "orbit": {"pitch": 5, "yaw": -10, "displacement": 1},
                                                   **extra}]}))
        found[label] = fingerprint(keys)
    assert len(set(found.values())) == len(found), found
    assert fingerprint(keys, camera=CameraOptions(relative_to_source=True)) != found["intrinsics"]


def test_one_render_probes_once_resolves_once_and_fingerprints_each_file_once(tiny_weights, models, clip, tmp_path,
                                                                              monkeypatch):
    import inspatio_cli.render.plan as plan_module
    import inspatio_cli.video.multiview as multiview_module
    from inspatio_cli import video

    probes = count_calls(monkeypatch, video, "probe", importers(video.probe))
    resolves = count_calls(monkeypatch, TrajectorySource, "resolve")
    fingerprints = count_calls(monkeypatch, plan_module, "fingerprint_file", [multiview_module])
    camera = CameraOptions(time=TimeControl.from_options(reverse=["3:9"]))
    result = renderer(tiny_weights, models).render(clip["video"], clip["traj"], tmp_path / "o.mp4", prompt=PROMPT,
                                                   size=(H, W), camera=camera)
    assert result.frames == 20
    assert [Path(a[0]) for a in probes] == [clip["video"]]
    assert len(resolves) == 1
    files = [Path(a[0]).resolve() for a in fingerprints]
    assert len(files) == len(set(files)) and clip["video"].resolve() in files


def test_plan_holds_the_facts_the_renderer_reports(tiny_weights, models, clip):
    rr = renderer(tiny_weights, models)
    plan = rr.plan(clip["video"], clip["traj"], prompt=PROMPT, size=(H, W), seed=2)
    assert plan.settings == rr.settings(clip["video"], clip["traj"], prompt=PROMPT, size=(H, W), seed=2)
    assert plan.fingerprint == rr.fingerprint(clip["video"], clip["traj"], prompt=PROMPT, size=(H, W), seed=2)
    assert list(plan.weights) == rr.required_weights(clip["video"], prompt=PROMPT, size=(H, W))
    assert plan.depth.kind == "sidecar" and plan.depth.path == clip["depth"]
    assert plan.info.frame_count == len(plan.trajectory) == 20 and plan.size == (H, W) and plan.prompt == PROMPT


# ------------------------------------------------------------------------------------------------
# Rerenderer.session: the render made chunk by chunk (render/session.py)


def test_a_session_stepped_with_the_trajectory_equals_the_render(tiny_weights, models, tmp_path, monkeypatch):
    """20 frames -> chunks of 9 and 11 (+1 padding): the streamed frames equal, bit for bit, the frames
    ``render()`` hands its video writer (the uint8 levels it encodes)."""
    written = []

    class RecordingWriter(stream.VideoWriter):
        def write(self, frames):
            written.append(to_uint8(frames))
            super().write(frames)

    monkeypatch.setattr(stream, "VideoWriter", RecordingWriter)
    files = scene_files(tmp_path, 20, 10)
    rr = renderer(tiny_weights, models)
    rr.render(files["video"], files["traj"], tmp_path / "render.mp4", prompt=PROMPT, size=(H, W), seed=3)
    with rr.session(files["video"], files["traj"], prompt=PROMPT, size=(H, W), seed=3) as session:
        assert (session.frames, session.chunks, session.size, session.live) == (20, 2, (H, W), False)
        sizes = [session.chunk_frames(i) for i in range(session.chunks)]
        chunks = [session.step(session.planned_cameras(i)) for i in range(session.chunks)]
        assert session.finished
        with pytest.raises(UsageError, match="exhausted"):
            session.step()
    assert sizes == [9, 11] and [c.shape for c in chunks] == [(9, H, W, 3), (11, H, W, 3)]
    assert chunks[0].dtype == np.uint8 and np.array_equal(np.concatenate(chunks), np.concatenate(written))


def test_a_live_session_takes_each_steps_cameras(tiny_weights, models, tmp_path):
    """No trajectory: frame k shows source frame k; a still camera and a moved one give different frames;
    bad cameras and the TAEHV decoder are refused with one-line usage errors."""
    files = scene_files(tmp_path, 9, 10)
    rr = renderer(tiny_weights, models)
    still = torch.eye(4, dtype=torch.float64).repeat(9, 1, 1)
    moved = still.clone()
    moved[:, 0, 3] = torch.linspace(0, 0.6, 9)
    outputs = []
    for cameras in (still, moved):
        with rr.session(files["video"], prompt=PROMPT, size=(H, W)) as session:
            assert session.live and (session.frames, session.chunks) == (9, 1)
            assert torch.equal(session.source_frames(0), torch.arange(9))
            with pytest.raises(UsageError, match=r"\(9, 4, 4\)"):
                session.step(cameras[:4])
            with pytest.raises(UsageError, match="rigid"):
                session.step(cameras * 2)
            outputs.append(session.step(cameras))
            assert torch.equal(session.planned_cameras(0), cameras)
    assert outputs[0].shape == (9, H, W, 3) and not np.array_equal(*outputs)
    tae = renderer(tiny_weights, models, "tae")
    with pytest.raises(UsageError, match="Wan VAE"):
        tae.session(files["video"], prompt=PROMPT, size=(H, W))
