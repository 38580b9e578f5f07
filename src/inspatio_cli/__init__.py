"""inspatio-cli: rerender a monocular video along a new camera trajectory (InSpatio-World, 1.3B).

The package is a Python API first; the ``inspatio`` command is a thin layer over it. Stages, in the
order data flows: :mod:`.video` -> :mod:`.depth` -> :mod:`.cameras` -> :mod:`.scene` (:mod:`.warp`) -> :mod:`.models`
(autoencoders, text, DiT) -> :mod:`.generate` -> :mod:`.video`.

The main entry points are importable from the package itself; they load lazily, so ``import inspatio_cli``
stays fast (torch is imported only when one of them is used)::

    from inspatio_cli import Rerenderer
    renderer = Rerenderer(weights_dir="checkpoints")        # models load on first use, once
    result = renderer.render("clip.mp4", "orbit_left", "out.mp4", prompt="a living room")
"""

from __future__ import annotations

from .lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "Rerenderer": "render.rerender", "RerenderResult": "render.rerender", "Models": "render.models",
    "RenderSession": "render.session",
    "preview": "render.preview", "PreviewResult": "render.preview",
    "open_scene": "scene", "Scene": "scene",
    "load_trajectory": "cameras", "CameraOptions": "cameras", "TimeControl": "cameras", "Trajectory": "cameras",
    "DepthResult": "depth.result", "get_depth": "depth.estimate",
    "caption_video": "caption", "Reporter": "progress", "InspatioError": "errors",
}
"""Public name -> the module (relative to this package) that defines it."""

__all__ = ["__version__", *_EXPORTS]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

