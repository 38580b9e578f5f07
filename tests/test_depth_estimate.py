"""End-to-end depth estimation with tiny random DA3 networks: caching, odd videos, missing weights and
memory bounded by the window."""

from __future__ import annotations

import json
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from inspatio_cli.depth import estimate
from inspatio_cli.depth.checkpoints import load_model
from inspatio_cli.depth.da3 import BackboneConfig, DA3Config, HeadConfig, NestedConfig, build
from inspatio_cli.errors import WeightsError
from inspatio_cli.video import Fit
from media import make_clip, pattern
from memory import anonymous_memory, needs_linux_glibc

HERE = Path(__file__).parent


def tiny_config(nested: bool = True, width: int = 32) -> DA3Config | NestedConfig:
    """A 4-block any-view network (alternating attention from block 2), optionally nested with a 4-block
    metric network."""
    anyview = DA3Config("tiny-anyview", BackboneConfig(width, 4, 1, (0, 1, 2, 3), alt_start=2, qknorm_start=2,
                                                       rope_start=2),
                        HeadConfig(2 * width, 8, (4, 8, 16, 16)), cam_dec_dim=2 * width)
    if not nested:
        return anyview
    metric = DA3Config("tiny-metric", BackboneConfig(width, 4, 1, (0, 1, 2, 3), cat_token=False),
                       HeadConfig(width, 8, (4, 8, 16, 16), dual=False, sky_head=True))
    return NestedConfig("tiny-nested", anyview, metric)


def tiny_net(seed: int = 0, nested: bool = True, width: int = 32) -> torch.nn.Module:
    """Random weights: normal(0, 0.05), LayerNorm scales 1, LayerScale 0.1."""
    torch.manual_seed(seed)
    net = build(tiny_config(nested, width))
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("gamma"):
                p.fill_(0.1)
            elif "norm" in name and name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.05)
    return net.eval()


class CountingLoader:
    """Replaces :func:`load_model`: counts constructions and returns a tiny network."""

    def __init__(self) -> None:
        self.builds = 0

    def __call__(self, spec, weights, weights_dir, device):
        self.builds += 1
        return tiny_net().to(device)


@pytest.fixture
def loader(monkeypatch, tmp_path) -> CountingLoader:
    monkeypatch.setenv("INSPATIO_CACHE_DIR", str(tmp_path / "cache"))
    counting = CountingLoader()
    monkeypatch.setattr(estimate, "load_model", counting)
    return counting


SMALL = dict(model="base-metric", size=(32, 48), process_res=56, device="cpu", dtype="fp32")


def test_get_depth_estimates_caches_and_reuses(loader: CountingLoader, tmp_path: Path) -> None:
    video = make_clip(tmp_path / "clip.mp4", pattern(7, 40, 56))
    first = estimate.get_depth(video, window=4, **SMALL)
    first.validate()
    assert first.num_frames == 7 and first.size == (32, 48)
    assert first.meta["model"] == "base-metric" and first.meta["units"] == "metric"
    assert first.meta["licence"] == "Apache-2.0" and first.meta["fit"] == "stretch"
    assert loader.builds == 1
    again = estimate.get_depth(video, window=4, **SMALL)
    assert loader.builds == 1, "a second run must load the cache, not build the model"
    assert torch.equal(again.depth, first.depth) and torch.equal(again.c2w, first.c2w)
    copy = tmp_path / "renamed.mp4"
    copy.write_bytes(video.read_bytes())
    estimate.get_depth(copy, window=4, **SMALL)
    assert loader.builds == 1, "the cache is keyed by content, not by file name"
    estimate.get_depth(video, window=6, **SMALL)
    assert loader.builds == 2, "other window settings are another cache entry"
    estimate.get_depth(video, window=4, cache=False, **SMALL)
    assert loader.builds == 3


def test_automatic_window_finds_the_cache_whatever_the_free_memory(loader: CountingLoader, monkeypatch,
                                                                  tmp_path: Path) -> None:
    video = make_clip(tmp_path / "clip.mp4", pattern(3, 40, 56))
    monkeypatch.setattr(estimate, "available_memory", lambda device: 64 << 30)
    first = estimate.get_depth(video, **SMALL)
    assert first.meta["window"] == str(estimate.MAX_WINDOW)
    monkeypatch.setattr(estimate, "available_memory", lambda device: 1 << 30)
    estimate.get_depth(video, **SMALL)
    assert loader.builds == 1


