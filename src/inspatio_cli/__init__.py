"""inspatio-cli: rerender a monocular video along a new camera trajectory (InSpatio-World, 1.3B).

The package is a Python API first; the ``inspatio`` command is a thin layer over it. Stages, in the
order data flows: :mod:`.video` -> :mod:`.depth` -> :mod:`.cameras` -> :mod:`.warp` -> :mod:`.models`
(autoencoders, text, DiT) -> :mod:`.generate` -> :mod:`.video`.

The main entry points are importable from the package itself; they load lazily, so ``import inspatio_cli``
stays fast (torch is imported only when one of them is used)::

    from inspatio_cli import Rerenderer
    renderer = Rerenderer(weights_dir="checkpoints")        # models load on first use, once
    result = renderer.render("clip.mp4", "orbit_left", "out.mp4", prompt="a living room")
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "Rerenderer": "rerender", "RerenderResult": "rerender", "Models": "rerender",
    "preview": "preview", "PreviewResult": "preview",
    "open_scene": "pipeline", "Scene": "pipeline",
    "load_trajectory": "cameras", "CameraOptions": "cameras", "TimeControl": "cameras", "Trajectory": "cameras",
    "DepthResult": "depth.result", "get_depth": "depth.estimate",
    "caption_video": "caption", "Reporter": "progress", "InspatioError": "errors",
}
"""Public name -> the module (relative to this package) that defines it."""

__all__ = ["__version__", *_EXPORTS]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


class _Package(types.ModuleType):
    """The package's module type. Importing a submodule sets it as an attribute of the package; for the
    exported functions named like their module (``preview``), the function is kept instead, so
    ``inspatio_cli.preview`` is the function whichever modules were imported before (import the module
    itself with ``from inspatio_cli.preview import ...``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
