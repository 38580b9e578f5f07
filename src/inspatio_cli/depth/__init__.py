"""Depth stage: per-frame depth, intrinsics and camera poses of the source video, and their cache file.

:func:`get_depth` runs Depth-Anything-3 (:mod:`.da3`, plain PyTorch) over a video of any length in
overlapping windows chained by Sim(3) (:mod:`.windows`), post-processes like the official pipeline
(:mod:`.postprocess`) and caches the :class:`DepthResult`; :mod:`.checkpoints` lists the depth models
(``--model``), their weights and licences.
"""

from ..lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_MODEL": "catalog", "DEPTH_MODELS": "catalog", "DepthModel": "catalog",
    "load_model": "checkpoints",
    "DepthSettings": "estimate", "estimate_depth": "estimate", "get_depth": "estimate",
    "DepthResult": "result", "find_sidecar": "sidecar",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