def test_crop_and_pad_fits_keep_depth_and_intrinsics_consistent(loader: CountingLoader, tmp_path: Path) -> None:
    video = make_clip(tmp_path / "wide.mp4", pattern(3, 32, 96))
    stretch = estimate.get_depth(video, window=4, **SMALL)
    pad = estimate.get_depth(video, window=4, **{**SMALL, "size": (48, 48)}, fit="pad")
    crop = estimate.get_depth(video, window=4, **{**SMALL, "size": (48, 48)}, fit="crop")
    for result in (stretch, pad, crop):
        result.validate()
    # pad: 32x96 fits as 16x48 in the middle rows; letterbox rows carry the frame's largest depth.
    assert torch.equal(pad.depth[:, 0], pad.depth.flatten(1).amax(1)[:, None].expand(3, 48))
    assert float(pad.confidence[:, 0].abs().max()) == 0.0
    # The principal point is the image centre in every fit (the crop is centred, the pad symmetric).
    for result in (stretch, pad, crop):
        h, w = result.size
        assert torch.allclose(result.K[:, 0, 2], torch.full((3,), w / 2)), result.meta["fit"]
        assert torch.allclose(result.K[:, 1, 2], torch.full((3,), h / 2)), result.meta["fit"]
    # Crop scales the source by 48/32 in both axes, stretch by 32/32 vertically: fy grows by 48/32.
    assert torch.allclose(crop.K[:, 1, 1], stretch.K[:, 1, 1] * 48 / 32, rtol=1e-5)


def test_one_frame_video(loader: CountingLoader, tmp_path: Path) -> None:
    video = make_clip(tmp_path / "one.mp4", pattern(1, 40, 56))
    result = estimate.get_depth(video, window=4, **SMALL)
    result.validate()
    assert result.num_frames == 1
    assert torch.allclose(result.c2w[0], torch.eye(4), atol=1e-6)


def test_black_video_gives_finite_depth(loader: CountingLoader, tmp_path: Path) -> None:
    video = make_clip(tmp_path / "black.mp4", np.zeros((5, 40, 56, 3), np.uint8))
    result = estimate.get_depth(video, window=4, **SMALL)
    result.validate()
    assert torch.isfinite(result.depth).all() and (result.depth > 0).all()


def test_all_sky_falls_back_to_aligning_on_every_pixel() -> None:
    net = tiny_net()
    with torch.no_grad():
        net.da3_metric.head.scratch.sky_output_conv2[2].bias.fill_(5.0)
    out = net(torch.randn(1, 3, 3, 28, 42))
    assert out.sky_fallback
    assert torch.isfinite(out.depth).all() and (out.depth > 0).all()


@pytest.mark.slow
def test_five_thousand_frames_work_in_windows(loader: CountingLoader, tmp_path: Path) -> None:
    frames = np.repeat(pattern(50, 16, 16), 100, axis=0)
    video = make_clip(tmp_path / "long.mp4", frames)
    result = estimate.get_depth(video, window=100, model="base-metric", size=(8, 8), process_res=14,
                                device="cpu", dtype="fp32")
    result.validate()
    assert result.num_frames == 5000
    assert torch.isfinite(result.c2w).all()


