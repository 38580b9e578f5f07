"""The catalogue of weight files: what each file is, where it comes from, which commands need it.

Each :class:`WeightFile` names a file on the Hugging Face hub (or, for TAEHV, on GitHub), its approximate
size and licence, the ``--only`` group that selects it and where it sits in a local folder laid out like
the official ``checkpoints/`` directory. The Depth-Anything-3 entries are made from the depth stage's own
list (:mod:`inspatio_cli.depth.catalog`), which names their repos and licences once.

Plain data: this module imports neither PyTorch nor any model, so the command line can list, select and
look up files at once, and :mod:`.hub` and :mod:`.checks` build on it without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..depth.catalog import DA3_CHECKPOINTS, DEPTH_MODELS, HUB_FILES
from ..errors import WeightsError

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
    """``generator``, ``vae``, ``text``, ``tae``, ``caption`` or a depth group: what ``--only`` selects."""
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
        """Whether the file is fetched from the Hugging Face hub (else from the URL in :attr:`repo`)."""
        return not self.repo.startswith("https://")

    @property
    def source(self) -> str:
        """Where the file is published, for messages: ``repo/filename`` on the hub, else the URL."""
        return f"{self.repo}/{self.filename}" if self.on_hub else self.repo


WAN = "Wan-AI/Wan2.1-T2V-1.3B"
FILES: tuple[WeightFile, ...] = (
    WeightFile("generator", "inspatio/world", "InSpatio-World-1.3B.safetensors",
               "InSpatio-World-1.3B", int(5.7 * GB), "see the inspatio/world model card",
               "generator", "the distilled causal DiT (1.42B parameters)"),
    WeightFile("generator-1.5", "inspatio/world-1.5", "InSpatio-World-1.5-1.3B.safetensors",
               "InSpatio-World-1.5-1.3B", int(5.7 * GB), "see the inspatio/world-1.5 model card", "generator-1.5",
               "the v1.5 distilled causal DiT (same architecture and keys as v1; image, multi-view and video sources)"),
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
"""Every file except the Depth-Anything-3 checkpoints (see :func:`all_files`)."""


GROUP_COMMANDS = {
    "generator": "rerender",
    "generator-1.5": "rerender --model world-1.5",
    "vae": "rerender --decoder wan",
    "text": "rerender (new prompts only; embeddings are cached)",
    "tae": "rerender --decoder tae",
    "depth": "depth, preview and rerender without a depth file (default --model)",
    "caption": "caption, rerender without a prompt (optional [caption] extra)",
}
"""What each group is needed for; depth groups other than ``depth`` serve other ``--model`` choices."""

DEFAULT_GROUPS = ("generator", "vae", "text", "depth")
"""What ``inspatio models download`` fetches without ``--only``: everything a default rerender needs."""


def _depth_files() -> list[WeightFile]:
    """Entries of every DA3 checkpoint of :data:`~inspatio_cli.depth.catalog.DA3_CHECKPOINTS`: the weights
    (named like the checkpoint's group) and its ``config.json`` (``<group>-config``)."""
    out = []
    for c in DA3_CHECKPOINTS.values():
        what = f"Depth-Anything-3 {c.model_name} ({c.licence})"
        out.append(WeightFile(c.group, c.repo, HUB_FILES[0], c.folder, c.size, c.licence, c.group, what))
        out.append(WeightFile(f"{c.group}-config", c.repo, HUB_FILES[1], c.folder, 1_000, c.licence, c.group,
                              f"{what}: architecture name"))
    return out


def all_files() -> list[WeightFile]:
    """Every registered file: :data:`FILES`, then the weights and config of each Depth-Anything-3 checkpoint."""
    return [*FILES, *_depth_files()]


def commands_for(item: WeightFile) -> str:
    """The commands (or depth models) that need ``item``."""
    if item.group in GROUP_COMMANDS:
        return GROUP_COMMANDS[item.group]
    users = [m.name for m in DEPTH_MODELS.values()
             if any(DA3_CHECKPOINTS[c].group == item.group for c in m.checkpoints)]
    return f"depth model {', '.join(users)}" if users else ""


def entry(name: str) -> WeightFile:
    """The catalogue entry called ``name``; :class:`KeyError` if there is none."""
    for item in all_files():
        if item.name == name:
            return item
    raise KeyError(name)


def select(only: Iterable[str] | None = None) -> list[WeightFile]:
    """Entries by name or group (``all``: every entry; ``None``: :data:`DEFAULT_GROUPS`); an unknown name
    raises :class:`WeightsError` listing the choices."""
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
