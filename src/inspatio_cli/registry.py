"""Where every weight file comes from, and how to find, fetch and verify it.

Each :class:`WeightFile` names a file on the Hugging Face hub (or, for TAEHV, on GitHub), its approximate
size and licence, the commands that need it and where it sits in a local folder laid out like the
official ``checkpoints/`` directory. Files are found, in this order:

1. ``--weights-dir DIR`` (or ``$INSPATIO_WEIGHTS_DIR``) with the official layout
   (``DIR/Wan2.1-T2V-1.3B/Wan2.1_VAE.pth``, ``DIR/InSpatio-World-1.3B/...``, ``DIR/DA3/...``, ``DIR/taehv/...``);
2. the Hugging Face cache (``$HF_HOME``), read without any network access;
3. for TAEHV, the tool's own cache folder (``files.cache_dir("weights")``).

Nothing is ever downloaded implicitly: a missing file raises a :class:`WeightsError` that lists every
missing file with its size and the exact ``inspatio models download`` command. ``download`` honours
``HF_HUB_OFFLINE`` and resumes interrupted downloads (huggingface_hub does it).

This module is separate from :mod:`.weights` (safe reading and strict loading), which the model modules
import; the registry imports the model modules to verify files, so keeping them apart avoids a cycle. It
imports PyTorch only to verify files, so commands can check for missing weights without loading it.
"""

from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

from .errors import InspatioError, WeightsError
from .files import atomic_output, cache_dir

if TYPE_CHECKING:
    import torch

GB = 1_000_000_000
MB = 1_000_000


@dataclass(frozen=True)
class WeightFile:
    """One file the tool may need."""

    name: str
    """Short id, e.g. ``generator``; ``--only`` takes these or a group name."""
    repo: str
    """``owner/name`` on the Hugging Face hub, or a ``https://`` URL for files published elsewhere."""
    filename: str
    """Path inside the repo."""
    folder: str
    """The repo's folder under ``--weights-dir`` (the official ``checkpoints/`` layout)."""
    size: int
    """Approximate size in bytes (for messages and ``models list``)."""
    licence: str
    group: str
    """``generator``, ``vae``, ``text``, ``tae`` or ``depth``: what ``--only`` selects."""
    purpose: str
    whole_repo: bool = False
    """Download every file of the repo (models whose configs, tokenizer and processor files come along),
    not only :attr:`filename`; the entry is present when :attr:`filename` is."""

    @property
    def local(self) -> str:
        """Path under ``--weights-dir``."""
        return f"{self.folder}/{self.filename}"

    @property
    def on_hub(self) -> bool:
        return not self.repo.startswith("https://")

    @property
    def source(self) -> str:
        return f"{self.repo}/{self.filename}" if self.on_hub else self.repo


WAN = "Wan-AI/Wan2.1-T2V-1.3B"
FILES: tuple[WeightFile, ...] = (
    WeightFile("generator", "inspatio/world", "InSpatio-World-1.3B.safetensors",
               "InSpatio-World-1.3B", int(5.7 * GB), "see the inspatio/world model card",
               "generator", "the distilled causal DiT (1.42B parameters)"),
    WeightFile("wan-config", WAN, "config.json", "Wan2.1-T2V-1.3B", 1_000, "Apache-2.0", "generator",
               "official DiT dimensions, cross-checked against the checkpoint"),
    WeightFile("vae", WAN, "Wan2.1_VAE.pth", "Wan2.1-T2V-1.3B", 508 * MB, "Apache-2.0", "vae",
               "Wan2.1 video autoencoder (encode source and warped video, decode output)"),
    WeightFile("text-encoder", WAN, "models_t5_umt5-xxl-enc-bf16.pth",
               "Wan2.1-T2V-1.3B", int(11.4 * GB), "Apache-2.0", "text",
               "umT5-XXL text encoder (run once per new prompt, then cached)"),
    WeightFile("tokenizer", WAN, "google/umt5-xxl/tokenizer.json", "Wan2.1-T2V-1.3B",
               17 * MB, "Apache-2.0", "text", "umT5 tokenizer"),
    WeightFile("tae", "https://github.com/madebyollin/taehv/raw/main/taew2_1.pth", "taew2_1.pth",
               "taehv", 23 * MB, "MIT", "tae", "TAEHV tiny autoencoder (--decoder tae)"),
    WeightFile("captioner", "florence-community/Florence-2-large", "model.safetensors", "Florence-2-large-hf",
               int(1.55 * GB), "MIT", "caption",
               "Florence-2-large captioner, transformers-native conversion (0.78B parameters, float16; "
               "optional [caption] extra; the whole repo is fetched: config, tokenizer, processor)",
               whole_repo=True),
)


