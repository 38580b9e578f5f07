"""Golden checks for the ``vae`` component: the Wan2.1 VAE (reduced width, float32) against the official wrapper.

``vae_encode``: whole-clip encode and a frame-by-frame stream. ``vae_decode``: whole-clip decode (and the
[0, 1] mapping the pipeline applies). ``vae_cached_decode``: one stream decoder fed the chunks in order,
then a whole-clip decode of all of them. The diagnostics ``enc_moments`` (log-variance included) and
``video_unclamped`` are intermediate values our API does not return; the outputs above cover them.
"""

from __future__ import annotations

import torch

from inspatio_cli.models.vae import VAEConfig, WanVAE
from inspatio_cli.weights.io import load_strict

from .common import GoldenCase, assert_close


def build(case: GoldenCase) -> WanVAE:
    model = WanVAE(VAEConfig.from_dict(case.config)).eval()
    return load_strict(model, case.group("weights."), case.path, what="Wan2.1 VAE")


def check(case: GoldenCase) -> None:
    torch.manual_seed(0)
    vae = build(case)
    atol, rtol = case.tolerance()
    kind = case.case_id
    if kind == "encode":
        video = case["input.video"]
        expected = case["output.latent"]
        assert_close("latent", vae.encode(video, tail="official"), expected, atol, rtol)
        stream = vae.stream_encoder(tail="official")
        parts = [stream.feed(video[:, :, t:t + 1]) for t in range(video.shape[2])] + [stream.finish()]
        assert_close("latent (frame by frame)", torch.cat(parts, 1), expected, atol, rtol)
    elif kind == "decode":
        video = vae.decode(case["input.latent"])
        assert_close("video", video, case["output.video"], atol, rtol)
        assert_close("video01", (video * 0.5 + 0.5).clamp(0, 1), case["output.video01"], atol, rtol)
    elif kind == "cached_decode":
        stream = vae.stream_decoder()
        chunks = sorted(k for k in case.keys if k.startswith("input.latent."))
        for name in chunks:
            index = name.rsplit(".", 1)[1]
            assert_close(f"video.{index}", stream.feed(case[name]), case[f"output.video.{index}"], atol, rtol)
        whole = vae.decode(torch.cat([case[name] for name in chunks], 1))
        assert_close("video_full", whole, case["output.video_full"], atol, rtol)
    else:
        raise AssertionError(f"unknown vae case {kind!r}")
