"""Wan2.1 VAE: full-size key list, InSpatio's upsampling cache rule, streaming == whole clip, constant
decode memory, frame-count policy, bad inputs, loading and the bf16 normalisation order."""

from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import save_file

from golden_checks.common import assert_matches_key_list, official_key_list
from inspatio_cli.errors import InputError, UsageError, WeightsError
from inspatio_cli.models.streaming import frame_count, latent_count
from inspatio_cli.models.vae import LATENT_MEAN, LATENT_STD, Resample, VAEConfig, WanVAE, load_vae

TINY = VAEConfig(dim=4)


def tiny_vae(seed: int = 0, config: VAEConfig = TINY) -> WanVAE:
    """A small VAE with random weights (norm gains away from 1, attention projection not zeroed)."""
    torch.manual_seed(seed)
    model = WanVAE(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1 + 0.2 * torch.randn_like(p) if name.endswith("gamma") else 0.2 * torch.randn_like(p))
    return model


def clip(frames: int, batch: int = 1, seed: int = 1, size: tuple[int, int] = (16, 24)) -> torch.Tensor:
    """Random frames ``(B, 3, T, H, W)`` in [-1, 1]."""
    torch.manual_seed(seed)
    return torch.rand(batch, 3, frames, *size) * 2 - 1


def test_release_model_matches_the_official_key_and_shape_list() -> None:
    facts = official_key_list("vae_keys.json")
    with torch.device("meta"):
        model = WanVAE(VAEConfig.from_dict(facts["config"]))
    assert_matches_key_list(model, facts)
    assert (facts["num_tensors"], facts["num_params"]) == (194, 126_892_531)
    assert model.config == VAEConfig()
    assert (list(LATENT_MEAN), list(LATENT_STD)) == (facts["latent_mean"], facts["latent_std"])


def test_upsample3d_windows_follow_the_inspatio_cache_rule() -> None:
    """One frame per call: windows [0,0,x1], [0,x1,x2], then [x_{k-1}, x_{k-1}, x_k] (upstream Wan2.1 would
    give [x_{k-2}, x_{k-1}, x_k]). The time conv here copies its taps 0 and 1 to the two output frames."""
    layer = Resample(2, "upsample3d")
    with torch.no_grad():
        layer.time_conv.weight.zero_()
        layer.time_conv.bias.zero_()
        layer.time_conv.weight[0, 0, 0] = 1  # output frame 2t, channel 0 <- tap 0 (oldest)
        layer.time_conv.weight[2, 0, 1] = 1  # output frame 2t+1, channel 0 <- tap 1
    cache: dict = {}
    xs = [torch.full((1, 2, 1, 1, 1), float(k)) for k in range(5)]
    assert torch.equal(layer._time_upsample(xs[0], cache), xs[0])
    taps = []
    for x in xs[1:]:
        y = layer._time_upsample(x, cache)
        taps.append((y[0, 0, 0].item(), y[0, 0, 1].item()))
    assert taps == [(0, 0), (0, 1), (2, 2), (3, 3)]