GROUP_COMMANDS = {
    "generator": "rerender",
    "vae": "rerender --decoder wan",
    "text": "rerender (new prompts only; embeddings are cached)",
    "tae": "rerender --decoder tae",
    "depth": "depth, preview and rerender without a depth file (default --model)",
    "caption": "caption, rerender without a prompt (optional [caption] extra)",
}
"""What each group is needed for; depth groups other than ``depth`` serve other ``--model`` choices."""

DEFAULT_GROUPS = ("generator", "vae", "text", "depth")
"""What ``inspatio models download`` fetches without ``--only``: everything a default rerender needs."""


def all_files() -> list[WeightFile]:
    """Every registered file: the entries above plus the Depth-Anything-3 checkpoints (owned by the depth
    stage, which lists its repos and licences in one place)."""
    from .depth.catalog import weight_files

    return [*FILES, *weight_files()]


def commands_for(item: WeightFile) -> str:
    """The commands (or depth models) that need ``item``."""
    if item.group in GROUP_COMMANDS:
        return GROUP_COMMANDS[item.group]
    from .depth.catalog import DA3_CHECKPOINTS, DEPTH_MODELS

    users = [m.name for m in DEPTH_MODELS.values()
             if any(DA3_CHECKPOINTS[c].group == item.group for c in m.checkpoints)]
    return f"depth model {', '.join(users)}" if users else ""


def weights_root(weights_dir: str | Path | None = None) -> Path | None:
    """The local weights folder: the argument, else ``$INSPATIO_WEIGHTS_DIR``, else None (hub cache)."""
    value = weights_dir or os.environ.get("INSPATIO_WEIGHTS_DIR")
    return Path(value).expanduser() if value else None


def entry(name: str) -> WeightFile:
    """The registry entry called ``name``."""
    for item in all_files():
        if item.name == name:
            return item
    raise KeyError(name)


def select(only: Iterable[str] | None = None) -> list[WeightFile]:
    """Entries by name or group (``all``: every entry; ``None``: :data:`DEFAULT_GROUPS`)."""
    files = all_files()
    wanted = set(only or DEFAULT_GROUPS)
    if "all" in wanted:
        return files
    known = {f.name for f in files} | {f.group for f in files}
    unknown = sorted(wanted - known)
    if unknown:
        raise WeightsError(f"unknown weight name(s) {', '.join(unknown)}; choose from all, "
                           f"{', '.join(sorted(known))}")
    return [f for f in files if f.name in wanted or f.group in wanted]


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


