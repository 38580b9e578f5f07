"""Every released DA3 checkpoint's key/shape list (``shared/golden/da3_keys_*.json``) against our networks,
built on the meta device: used keys match exactly, unused keys are covered by the loader's ignore list."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from golden_checks.common import official_key_list
from inspatio_cli.depth.catalog import DA3_CHECKPOINTS, DEPTH_MODELS
from inspatio_cli.depth.checkpoints import identify, ignored_prefixes, load_state
from inspatio_cli.depth.da3 import CONFIGS, build, config_from_dict, parameter_count
from inspatio_cli.weights.io import key_mismatch

VARIANTS = ["small", "base", "large", "giant", "metric-large", "nested-giant-large"]


def _keys(variant: str) -> dict:
    return official_key_list(f"da3_keys_{variant}.json")


@pytest.mark.parametrize("variant", VARIANTS)
def test_released_keys_match_on_meta(variant: str) -> None:
    info = _keys(variant)
    cfg = CONFIGS[info["model"]]
    assert replace(config_from_dict(info["config"]), name=cfg.name) == cfg
    with torch.device("meta"):
        ours = {k: tuple(v.shape) for k, v in build(cfg).state_dict().items()}
    released = {k[len("model."):]: tuple(v["shape"]) for k, v in info["keys"].items()}
    used = {k: s for k, s in released.items() if info["keys"]["model." + k]["used"]}
    assert key_mismatch(used, ours) is None
    assert key_mismatch(ours, released, ignore=ignored_prefixes(cfg)) is None
    unused = set(released) - set(used)
    assert all(k.startswith(ignored_prefixes(cfg)) for k in unused)
    assert parameter_count(cfg) == info["num_params_used_by_inference"]
    meta_state = {k: torch.empty(s, device="meta") for k, s in released.items()}
    assert identify(meta_state) == cfg


@pytest.mark.parametrize("variant", VARIANTS)
def test_full_released_state_loads_on_meta(variant: str) -> None:
    """A state dict with every released key (unused branches and aliases included) loads strictly."""
    info = _keys(variant)
    cfg = CONFIGS[info["model"]]
    with torch.device("meta"):
        net = build(cfg)
    state = {k[len("model."):]: torch.empty(v["shape"], device="meta") for k, v in info["keys"].items()}
    load_state(net, state, assign=True)


def test_model_choices_are_released_configs_and_licensed() -> None:
    for model in DEPTH_MODELS.values():
        assert all(c in CONFIGS and c in DA3_CHECKPOINTS for c in model.checkpoints)
        with torch.device("meta"):
            build(model.config)
    assert DEPTH_MODELS["base-metric"].licence == "Apache-2.0"
    assert DEPTH_MODELS["nested-giant-large"].licence.startswith("CC BY-NC")
    for variant in VARIANTS:
        info = _keys(variant)
        checkpoint = DA3_CHECKPOINTS[info["model"]]
        assert info["hf_repo"].startswith(checkpoint.repo)
        assert checkpoint.licence == info["weights_license"]
