"""Depth stage: per-frame depth, intrinsics and camera poses of the source video, and their cache file."""

from .result import DepthResult, find_sidecar

__all__ = ["DepthResult", "find_sidecar"]
