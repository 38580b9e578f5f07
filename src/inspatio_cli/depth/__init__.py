"""Depth stage: per-frame depth, intrinsics and camera poses of the source video, and their cache file.

:func:`get_depth` runs Depth-Anything-3 (:mod:`.da3`, plain PyTorch) over a video of any length in
overlapping windows chained by Sim(3) (:mod:`.windows`), post-processes like the official pipeline
(:mod:`.postprocess`) and caches the :class:`DepthResult`; :mod:`.checkpoints` lists the depth models
(``--model``), their weights and licences.
"""

from .result import DepthResult, find_sidecar
from .checkpoints import DEFAULT_MODEL, DEPTH_MODELS, DepthModel, load_model
from .estimate import DepthSettings, estimate_depth, get_depth

__all__ = ["DEFAULT_MODEL", "DEPTH_MODELS", "DepthModel", "DepthResult", "DepthSettings", "estimate_depth",
           "find_sidecar", "get_depth", "load_model"]
