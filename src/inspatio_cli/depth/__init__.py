"""Depth stage: per-frame depth, intrinsics and camera poses of the source video, and their cache file."""

from .result import DepthResult

__all__ = ["DepthResult"]
