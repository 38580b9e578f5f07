"""Sampling: the flow-matching scheduler and the STAR chunk loop that drives the generator."""

from ..lazy import lazy_exports

_EXPORTS = {
    "FlowMatchScheduler": "scheduler",
    "ChunkInput": "star", "ReplayNoise": "star", "SeededNoise": "star", "StarSampler": "star", "generate": "star",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
