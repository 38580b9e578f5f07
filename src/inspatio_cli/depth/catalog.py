"""The Depth-Anything-3 checkpoints and the depth models the tool offers, with their licences: plain data,
importable without PyTorch (the command line lists them in its help; :mod:`inspatio_cli.weights.catalog`
lists their files).

A *checkpoint* is one Hugging Face repo (``model.safetensors`` + ``config.json``, keys prefixed ``model.``);
a *depth model* (``--model``) is one checkpoint or an any-view checkpoint aligned to the metric one:

==================== ======================================== ============== ========
``--model``          checkpoints                               licence        depth
==================== ======================================== ============== ========
nested-giant-large   DA3NESTED-GIANT-LARGE (the official one)  CC BY-NC 4.0   metres
base-metric          DA3-BASE + DA3METRIC-LARGE, nested way    Apache-2.0     metres
small-metric         DA3-SMALL + DA3METRIC-LARGE, nested way   Apache-2.0     metres
small, base          DA3-SMALL / DA3-BASE                      Apache-2.0     relative
large, giant         DA3-LARGE / DA3-GIANT                     CC BY-NC 4.0   relative
==================== ======================================== ============== ========

CC BY-NC 4.0 weights may not be used commercially; ``base-metric`` is the Apache-2.0-only choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    from .da3 import DA3Config, NestedConfig

HUB_FILES = ("model.safetensors", "config.json")
"""The files of every DA3 Hugging Face repo."""


@dataclass(frozen=True)
class Checkpoint:
    """One released DA3 checkpoint: hub repo, folder under ``--weights-dir``, size in bytes, licence and the
    ``--only`` group that downloads it."""

    model_name: str
    repo: str
    folder: str
    size: int
    licence: str
    group: str


DA3_CHECKPOINTS: dict[str, Checkpoint] = {c.model_name: c for c in (
    Checkpoint("da3nested-giant-large", "depth-anything/DA3NESTED-GIANT-LARGE", "DA3", 6_759_382_076,
               "CC BY-NC 4.0", "depth"),
    Checkpoint("da3-small", "depth-anything/DA3-SMALL", "DA3-SMALL", 137_197_852, "Apache-2.0", "depth-small"),
    Checkpoint("da3-base", "depth-anything/DA3-BASE", "DA3-BASE", 541_466_396, "Apache-2.0", "depth-base"),
    Checkpoint("da3-large", "depth-anything/DA3-LARGE", "DA3-LARGE", 1_643_767_068, "CC BY-NC 4.0",
               "depth-large"),
    Checkpoint("da3-giant", "depth-anything/DA3-GIANT", "DA3-GIANT", 5_422_696_500, "CC BY-NC 4.0",
               "depth-giant"),
    Checkpoint("da3metric-large", "depth-anything/DA3METRIC-LARGE", "DA3METRIC-LARGE", 1_336_685_576,
               "Apache-2.0", "depth-metric-large"),
)}
"""The single source of the DA3 hub repos (each holds :data:`HUB_FILES`); ``folder`` is the official
``checkpoints/`` layout (the pipeline's nested model lives in ``checkpoints/DA3``)."""


@dataclass(frozen=True)
class DepthModel:
    """A ``--model`` choice: one checkpoint, or an any-view checkpoint aligned to a metric one."""

    name: str
    checkpoints: tuple[str, ...]
    metric: bool
    summary: str

    @property
    def licence(self) -> str:
        licences = {DA3_CHECKPOINTS[c].licence for c in self.checkpoints}
        return "CC BY-NC 4.0 (non-commercial)" if "CC BY-NC 4.0" in licences else "Apache-2.0"

    @property
    def weight_names(self) -> list[str]:
        """Weight catalogue names of this model's checkpoint files, in checkpoint order."""
        return [DA3_CHECKPOINTS[c].group for c in self.checkpoints]

    @property
    def config(self) -> "DA3Config | NestedConfig":
        """The network configuration (imports the model code)."""
        from .da3 import CONFIGS, NestedConfig

        if len(self.checkpoints) == 1:
            return CONFIGS[self.checkpoints[0]]
        anyview, metric = (CONFIGS[c] for c in self.checkpoints)
        return NestedConfig(self.name, anyview, metric)


DEPTH_MODELS: dict[str, DepthModel] = {m.name: m for m in (
    DepthModel("nested-giant-large", ("da3nested-giant-large",), True,
               "official: giant any-view aligned to metric-large; best quality, metric depth"),
    DepthModel("base-metric", ("da3-base", "da3metric-large"), True,
               "Apache-2.0 only: base any-view aligned to metric-large the nested way; metric depth"),
    DepthModel("small-metric", ("da3-small", "da3metric-large"), True,
               "Apache-2.0 only: small any-view aligned to metric-large; fastest metric option"),
    DepthModel("small", ("da3-small",), False, "any-view small; relative depth"),
    DepthModel("base", ("da3-base",), False, "any-view base; relative depth"),
    DepthModel("large", ("da3-large",), False, "any-view large; relative depth"),
    DepthModel("giant", ("da3-giant",), False, "any-view giant; relative depth"),
)}
DEFAULT_MODEL = "nested-giant-large"


def depth_model(name: str) -> DepthModel:
    """The :class:`DepthModel` called ``name``; :class:`UsageError` listing the choices otherwise."""
    if name not in DEPTH_MODELS:
        raise UsageError(f"unknown depth model {name!r}; choose from {', '.join(DEPTH_MODELS)}")
    return DEPTH_MODELS[name]

