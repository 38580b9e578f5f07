"""Where a video's own depth file lives: ``clip.depth.safetensors`` (or ``.safetensors.gz``) beside
``clip.mp4``. Light to import, so the command line can tell whether the depth model is needed."""

from __future__ import annotations

from pathlib import Path

SIDECAR_SUFFIXES = (".depth.safetensors", ".depth.safetensors.gz")


def find_sidecar(video: str | Path) -> Path | None:
    """The sidecar depth file of ``video`` (``<stem>.depth.safetensors[.gz]`` beside it), if present."""
    v = Path(video)
    for suffix in SIDECAR_SUFFIXES:
        candidate = v.with_name(v.stem + suffix)
        if candidate.is_file():
            return candidate
    return None
