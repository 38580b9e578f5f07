"""Which weight files a render needs, by registry name: the one list both the command line's early check
(before PyTorch is imported) and :meth:`Rerenderer.required_weights <.rerender.Rerenderer.required_weights>`
build from. Light to import: no PyTorch, no model code."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from ..choices import DECODERS
from ..depth.catalog import DEFAULT_MODEL, depth_model
from ..depth.sidecar import find_sidecar
from ..errors import UsageError
from ..weights import catalog, hub

GENERATOR_WEIGHTS = {"world": "generator", "world-1.5": "generator-1.5"}
"""The ``--model`` choices and the registry name of each one's generator weights: InSpatio-World v1 (the
default) and v1.5 (same architecture and keys; its render rules are :data:`inspatio_cli.views.RENDER_RULES`)."""
MODELS = tuple(GENERATOR_WEIGHTS)
DEFAULT_GENERATOR = "world"

TEXT_WEIGHTS = ("text-encoder", "tokenizer")
"""The umT5 text encoder and its tokenizer: needed unless the prompt's embedding is cached."""


def autoencoder_weights(decoder: str) -> str:
    """Registry name of the autoencoder file of ``decoder`` (``wan``: ``vae``, ``tae``: ``tae``)."""
    return "vae" if decoder == "wan" else "tae"


def generator_weights(model: str = DEFAULT_GENERATOR) -> str:
    """Registry name of the generator file of ``model`` (:data:`GENERATOR_WEIGHTS`); :class:`UsageError`
    for an unknown model."""
    if model not in GENERATOR_WEIGHTS:
        raise UsageError(f"unknown model {model!r} (choose {' or '.join(MODELS)})")
    return GENERATOR_WEIGHTS[model]


def render_weights(decoder: str, *, model: str = DEFAULT_GENERATOR, held: Collection[str] = (), text: bool = True,
                   depth: bool = True) -> list[str]:
    """Registry names of the files a render with ``model`` and ``decoder`` loads: the generator and the
    autoencoder (unless ``held``: already in memory), the text encoder and tokenizer when ``text`` (the
    prompt must be embedded), the default depth model when ``depth`` (the depth must be estimated)."""
    names = [name for name in (generator_weights(model), autoencoder_weights(decoder)) if name not in held]
    return names + (list(TEXT_WEIGHTS) if text else []) + (depth_model(DEFAULT_MODEL).weight_names if depth else [])


def check_core_weights(videos: Sequence[str | Path], decoder: str, depth: str | Path | None,
                       weights_dir: str | Path | None, model: str = DEFAULT_GENERATOR) -> None:
    """Fail in a fraction of a second, before PyTorch is even imported, when the files every rerender of
    ``videos`` needs (the generator and the autoencoder) are missing: one :class:`WeightsError` lists them
    with the text encoder and the depth model when those are missing too (they are not needed when the
    prompt's embedding, or the depth, is cached: the exact check, :meth:`Rerenderer.check_weights
    <.rerender.Rerenderer.check_weights>`, runs later, before any model is built). ``model``: whose
    generator. An unknown ``decoder`` or ``model`` is left to the renderer's own usage error."""
    if decoder not in DECODERS or model not in GENERATOR_WEIGHTS:
        return
    core = render_weights(decoder, model=model, text=False, depth=False)
    if all(hub.locate(catalog.entry(name), weights_dir) is not None for name in core):
        return
    estimate = depth is None and any(find_sidecar(video) is None for video in videos)
    others = [name for name in render_weights(decoder, model=model, depth=estimate) if name not in core
              and hub.locate(catalog.entry(name), weights_dir) is None]
    note = " (the text encoder is not needed for a cached prompt, nor the depth model for a cached depth)"
    hub.resolve(core + others, weights_dir, purpose="for rerender" + (note if others else ""))
