"""Golden checks for the ``taehv`` component: TAEHV ``taew2_1`` (reduced widths, float32) against the official code.

Our autoencoders work with frames in [-1, 1]; the official ``tae_decode`` returns [0, 1], so decoded frames
are mapped with ``x * 0.5 + 0.5`` before comparing. ``*_sequential`` outputs (TAEHV's frame-by-frame mode)
are compared with a stream fed one frame (encode) or one latent (decode) at a time. The diagnostic
``decoder_raw`` (before clamping and trimming) is an intermediate value our API does not return.
"""

from __future__ import annotations

import torch

from inspatio_cli.models.tae import TAEConfig, TAEHV, keep_last_tgrow_rows
from inspatio_cli.weights.io import load_strict

from .common import GoldenCase, assert_close


def build(case: GoldenCase) -> TAEHV:
    model = TAEHV(TAEConfig.from_dict(case.config)).eval()
    return load_strict(model, keep_last_tgrow_rows(model, case.group("weights.")), case.path, what="TAEHV")


def check(case: GoldenCase) -> None:
    tae = build(case)
    atol, rtol = case.tolerance()
    kind = case.case_id
    if kind == "encode":
        video = case["input.video"]
        assert_close("latent", tae.encode(video, tail="official"), case["output.latent"], atol, rtol)
        stream = tae.stream_encoder(tail="official")
        parts = [stream.feed(video[:, :, t:t + 1]) for t in range(video.shape[2])] + [stream.finish()]
        assert_close("latent_sequential", torch.cat(parts, 1), case["output.latent_sequential"], atol, rtol)
    elif kind == "decode":
        latent = case["input.latent"]
        assert_close("video", tae.decode(latent) * 0.5 + 0.5, case["output.video"], atol, rtol)
        stream = tae.stream_decoder()
        frames = torch.cat([stream.feed(latent[:, i:i + 1]) for i in range(latent.shape[1])], 1)
        assert_close("video_sequential", frames * 0.5 + 0.5, case["output.video_sequential"], atol, rtol)
    else:
        raise AssertionError(f"unknown taehv case {kind!r}")
