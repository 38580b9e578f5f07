"""TAEHV: full-size key list, streaming == parallel, alignment against the Wan VAE, frame counts, constant
decode memory, the TGrow row rule, loading and float16."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from golden_checks.common import assert_matches_key_list, official_key_list
from inspatio_cli.errors import InputError, WeightsError
from inspatio_cli.models.tae import TAEHV, TAEConfig, load_tae
from inspatio_cli.models.vae import VAEConfig, WanVAE
from test_vae import clip

TINY = TAEConfig(enc_width=8, dec_widths=(16, 12, 8, 8))


def tiny_tae(seed: int = 0, config: TAEConfig = TINY) -> TAEHV:
    """A small TAEHV with random weights scaled by fan-in, so activations stay of order 1 (as trained
    weights keep them; PyTorch's default init shrinks them towards 0 through the deep stack)."""
    torch.manual_seed(seed)
    model = TAEHV(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) / (p[0].numel() if p.ndim > 1 else 10) ** 0.5)
    return model


def test_release_model_matches_the_official_key_and_shape_list() -> None:
    facts = official_key_list("taehv_keys.json")
    with torch.device("meta"):
        model = TAEHV(TAEConfig.from_dict(facts["config"]))
    assert_matches_key_list(model, facts)
    assert (facts["num_tensors"], facts["num_params"]) == (128, 11_315_539)
    assert model.config == TAEConfig() == TAEConfig.from_state_dict(model.state_dict())


@pytest.mark.parametrize("splits", [[13], [1] * 13, [4, 4, 4, 1], [3, 7, 3]])
def test_stream_encoder_equals_parallel_encode(splits: list[int]) -> None:
    tae = tiny_tae()
    video = clip(13, batch=2)
    whole = tae.encode(video)
    assert whole.shape == (2, 4, 16, 2, 3) and whole.dtype == torch.float32
    stream = tae.stream_encoder()
    parts = [stream.feed(part) for part in video.split(splits, 2)]
    last = stream.finish()
    assert last.shape[1] == 1  # the group of frame 12 (repeated 3 times) completes only at the end
    torch.testing.assert_close(torch.cat([*parts, last], 1), whole, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("splits", [[5], [1] * 5, [2, 3], [3, 1, 1]])
def test_frame_sequential_decode_equals_parallel_decode(splits: list[int]) -> None:
    tae = tiny_tae()
    torch.manual_seed(2)
    latents = torch.randn(2, 5, 16, 2, 3)
    whole = tae.decode(latents)
    assert whole.shape == (2, 17, 3, 16, 24) and whole.min() >= -1 and whole.max() <= 1
    stream = tae.stream_decoder()
    parts = [stream.feed(part) for part in latents.split(splits, 1)]
    assert [p.shape[1] for p in parts] == [4 * n - 3 * (i == 0) for i, n in enumerate(splits)]
    torch.testing.assert_close(torch.cat(parts, 1), whole, atol=1e-5, rtol=1e-5)


def test_latent_alignment_differs_from_the_wan_vae() -> None:
    """Wan VAE latent 1 covers frames 1..4, TAEHV latent 1 frames 4..7: changing frame 5 moves the TAEHV
    latent 1 but not the VAE's; changing frame 3 moves the VAE latent 1 and only TAEHV latent 0."""
    torch.manual_seed(0)
    vae, tae = WanVAE(VAEConfig(dim=4)).eval(), tiny_tae()
    video = clip(9)

    def changed(model, frame: int) -> list[bool]:
        edited = video.clone()
        edited[:, :, frame] = -edited[:, :, frame]
        diff = (model.encode(edited) - model.encode(video)).abs().amax(dim=(0, 2, 3, 4))
        return (diff > 0).tolist()

    assert changed(vae, 5) == [False, False, True]
    assert changed(tae, 5) == [False, True, True]
    assert changed(vae, 3) == [False, True, True]
    assert changed(tae, 3) == [True, True, True]


def test_frame_counts_follow_the_shared_contract() -> None:
    tae = tiny_tae()
    with pytest.raises(InputError, match=r"10 frames: the autoencoders need 1\+4k frames"):
        tae.encode(clip(10))
    # tail="official": pad to a multiple of 4 by repeating the last frame, as the official encode_video
    video = clip(10)
    padded = torch.cat([video, video[:, :, -1:].expand(-1, -1, 2, -1, -1)], 2)
    official = tae.encode(video, tail="official")
    assert official.shape[1] == 3
    torch.testing.assert_close(official, tae.encode(padded, tail="official"), atol=0, rtol=0)
    assert tae.encode(clip(1)).shape[1] == 1


def test_bad_latents_are_refused() -> None:
    with pytest.raises(InputError, match="expected float \\(B, F, 16, h, w\\)"):
        tiny_tae().decode(torch.zeros(1, 2, 12, 2, 3))
    with pytest.raises(InputError, match="2 channels; expected 3"):
        tiny_tae().encode(torch.zeros(5, 2, 16, 16))


def test_decode_memory_does_not_grow_with_the_number_of_latents() -> None:
    stream = tiny_tae().stream_decoder()
    sizes = []
    for _ in range(10):
        stream.feed(torch.randn(1, 1, 16, 2, 3))
        sizes.append(stream.state_bytes())
    assert sizes[0] > 0 and len(set(sizes)) == 1, sizes


def test_load_trims_tgrow_rows_and_reads_both_formats(tmp_path) -> None:
    """A checkpoint whose first TGrow was trained with stride 2 (2x rows) loads into the stride-1 model by
    keeping the last rows, as the official loader does."""
    tae = tiny_tae(seed=4)
    state = tae.state_dict()
    rows = state["decoder.7.conv.weight"]
    stored = dict(state, **{"decoder.7.conv.weight": torch.cat([torch.randn_like(rows), rows])})
    torch.save(stored, tmp_path / "taew2_1.pth")
    save_file(state, tmp_path / "taew2_1.safetensors")
    latents = torch.randn(1, 2, 16, 2, 3)
    expected = tae.decode(latents)
    for name in ("taew2_1.pth", "taew2_1.safetensors"):
        loaded = load_tae(tmp_path / name, dtype=torch.float32)
        assert loaded.config == TINY
        assert torch.equal(loaded.decoder[7].conv.weight, rows)
        assert torch.equal(loaded.decode(latents), expected)
    del stored["encoder.17.bias"]
    torch.save(stored, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="does not match the TAEHV \\(taew2_1\\): 1 missing: encoder.17.bias"):
        load_tae(tmp_path / "bad.pth")


def test_float16_runs_and_stays_close_to_float32(tmp_path) -> None:
    tae = tiny_tae()
    torch.save(tae.state_dict(), tmp_path / "taew2_1.pth")
    half = load_tae(tmp_path / "taew2_1.pth")
    assert next(half.parameters()).dtype == torch.float16
    video = clip(5)
    latents = half.encode(video)
    assert latents.dtype == torch.float32
    torch.testing.assert_close(latents, tae.encode(video), atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(half.decode(latents), tae.decode(latents), atol=3e-2, rtol=3e-2)
