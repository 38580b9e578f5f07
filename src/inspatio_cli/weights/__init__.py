"""Weight files: the catalogue, finding and fetching them, reading them safely, checking them.

==================== ==========================================================================================
:mod:`.catalog`      every file the tool may need (:class:`WeightFile`), groups, the default download; plain data
:mod:`.hub`          local folder and Hugging Face cache look-up, the missing-files error, downloads
:mod:`.io`           safe reading (safetensors, ``torch.load(weights_only=True)``), strict loading, headers
:mod:`.checks`       ``inspatio models verify``: files against the model classes (the only part importing models)
==================== ==========================================================================================

Data flows one way: ``checks`` -> ``hub`` -> ``catalog``, and the models import only ``io``. The public
names load lazily, so importing this package imports neither PyTorch nor a model.
"""

from ..lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_GROUPS": "catalog", "WeightFile": "catalog", "all_files": "catalog", "commands_for": "catalog",
    "entry": "catalog", "select": "catalog",
    "download": "hub", "download_command": "hub", "human_size": "hub", "locate": "hub", "resolve": "hub",
    "weights_root": "hub",
    "key_mismatch": "io", "load_strict": "io", "meta_state": "io", "read_header": "io", "read_state_dict": "io",
    "Check": "checks", "verify": "checks",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