@pytest.mark.parametrize("splits", [[13], [2, 3, 8], [1] * 13])
def test_stream_encoder_equals_whole_clip(splits: list[int]) -> None:
    vae = tiny_vae()
    video = clip(13, batch=2)
    whole = vae.encode(video)
    assert whole.shape == (2, 4, 16, 2, 3) and whole.dtype == torch.float32
    stream = vae.stream_encoder()
    parts = [stream.feed(part) for part in video.split(splits, 2)]
    parts.append(stream.finish())
    assert torch.equal(torch.cat(parts, 1), whole)
    # a latent comes out as soon as its last frame is in: frame 0, then frames 4, 8, 12
    fed = [sum(splits[:i + 1]) for i in range(len(splits))]
    done = [0] + [1 + (n - 1) // 4 for n in fed]
    assert [p.shape[1] for p in parts[:-1]] == [b - a for a, b in zip(done, done[1:])]


def test_pipeline_layout_equals_batch_layout() -> None:
    vae = tiny_vae()
    video = clip(5)
    assert torch.equal(vae.encode(video[0].transpose(0, 1)), vae.encode(video))


@pytest.mark.parametrize("splits", [[6], [1, 2, 3], [1] * 6])
def test_stream_decoder_equals_whole_clip(splits: list[int]) -> None:
    vae = tiny_vae()
    torch.manual_seed(2)
    latents = torch.randn(1, 6, 16, 2, 3)
    whole = vae.decode(latents)
    assert whole.shape == (1, frame_count(6), 3, 16, 24) == (1, 21, 3, 16, 24)
    assert whole.abs().max() <= 1
    stream = vae.stream_decoder()
    parts = [stream.feed(part) for part in latents.split(splits, 1)]
    assert [p.shape[1] for p in parts] == [4 * n - 3 * (i == 0) for i, n in enumerate(splits)]
    assert torch.equal(torch.cat(parts, 1), whole)
    stream.reset()
    assert torch.equal(stream.feed(latents), whole)


def test_decode_memory_does_not_grow_with_the_number_of_latents() -> None:
    vae = tiny_vae()
    stream = vae.stream_decoder()
    sizes = []
    for _ in range(12):
        stream.feed(torch.randn(1, 1, 16, 2, 3))
        sizes.append(stream.state_bytes())
    assert sizes[0] > 0
    assert len(set(sizes[2:])) == 1, sizes


def test_encode_memory_does_not_grow_with_the_number_of_frames() -> None:
    vae = tiny_vae()
    stream = vae.stream_encoder()
    stream.feed(clip(1))
    sizes = []
    for _ in range(8):
        stream.feed(clip(4))
        sizes.append(stream.state_bytes())
    assert len(set(sizes)) == 1, sizes
    stream.finish()
    assert stream.state_bytes() == 0


def test_frame_counts_other_than_1_plus_4k_are_refused_or_follow_the_official_drop() -> None:
    vae = tiny_vae()
    video = clip(12)
    with pytest.raises(InputError, match=r"12 frames: the autoencoders need 1\+4k frames \(e.g. 9 or 13\)"):
        vae.encode(video)
    stream = vae.stream_encoder()
    assert stream.feed(video).shape[1] == 3
    with pytest.raises(InputError, match="1\\+4k"):
        stream.finish()
    # tail="official": the 3 frames after the last complete group are dropped, as the official encoder does
    assert torch.equal(vae.encode(video, tail="official"), vae.encode(video[:, :, :9]))
    assert [latent_count(t, "official") for t in range(1, 14)] == [-(-t // 4) for t in range(1, 14)]
    assert [latent_count(t) for t in (1, 5, 9, 13)] == [1, 2, 3, 4]


def test_bad_inputs_give_clear_errors() -> None:
    vae = tiny_vae()
    with pytest.raises(InputError, match="4 channels; expected 3"):
        vae.encode(torch.zeros(1, 4, 5, 16, 16))
    with pytest.raises(InputError, match="expected \\(T, 3, H, W\\) or \\(B, 3, T, H, W\\)"):
        vae.encode(torch.zeros(3, 16, 16))
    with pytest.raises(InputError, match="multiples of 8"):
        vae.encode(torch.zeros(1, 3, 5, 20, 16))
    with pytest.raises(InputError, match="expected float"):
        vae.encode(torch.zeros(1, 3, 5, 16, 16, dtype=torch.uint8))
    with pytest.raises(InputError, match="expected float \\(B, F, 16, h, w\\)"):
        vae.decode(torch.zeros(1, 2, 8, 2, 2))
    with pytest.raises(InputError, match="with F >= 1"):
        vae.decode(torch.zeros(1, 0, 16, 2, 3))
    with pytest.raises(InputError, match="no frames"):
        vae.stream_encoder().finish()
    with pytest.raises(UsageError, match="tail policy"):
        vae.stream_encoder(tail="pad")
    stream = vae.stream_encoder()
    stream.feed(clip(1))
    with pytest.raises(InputError, match="this stream started with batch 1 at 16x24"):
        stream.feed(clip(4, size=(16, 16)))
    stream.finish()
    with pytest.raises(UsageError, match="finished"):
        stream.feed(clip(4))
    decoder = vae.stream_decoder()
    decoder.feed(torch.zeros(1, 1, 16, 2, 3))
    with pytest.raises(InputError, match="batch 2"):
        decoder.feed(torch.zeros(2, 1, 16, 2, 3))


def test_load_pth_and_safetensors(tmp_path) -> None:
    vae = tiny_vae(seed=3)
    state = vae.state_dict()
    torch.save(state, tmp_path / "Wan2.1_VAE.pth")
    save_file(state, tmp_path / "vae.safetensors")
    video = clip(5)
    expected = vae.encode(video)
    for name in ("Wan2.1_VAE.pth", "vae.safetensors"):
        loaded = load_vae(tmp_path / name, dtype=torch.float32)
        assert loaded.config.dim == 4 and not loaded.training
        assert not any(p.requires_grad for p in loaded.parameters())
        assert torch.equal(loaded.encode(video), expected)


def test_load_reports_key_problems_and_refuses_code(tmp_path) -> None:
    state = tiny_vae().state_dict()
    del state["decoder.head.2.bias"]
    state["decoder.extra"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match=r"bad.pth: does not match the Wan2.1 VAE: 1 missing: decoder.head.2.bias; "
                                           r"1 unexpected: decoder.extra"):
        load_vae(tmp_path / "bad.pth")
    marker = tmp_path / "ran"
    torch.save({"encoder.conv1.weight": _Payload(str(marker))}, tmp_path / "evil.pth")
    with pytest.raises(WeightsError, match="refused to load: the pickle holds code"):
        load_vae(tmp_path / "evil.pth")
    assert not marker.exists()


class _Payload:
    """Unpickling this would run code (create a file); ``weights_only`` must refuse it."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_bf16_normalisation_divides_by_the_bf16_reciprocal() -> None:
    """Official order in bf16: constants cast first, ``1/std`` taken in bf16; decode divides by it."""
    vae = tiny_vae().to(torch.bfloat16)
    z = torch.randn(1, 16, 3, 2, 2).to(torch.bfloat16)
    mean = torch.tensor(LATENT_MEAN).to(torch.bfloat16).view(1, -1, 1, 1, 1)
    inv = 1.0 / torch.tensor(LATENT_STD).to(torch.bfloat16).view(1, -1, 1, 1, 1)
    assert inv.dtype == torch.bfloat16
    assert torch.equal(vae.denormalize(z), z / inv + mean)
    assert torch.equal(vae.normalize(z), (z - mean) * inv)


def test_bf16_model_runs_and_stays_close_to_float32() -> None:
    vae = tiny_vae()
    video = clip(5)
    latents = vae.encode(video)
    half = tiny_vae().to(torch.bfloat16)
    latents16 = half.encode(video)
    assert latents16.dtype == torch.float32
    assert (latents16 - latents).abs().mean() < 0.05 * latents.abs().mean()
    frames16 = half.decode(latents)
    assert frames16.dtype == torch.float32
    assert (frames16 - vae.decode(latents)).abs().mean() < 0.03
