"""``inspatio studio``: author a camera path by flying through the scene in a browser.

:mod:`.source` prepares what is shown (frames and depth at the preview size, the point cloud),
:mod:`.state` holds keyframes, timeline, current camera, warp preview, saving and export in plain Python,
and :mod:`.server` binds them to a local viser page (the optional ``studio`` extra, imported only there).
"""

from ..lazy import lazy_exports

_EXPORTS = {
    "StudioSource": "source", "open_source": "source",
    "Keyframe": "state", "StudioState": "state", "WarpView": "state",
    "StudioServer": "server", "serve": "server",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