def meta_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The checkpoint's keys as meta tensors of the stored shapes and dtypes, without reading the data:
    the safetensors header, or a ``.pth`` memory-mapped through the safe reader of :mod:`.weights`."""
    import torch

    from .weights import read_header, read_state_dict

    p = Path(path)
    if p.suffix == ".safetensors":
        dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
                  "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8, "BOOL": torch.bool}
        return {k: torch.empty(shape, dtype=dtypes.get(dtype, torch.float32), device="meta")
                for k, (shape, dtype) in read_header(p).items()}
    return {k: torch.empty(v.shape, dtype=v.dtype, device="meta")
            for k, v in read_state_dict(p, mmap=True).items()}


@dataclass
class Check:
    """The verdict on one file: ``ok`` (keys and shapes match our model), ``missing`` or ``bad``."""

    item: WeightFile
    path: Path | None
    status: str
    detail: str


def verify(items: Iterable[WeightFile], weights_dir: str | Path | None = None) -> list[Check]:
    """Check every present file against our model classes: safetensors headers (or a memory-mapped
    ``.pth``) give keys and shapes, the model is built on the meta device and loaded strictly, so no
    tensor data is read into memory. Missing files are reported, not checked."""
    checks = []
    for item in items:
        path = locate(item, weights_dir)
        if path is None:
            checks.append(Check(item, None, "missing", f"not downloaded ({human_size(item.size)})"))
            continue
        try:
            checks.append(Check(item, path, "ok", _VERIFIERS.get(item.name, _verify_depth)(path)))
        except InspatioError as exc:
            checks.append(Check(item, path, "bad", exc.message))
    return checks


def _describe(state: Mapping[str, torch.Tensor]) -> str:
    params = sum(t.numel() for t in state.values())
    dtypes = sorted({str(t.dtype).replace("torch.", "") for t in state.values()})
    return f"{len(state)} tensors, {params / 1e6:,.1f}M parameters, {'/'.join(dtypes)}"


def _verify_model(path: Path, build: Callable[..., torch.nn.Module]) -> str:
    """Build the model from the file's keys and shapes on the meta device (strict), reading no data."""
    state = meta_state(path)
    build(state, path)
    return _describe(state)


def _verify_generator(path: Path) -> str:
    from .models.dit import build_generator

    return _verify_model(path, lambda state, p: build_generator(state, path=p))


def _verify_vae(path: Path) -> str:
    from .models.vae import build_vae

    return _verify_model(path, build_vae)


def _verify_t5(path: Path) -> str:
    from .models.t5 import build_t5

    return _verify_model(path, build_t5)


def _verify_tae(path: Path) -> str:
    from .models.tae import build_tae

    return _verify_model(path, build_tae)


def _verify_tokenizer(path: Path) -> str:
    from .models.tokenizer import PromptTokenizer

    tokenizer = PromptTokenizer.from_file(path)
    return f"tokenizer with {tokenizer.tokenizer.get_vocab_size():,} tokens"


def _verify_wan_config(path: Path) -> str:
    from .models.dit import DiTConfig

    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise WeightsError(f"unreadable JSON ({exc})", path) from None
    ref = DiTConfig()
    wrong = [f"{k}={values.get(k)} (expected {getattr(ref, k)})" for k in ("dim", "ffn_dim", "freq_dim",
             "num_heads", "num_layers", "out_dim", "text_len") if values.get(k) != getattr(ref, k)]
    if wrong:
        raise WeightsError(f"not the Wan2.1-T2V-1.3B config: {', '.join(wrong)}", path)
    return "Wan2.1-T2V-1.3B dimensions"


def _verify_depth(path: Path) -> str:
    from .depth.checkpoints import identify

    if path.suffix == ".json":
        try:
            return f"model_name {json.loads(path.read_text())['model_name']}"
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise WeightsError(f"not a DA3 config.json ({exc})", path) from None
    state = {k.removeprefix("model."): v for k, v in meta_state(path).items()}
    config = identify(state)
    if config is None:
        raise WeightsError("keys and shapes match no released Depth-Anything-3 network", path)
    return f"{config.name}: {_describe(state)}"


def _verify_captioner(path: Path) -> str:
    from .caption import check_model_dir, check_weights

    check_model_dir(path.parent)
    check_weights(path)
    return _describe(meta_state(path))


_VERIFIERS: dict[str, Callable[[Path], str]] = {
    "generator": _verify_generator, "wan-config": _verify_wan_config, "vae": _verify_vae,
    "text-encoder": _verify_t5, "tokenizer": _verify_tokenizer, "tae": _verify_tae,
    "captioner": _verify_captioner,
}