def test_missing_weights_name_the_files_and_the_download_command(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("INSPATIO_WEIGHTS_DIR", raising=False)
    with pytest.raises(WeightsError) as err:
        load_model("nested-giant-large")
    message = err.value.one_line()
    assert "depth-anything/DA3NESTED-GIANT-LARGE/model.safetensors" in message
    assert "inspatio models download --only depth" in message
    with pytest.raises(WeightsError) as err:
        load_model("base-metric", weights_dir=tmp_path / "weights")
    message = err.value.one_line()
    assert "DA3-BASE" in message and "DA3METRIC-LARGE" in message
    assert f"--only depth-base,depth-metric-large --weights-dir {tmp_path / 'weights'}" in message


def test_weight_files_that_do_not_match_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "model.safetensors"
    save_file({"model.backbone.pretrained.cls_token": torch.zeros(1, 1, 8)}, str(bad))
    with pytest.raises(WeightsError) as err:
        load_model("small", weights=[bad])
    assert str(bad) in err.value.one_line() and "missing" in err.value.one_line()
    (tmp_path / "config.json").write_text(json.dumps({"model_name": "da3-giant"}))
    with pytest.raises(WeightsError, match="da3-giant, not the da3-small"):
        load_model("small", weights=[tmp_path])


class _Frame(np.ndarray):
    """A frame that can be tracked with a weak reference (plain ndarrays cannot)."""


def test_peak_memory_is_bounded_by_the_window_not_the_video_length() -> None:
    """Whatever the video length, the network sees at most ``window`` frames per call and no more than a
    window (plus its overlap) of decoded frames is alive at any time: memory is bounded by the window.
    Counted structurally (views per call, live frames), so the figure does not depend on the allocator."""
    net = tiny_net(width=32)
    fit = Fit.make((56, 56), (14, 14), "stretch")
    refs: list[weakref.ref] = []
    seen = {"views": 0, "alive": 0}
    original = net.forward

    def counting_forward(images, *args, **kwargs):
        seen["views"] = max(seen["views"], images.shape[1])
        seen["alive"] = max(seen["alive"], sum(ref() is not None for ref in refs))
        return original(images, *args, **kwargs)

    def frames(n: int):
        rng = np.random.default_rng(0)
        for _ in range(n):
            frame = rng.integers(0, 256, (56, 56, 3), dtype=np.uint8).view(_Frame)
            refs.append(weakref.ref(frame))
            yield frame

    net.forward = counting_forward
    for length in (24, 96):
        seen.update(views=0, alive=0)
        result = estimate.estimate_depth(frames(length), net, fit, window=8, overlap=2, process_res=56)
        assert result.num_frames == length
        assert seen["views"] <= 8, f"{length} frames: a call saw {seen['views']} views"
        assert seen["alive"] <= 8 + 2, f"{length} frames: {seen['alive']} decoded frames alive at once"


@needs_linux_glibc
def test_spilled_canvas_maps_cost_disk_not_memory(tmp_path) -> None:
    """With ``spill``, the canvas maps of a 48-frame estimate at 480x832 (153 MB of depth and confidence)
    go to an unnamed file as each window finishes: the result is the same, and private memory grows by a
    small fraction of it (the maps stay memory-mapped, read when used)."""
    net = tiny_net(width=32)
    fit = Fit.make((56, 56), (480, 832), "stretch")
    video = [np.random.default_rng(k).integers(0, 256, (56, 56, 3), dtype=np.uint8) for k in range(48)]
    kept = estimate.estimate_depth(iter(video), net, fit, window=8, overlap=2, process_res=56)
    expected = kept.depth[[0, 47]].clone(), kept.confidence[[5]].clone()
    del kept
    before = anonymous_memory()
    spilled = estimate.estimate_depth(iter(video), net, fit, window=8, overlap=2, process_res=56, spill=tmp_path)
    grown = anonymous_memory() - before
    assert grown < 40e6, f"{grown / 1e6:.0f} MB held by a spilled estimate"
    assert torch.equal(spilled.depth[[0, 47]], expected[0]) and torch.equal(spilled.confidence[[5]], expected[1])
    assert not list(tmp_path.iterdir())  # the spill files have no names: nothing is left behind
    spilled.save(tmp_path / "clip.depth.safetensors")
    assert anonymous_memory() - before < 40e6  # saving streams too


def _save_checkpoint(folder: Path, net: torch.nn.Module, model_name: str) -> Path:
    """A Hugging Face style folder: ``model.safetensors`` with ``model.`` keys plus unused-branch keys, and
    ``config.json`` naming the architecture."""
    folder.mkdir()
    state = {f"model.{k}": v.contiguous() for k, v in net.state_dict().items()}
    state["model.cam_enc.trunk.0.norm1.weight"] = torch.ones(4)
    state["model.head.scratch.refinenet1_aux.out_conv.bias"] = torch.zeros(8)
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_name": model_name}))
    return folder


def test_load_model_reads_hub_style_folders_and_aligns_two_checkpoints(monkeypatch, tmp_path: Path) -> None:
    """The real loading path with tiny stand-ins for the released architectures: one checkpoint for an
    any-view model, an any-view + a metric checkpoint for an Apache-only nested combination."""
    from inspatio_cli.depth import da3

    nested = tiny_net(seed=3)
    monkeypatch.setitem(da3.CONFIGS, "da3-small", nested.cfg.anyview)
    monkeypatch.setitem(da3.CONFIGS, "da3metric-large", nested.cfg.metric)
    anyview_dir = _save_checkpoint(tmp_path / "small", nested.da3, "da3-small")
    metric_dir = _save_checkpoint(tmp_path / "metric", nested.da3_metric, "da3metric-large")
    images = torch.randn(1, 3, 3, 28, 42)
    with torch.no_grad():
        single = load_model("small", weights=[anyview_dir])
        assert torch.equal(single(images).depth, nested.da3(images).depth)
        combo = load_model("small-metric", weights=[anyview_dir, metric_dir])
        expected, got = nested(images), combo(images)
    assert torch.equal(got.depth, expected.depth) and torch.equal(got.extrinsics, expected.extrinsics)
    with pytest.raises(WeightsError, match="this is da3metric-large, not the"):
        load_model("small-metric", weights=[metric_dir, anyview_dir])


def test_unreadable_depth_weights_are_a_weights_error(tmp_path, monkeypatch):
    """The weights are fingerprinted (for the cache key) before the model is built: a file that cannot be
    read is the weights' one-line error (exit 4), not a failed run (simulated: tests may run as root)."""
    video = make_clip(tmp_path / "clip.mp4", pattern(2, 16, 16), fps=2)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x")

    def refuse(path, *args):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(estimate, "fingerprint_file", refuse)
    with pytest.raises(WeightsError, match="cannot read the depth weights: Permission denied") as raised:
        estimate.cache_path(video, estimate.DepthSettings(), weights=[weights])
    assert raised.value.exit_code == 4
