"""Golden checks for the ``t5`` component: the umT5 encoder with the wrapper's zeroing of padded rows."""

from __future__ import annotations

import torch

from inspatio_cli.models.t5 import T5Config, T5Encoder
from inspatio_cli.weights.io import load_strict

from .common import GoldenCase, assert_close


def check(case: GoldenCase) -> None:
    model = T5Encoder(T5Config.from_dict(case.config)).eval()
    load_strict(model, case.group("weights."), case.path, what="umT5 encoder")
    ids, mask = case["input.ids"], case["input.mask"]
    atol, rtol = case.tolerance()
    assert_close("prompt_embeds", model.encode_ids(ids, mask), case["output.prompt_embeds"], atol, rtol)
    with torch.no_grad():
        assert_close("encoder_out", model(ids, mask), case["output.encoder_out"], atol, rtol)
