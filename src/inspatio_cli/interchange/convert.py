"""``import_scene`` and ``export_scene``: other tools' scenes <-> the tool's depth file, by format.

=================  ============================================  ===========================================
format             what (import: the source; export: ``-o``)      module
=================  ============================================  ===========================================
``v15``            official v1.5 scene folder (``depth/``)        :mod:`.v15`
``v15-community``  community v1.5 folder (``scene.json``,         :mod:`.v15`
                   ``depth.mkv``)
``npz``            a NumPy ``.npz`` file                          :mod:`.npz`
``colmap``         a COLMAP model folder (text or binary; the     :mod:`.colmap`
                   depth comes from the depth model on a video)
=================  ============================================  ===========================================

Detection: an ``.npz`` file -> npz; a folder with ``scene.json`` and ``depth.mkv`` -> v15-community; a
folder with ``depth/source_tcw.txt`` (or ``source_tcw.txt``) -> v15; a folder with COLMAP ``cameras`` and
``images`` files (or ``sparse/0``) -> colmap. Outputs are checked before any work (no existing file
without ``overwrite``), every file is written atomically, and bad input is a one-line
:class:`~inspatio_cli.errors.InputError` before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..cameras.formats.colmap import model_folder
from ..choices import SCENE_FORMATS
from ..depth.result import DepthResult
from ..errors import InputError, UsageError
from ..files import check_outputs
from ..progress import Reporter
from .checks import source_world_c2w
from .colmap import colmap_outputs, read_colmap, write_colmap
from .npz import read_npz, write_npz
from .v15 import community_outputs, is_community, is_v15, read_community, read_v15, v15_outputs, write_community, \
    write_v15


def detect_scene_format(path: str | Path) -> str:
    """The format of the scene at ``path`` (module docstring); an :class:`InputError` naming what was
    expected when none fits."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or folder", path)
    if path.is_file() and path.suffix.lower() == ".npz":
        return "npz"
    if is_community(path):
        return "v15-community"
    if is_v15(path):
        return "v15"
    if path.is_dir() and model_folder(path) is not None:
        return "colmap"
    raise InputError("not a scene this tool reads: expected an .npz file, a v1.5 scene folder (depth/source_tcw.txt), "
                     "a community v1.5 folder (scene.json + depth.mkv) or a COLMAP model folder", path)


def import_scene(source: str | Path, output: str | Path, *, fmt: str | None = None, video: str | Path | None = None,
                 overwrite: bool = False, reporter: Reporter | None = None, **depth_options: Any) -> DepthResult:
    """Convert the scene at ``source`` into the depth file ``output`` and return it.

    ``fmt``: one of :data:`~inspatio_cli.choices.SCENE_FORMATS` (default: detected). ``video``: for ``colmap`` only, the video whose
    depth the depth model estimates (``depth_options``: ``fit``, ``size`` and the other arguments of
    :func:`inspatio_cli.depth.estimate.get_depth`). The result's metadata records ``import_format``,
    ``import_source`` and the conversions (see :mod:`.checks`)."""
    source, output = Path(source), Path(output)
    kind = _format(fmt, "--from") or detect_scene_format(source)
    if (kind == "colmap") != (video is not None):
        raise UsageError("--video is needed for a COLMAP import (its depth comes from the depth model) and for no "
                         "other format")
    inputs = {source: "the scene", **({Path(video): "the video"} if video is not None else {})}
    check_outputs([(output, "the depth file")], inputs, overwrite=overwrite)
    if kind == "colmap":
        result = read_colmap(source, Path(video), reporter=reporter, **depth_options)
    elif depth_options:
        raise UsageError(f"depth model options apply to COLMAP imports only, not {kind}")
    else:
        result = {"v15": read_v15, "v15-community": read_community, "npz": read_npz}[kind](source)
    result.meta.update(import_format=kind, import_source=str(source))
    result.save(output)
    return result


def export_scene(depth_file: str | Path, to: str, output: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write the depth file ``depth_file`` as ``to`` (one of :data:`~inspatio_cli.choices.SCENE_FORMATS`) at ``output`` (a folder;
    the file for ``npz``); returns the files written. The cameras are put back into the world of the scene
    the file was imported from, if it was (:func:`.checks.source_world_c2w`)."""
    depth_file, output = Path(depth_file), Path(output)
    kind = _format(to, "--to")
    result = DepthResult.load(depth_file)
    planned = {"v15": lambda: v15_outputs(result, output), "v15-community": lambda: community_outputs(output),
               "npz": lambda: [output], "colmap": lambda: colmap_outputs(output)}[kind]()
    c2w = source_world_c2w(result, depth_file)
    check_outputs([(path, "an export file") for path in planned], {depth_file: "the depth file"}, overwrite=overwrite)
    writer = {"v15": write_v15, "v15-community": write_community, "npz": write_npz, "colmap": write_colmap}[kind]
    return writer(result, c2w, output)


def _format(name: str | None, flag: str) -> str | None:
    if name is not None and name not in SCENE_FORMATS:
        raise UsageError(f"{flag} {name!r}: expected one of {', '.join(SCENE_FORMATS)}")
    return name
