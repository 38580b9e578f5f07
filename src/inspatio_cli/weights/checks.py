"""Checking weight files against the model classes: ``inspatio models verify``.

Each present file of the catalogue is matched against the network that loads it: the safetensors header
(or a memory-mapped ``.pth``) gives keys, shapes and dtypes, the model is built on the meta device and
loaded strictly, so no tensor data is read into memory. This is the only module of :mod:`inspatio_cli.weights`
that imports the models, the captioner and the depth checkpoints (each inside its verifier, so that checking
one file imports only its model); nothing in the tool imports it but the command line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

from ..errors import InspatioError, Interrupted, WeightsError
from .catalog import WeightFile
from .hub import human_size, locate
from .io import meta_state

if TYPE_CHECKING:
    import torch


@dataclass
class Check:
    """The verdict on one file: ``ok`` (keys and shapes match our model), ``missing`` or ``bad``."""

    item: WeightFile
    path: Path | None
    status: str
    detail: str


def verify(items: Iterable[WeightFile], weights_dir: str | Path | None = None) -> list[Check]:
    """Check every present file against our model classes: safetensors headers (or a memory-mapped
    ``.pth``) give keys and shapes, the model is built on the meta device and loaded strictly, so no
    tensor data is read into memory. Missing files are reported, not checked."""
    checks = []
    for item in items:
        path = locate(item, weights_dir)
        if path is None:
            checks.append(Check(item, None, "missing", f"not downloaded ({human_size(item.size)})"))
            continue
        try:
            checks.append(Check(item, path, "ok", _VERIFIERS.get(item.name, _verify_depth)(path)))
        except Interrupted:
            raise
        except InspatioError as exc:
            checks.append(Check(item, path, "bad", exc.message))
    return checks


def _describe(state: Mapping[str, torch.Tensor]) -> str:
    params = sum(t.numel() for t in state.values())
    dtypes = sorted({str(t.dtype).replace("torch.", "") for t in state.values()})
    return f"{len(state)} tensors, {params / 1e6:,.1f}M parameters, {'/'.join(dtypes)}"


def _verify_model(path: Path, build: Callable[..., torch.nn.Module]) -> str:
    """Build the model from the file's keys and shapes on the meta device (strict), reading no data."""
    state = meta_state(path)
    build(state, path)
    return _describe(state)


def _verify_generator(path: Path) -> str:
    from ..models.dit import build_generator

    return _verify_model(path, lambda state, p: build_generator(state, path=p))


def _verify_vae(path: Path) -> str:
    from ..models.vae import build_vae

    return _verify_model(path, build_vae)


def _verify_t5(path: Path) -> str:
    from ..models.t5 import build_t5

    return _verify_model(path, build_t5)


def _verify_tae(path: Path) -> str:
    from ..models.tae import build_tae

    return _verify_model(path, build_tae)


def _verify_tokenizer(path: Path) -> str:
    from ..models.tokenizer import PromptTokenizer

    tokenizer = PromptTokenizer.from_file(path)
    return f"tokenizer with {tokenizer.tokenizer.get_vocab_size():,} tokens"


def _verify_wan_config(path: Path) -> str:
    from ..models.dit import DiTConfig

    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise WeightsError(f"unreadable JSON ({exc})", path) from None
    ref = DiTConfig()
    wrong = [f"{k}={values.get(k)} (expected {getattr(ref, k)})" for k in ("dim", "ffn_dim", "freq_dim",
             "num_heads", "num_layers", "out_dim", "text_len") if values.get(k) != getattr(ref, k)]
    if wrong:
        raise WeightsError(f"not the Wan2.1-T2V-1.3B config: {', '.join(wrong)}", path)
    return "Wan2.1-T2V-1.3B dimensions"


def _verify_depth(path: Path) -> str:
    from ..depth.checkpoints import identify

    if path.suffix == ".json":
        try:
            return f"model_name {json.loads(path.read_text())['model_name']}"
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise WeightsError(f"not a DA3 config.json ({exc})", path) from None
    state = {k.removeprefix("model."): v for k, v in meta_state(path).items()}
    config = identify(state)
    if config is None:
        raise WeightsError("keys and shapes match no released Depth-Anything-3 network", path)
    return f"{config.name}: {_describe(state)}"


def _verify_captioner(path: Path) -> str:
    from ..caption import check_model_dir, check_weights

    check_model_dir(path.parent)
    check_weights(path)
    return _describe(meta_state(path))


_VERIFIERS: dict[str, Callable[[Path], str]] = {
    "generator": _verify_generator, "generator-1.5": _verify_generator, "wan-config": _verify_wan_config,
    "vae": _verify_vae, "text-encoder": _verify_t5, "tokenizer": _verify_tokenizer, "tae": _verify_tae,
    "captioner": _verify_captioner,
}
