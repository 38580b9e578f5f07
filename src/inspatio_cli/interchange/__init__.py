"""Scenes of other tools <-> the tool's depth file (``inspatio scene import|export``).

Bring your own cameras and depth: the official and community v1.5 scene folders, a plain ``.npz`` and COLMAP
models (:mod:`.convert` lists the formats). :mod:`.checks` turns what was read into a checked
:class:`~inspatio_cli.depth.result.DepthResult` in the tool's conventions (OpenCV axes, camera-to-world, ``K``
in depth-map pixels) and records the conversion in its metadata.
"""

from ..lazy import lazy_exports

_EXPORTS = {"detect_scene_format": "convert", "export_scene": "convert", "import_scene": "convert"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
