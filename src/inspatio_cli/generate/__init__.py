"""Sampling: the flow-matching scheduler and the STAR chunk loop that drives the generator."""

from .scheduler import FlowMatchScheduler
from .star import ChunkInput, ReplayNoise, SeededNoise, StarSampler, generate

__all__ = ["ChunkInput", "FlowMatchScheduler", "ReplayNoise", "SeededNoise", "StarSampler", "generate"]
