"""Loading Depth-Anything-3 weights into the networks of :mod:`.da3`, for the depth models of :mod:`.catalog`.

Weights are found without network access (``--weights-dir`` with the official folder layout, else the
Hugging Face cache) through :mod:`inspatio_cli.weights.hub`; a missing file raises a :class:`WeightsError`
naming it and the ``inspatio models download --only ...`` command. A user file or folder (``weights=``) is
also accepted: a ``.safetensors``/``.pth`` file or a folder with ``model.safetensors`` (+ ``config.json``).
The architecture comes from ``config.json`` (``model_name``) when present, else from the tensor shapes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import torch

from ..errors import UsageError, WeightsError
from ..weights import hub
from ..weights.io import key_mismatch, load_strict, read_state_dict
from .catalog import DA3_CHECKPOINTS, DEFAULT_MODEL, HUB_FILES, DepthModel, depth_model
from .da3 import CONFIGS, UNUSED_PREFIXES, DA3Config, DA3Net, NestedConfig, NestedDA3Net, build


def locate_checkpoints(model: DepthModel, weights_dir: str | Path | None = None) -> list[Path]:
    """Local ``model.safetensors`` of each checkpoint of ``model`` (no network); one
    :class:`WeightsError` lists every missing file and the command that downloads them."""
    names = model.weight_names
    found = hub.resolve(names, weights_dir, purpose=f"for the depth model {model.name}")
    return [found[name] for name in names]


def _checkpoint_file(path: Path) -> tuple[Path, str | None]:
    """The weights file of a user path (file or HF-style folder) and the ``model_name`` of its config.json."""
    if path.is_dir():
        candidates = [path / HUB_FILES[0], *sorted(path.glob("*.safetensors")), *sorted(path.glob("*.pth"))]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise WeightsError(f"no {HUB_FILES[0]} (or other .safetensors/.pth file) in this folder", path)
        path = found
    config = path.parent / HUB_FILES[1]
    name = None
    if config.is_file():
        try:
            name = json.loads(config.read_text()).get("model_name")
        except (OSError, ValueError, AttributeError):
            raise WeightsError("unreadable config.json (expected JSON with a model_name)", config) from None
    return path, name


def _expected_shapes(cfg: DA3Config | NestedConfig) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in build(cfg).state_dict().items()}


def ignored_prefixes(cfg: DA3Config | NestedConfig) -> tuple[str, ...]:
    """Key prefixes (relative to the module) that a checkpoint may hold but inference never uses."""
    if isinstance(cfg, NestedConfig):
        return tuple(f"{branch}.{p}" for branch in ("da3", "da3_metric") for p in UNUSED_PREFIXES)
    return UNUSED_PREFIXES


def identify(state: Mapping[str, torch.Tensor]) -> DA3Config | NestedConfig | None:
    """The released architecture whose keys and shapes ``state`` (``model.`` prefix removed) matches."""
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    for cfg in CONFIGS.values():
        if key_mismatch(_expected_shapes(cfg), shapes, ignore=ignored_prefixes(cfg)) is None:
            return cfg
    return None


def _read(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a DA3 checkpoint as float32, ``model.`` prefix removed (files without it are accepted)."""
    state = read_state_dict(path)
    if any(k.startswith("model.") for k in state):
        state = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    return {k: v.float() for k, v in state.items()}


def load_state(net: DA3Net | NestedDA3Net, state: Mapping[str, torch.Tensor], path: str | Path | None = None,
               assign: bool = False) -> DA3Net | NestedDA3Net:
    """Load a DA3 state dict (``model.`` removed) into ``net``: every used key with its exact shape, the
    unused branches (camera encoder, 3DGS head, ray branch) skipped. :class:`WeightsError` otherwise."""
    return load_strict(net, state, path, ignore=ignored_prefixes(net.cfg), what=f"DA3 network {net.cfg.name}",
                       assign=assign)


def _state_for(cfg: DA3Config, path: Path) -> dict[str, torch.Tensor]:
    file, name = _checkpoint_file(path)
    state = _read(file)
    if name is not None and name in CONFIGS and CONFIGS[name] != cfg:
        raise WeightsError(f"this is {name}, not the {cfg.name} checkpoint this depth model needs", file)
    return state


def load_model(model: str | DepthModel = DEFAULT_MODEL, weights: Sequence[str | Path] | None = None,
               weights_dir: str | Path | None = None, device: str | torch.device = "cpu") -> DA3Net | NestedDA3Net:
    """Build ``model`` on ``device`` in float32 and load its weights, in eval mode.

    ``weights``: user paths, one per checkpoint of the model (any-view first); a single file or folder may
    also hold a whole network of another architecture (its ``config.json`` or its shapes decide, e.g. a
    nested checkpoint for ``--model base-metric`` is refused with a clear message). Without ``weights``
    the files are looked up with :func:`locate_checkpoints`.
    """
    spec = depth_model(model) if isinstance(model, str) else model
    paths = [Path(p) for p in weights] if weights else locate_checkpoints(spec, weights_dir)
    if len(paths) != len(spec.checkpoints):
        raise UsageError(f"--model {spec.name} needs {len(spec.checkpoints)} weight file(s) "
                         f"({', '.join(DA3_CHECKPOINTS[c].repo for c in spec.checkpoints)}), got {len(paths)}")
    cfg = spec.config
    if isinstance(cfg, NestedConfig) and len(paths) == 2:
        state = {f"da3.{k}": v for k, v in _state_for(cfg.anyview, paths[0]).items()}
        state.update({f"da3_metric.{k}": v for k, v in _state_for(cfg.metric, paths[1]).items()})
    else:
        state = _state_for(cfg, paths[0])
    found = identify(state)
    if found is not None and found != cfg and len(paths) == 1:
        raise WeightsError(f"the file holds {found.name}, but --model {spec.name} needs {cfg.name}", paths[0])
    with torch.device("meta"):
        net = build(cfg)
    load_state(net, state, paths[0] if len(paths) == 1 else f"{paths[0]} + {paths[1]}", assign=True)
    return net.to(device).eval()
