"""Finding weight files on this machine and fetching them: the local folder, the Hugging Face cache, downloads.

Files of the catalogue (:mod:`.catalog`) are found, in this order:

1. ``--weights-dir DIR`` (or ``$INSPATIO_WEIGHTS_DIR``) with the official layout
   (``DIR/Wan2.1-T2V-1.3B/Wan2.1_VAE.pth``, ``DIR/InSpatio-World-1.3B/...``, ``DIR/DA3/...``, ``DIR/taehv/...``);
2. the Hugging Face cache (``$HF_HOME``), read without any network access;
3. for TAEHV, the tool's own cache folder (``files.cache_dir("weights")``).

Nothing is ever downloaded implicitly: a missing file raises a :class:`WeightsError` that lists every
missing file with its size and the exact ``inspatio models download`` command. :func:`download` honours
``HF_HUB_OFFLINE`` and resumes interrupted downloads (huggingface_hub does it). No PyTorch and no model is
imported here, so commands check for missing weights before loading either.
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path
from typing import Callable, Iterable

from ..errors import WeightsError
from ..files import atomic_output, cache_dir
from .catalog import GB, MB, WeightFile, entry


def weights_root(weights_dir: str | Path | None = None) -> Path | None:
    """The local weights folder: the argument, else ``$INSPATIO_WEIGHTS_DIR``, else None (hub cache)."""
    value = weights_dir or os.environ.get("INSPATIO_WEIGHTS_DIR")
    return Path(value).expanduser() if value else None


def locate(item: WeightFile, weights_dir: str | Path | None = None) -> Path | None:
    """The local path of ``item`` if it is present (no network access), else None."""
    root = weights_root(weights_dir)
    if root is not None:
        candidate = root / item.local
        return candidate if candidate.is_file() else None
    if item.on_hub:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(item.repo, item.filename)
        return Path(found) if isinstance(found, str) and Path(found).is_file() else None
    candidate = cache_dir("weights") / item.local
    return candidate if candidate.is_file() else None


def download_command(items: Iterable[WeightFile], weights_dir: str | Path | None = None) -> str:
    """The exact command that fetches ``items``."""
    groups = sorted({i.group for i in items})
    root = weights_root(weights_dir)
    where = f" --weights-dir {root}" if root is not None else ""
    return f"inspatio models download --only {','.join(groups)}{where}"


def resolve(names: Iterable[str], weights_dir: str | Path | None = None, purpose: str = "") -> dict[str, Path]:
    """Local paths of the named files; if any is missing, one :class:`WeightsError` lists them all (with
    sizes), what they are for (``purpose``, e.g. ``"for --model base"``) and the command that downloads them.
    Never touches the network."""
    items = [entry(n) for n in names]
    found = {i.name: locate(i, weights_dir) for i in items}
    missing = [i for i in items if found[i.name] is None]
    if missing:
        listing = ", ".join(f"{i.source} ({human_size(i.size)})" for i in missing)
        root = weights_root(weights_dir)
        place = f"in {root}" if root is not None else "in the Hugging Face cache"
        raise WeightsError(f"missing weights {place}{' ' + purpose if purpose else ''}: {listing}",
                           hint=f"download with: {download_command(missing, weights_dir)}")
    return {name: path for name, path in found.items() if path is not None}


def download(items: Iterable[WeightFile], weights_dir: str | Path | None = None,
             on_file: Callable[[WeightFile, str], None] | None = None) -> dict[str, Path]:
    """Fetch ``items`` that are not present yet (hub files through huggingface_hub, which resumes and shows
    progress; GitHub files through an atomic HTTP download). ``on_file(item, status)`` is called with
    ``present``/``downloading``/``done``."""
    from huggingface_hub import hf_hub_download, snapshot_download

    paths = {}
    root = weights_root(weights_dir)
    for item in items:
        have = locate(item, weights_dir)
        if have is not None:
            paths[item.name] = have
            if on_file:
                on_file(item, "present")
            continue
        if on_file:
            on_file(item, "downloading")
        try:
            if item.on_hub:
                local_dir = None if root is None else root / item.folder
                if item.whole_repo:
                    got = Path(snapshot_download(item.repo, local_dir=local_dir)) / item.filename
                else:
                    got = Path(hf_hub_download(item.repo, item.filename, local_dir=local_dir))
                paths[item.name] = got
            else:
                target = (root if root is not None else cache_dir("weights")) / item.local
                with atomic_output(target) as tmp, urllib.request.urlopen(item.repo, timeout=60) as response:
                    with open(tmp, "wb") as fh:
                        while block := response.read(1 << 20):
                            fh.write(block)
                paths[item.name] = target
        except (OSError, ValueError) as exc:
            raise WeightsError(f"download of {item.source} failed ({' '.join(str(exc).split())[:200]})",
                               hint="check the network, or HF_HUB_OFFLINE") from None
        if on_file:
            on_file(item, "done")
    return paths


def human_size(size: int) -> str:
    """``5.7 GB``, ``508 MB``, ``1 kB``."""
    for unit, scale in (("GB", GB), ("MB", MB), ("kB", 1000)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} B"
