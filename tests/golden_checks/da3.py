"""Golden checks for the ``da3`` component: the 504 preprocessing, the any-view network and the nested metric
model.

Every non-optional ``output.<case>.*`` tensor is compared (final outputs and the intermediates the trace
records); a tensor the implementation does not produce fails the check. ``optional.*`` (the discarded ray
branch) is not implemented and not compared.
"""

from __future__ import annotations

import torch

from inspatio_cli.depth.checkpoints import load_state
from inspatio_cli.depth.da3 import build, config_from_dict
from inspatio_cli.depth.preprocess import normalize, process_sizes, resize_for_model

from .common import GoldenCase, assert_close


def _check_preprocess(case: GoldenCase) -> None:
    for name in case.json_meta("cases"):
        image = case[f"input.{name}.image_uint8"].numpy()
        res = int(case[f"input.{name}.process_res"])
        size1, size = process_sizes(image.shape[:2], res)
        assert_close(f"{name}.size1", torch.tensor(size1), case[f"output.{name}.intermediate.size1"], 0, 0)
        assert_close(f"{name}.size", torch.tensor(size), case[f"output.{name}.size"], 0, 0)
        images = normalize(resize_for_model(image, res)[None])[0]
        assert_close(f"{name}.images", images, case[f"output.{name}.images"], 0.0176, 0.0)


def _network(case: GoldenCase) -> torch.nn.Module:
    """The network of the case's config with its ``weights.model.*`` tensors (float16 in the file) as float32."""
    net = build(config_from_dict(case.config))
    state = {k[len("model."):]: v.float() for k, v in case.group("weights.").items()}
    return load_state(net, state, case.path).eval()


def _outputs(net: torch.nn.Module, case: GoldenCase, name: str) -> dict[str, torch.Tensor]:
    trace: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        out = net(case[f"input.{name}.images"], trace)
    produced = {"depth": out.depth, "depth_conf": out.conf, "extrinsics": out.extrinsics,
                "intrinsics": out.intrinsics, **{f"intermediate.{k}": v for k, v in trace.items()}}
    if out.scale_factor is not None:
        produced["scale_factor"] = out.scale_factor
    return produced


def check(case: GoldenCase) -> None:
    if case.config.get("type") == "preprocess":
        _check_preprocess(case)
        return
    atol, rtol = case.tolerance()
    net = _network(case)
    for name in case.json_meta("cases"):
        prefix = f"output.{name}."
        produced = _outputs(net, case, name)
        expected = {k[len(prefix):]: k for k in case.keys if k.startswith(prefix) and ".optional." not in k}
        assert expected, f"no outputs for case {name}"
        missing = sorted(set(expected) - set(produced))
        assert not missing, f"{name}: not produced: {missing}"
        for key, full in sorted(expected.items()):
            assert_close(f"{name}.{key}", produced[key], case[full], atol, rtol)
