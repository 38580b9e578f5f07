"""``inspatio studio VIDEO|IMAGE``: author a camera path in a local web page (the optional ``studio`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

from ..choices import FIT_MODES
from .app import JsonOpt, QuietOpt, app, parse_size, reporter
from .models import WeightsDirOpt


def _session_factory(video: Path, depth: Path | None, weights_dir: Path | None, prompt: str | None = None,
                     size: tuple[int, int] | None = None) -> Callable | None:
    """What makes the render button's session on the studio's path: None unless the generator and its
    autoencoder are found (the exact check, prompt embedding and depth included, runs when the button is
    pressed). The session renders what ``inspatio rerender VIDEO -t <saved path>`` renders."""
    from ..render.needs import render_weights
    from ..weights import catalog, hub

    if any(hub.locate(catalog.entry(name), weights_dir) is None for name in render_weights("wan", text=False,
                                                                                            depth=False)):
        return None

    def make(path):
        from ..render.rerender import Rerenderer

        return Rerenderer(weights_dir).session(video, path, depth=depth, prompt=prompt, size=size)

    return make


@app.command()
def studio(
    video: Annotated[Path, typer.Argument(help="Source video, or a still image.", show_default=False)],
    depth: Annotated[Optional[Path], typer.Option("--depth", help="Depth cache file (default: <video stem>"
                                                  ".depth.safetensors next to the video, else the depth model).")
                     ] = None,
    port: Annotated[int, typer.Option("--port", help="Port of the page (taken: the next free one).")] = 8080,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (default: this machine only).")
                    ] = "127.0.0.1",
    size: Annotated[Optional[str], typer.Option("--size", metavar="HxW", help="Canvas of a depth estimate, "
                                                "multiples of 16 (default 480x832).")] = None,
    fit: Annotated[str, typer.Option("--fit", help=f"How frames map onto the canvas: {', '.join(FIT_MODES)}.")
                   ] = "stretch",
    weights_dir: WeightsDirOpt = None,
    prompt: Annotated[Optional[str], typer.Option("--prompt", help="Text prompt of the render button's render "
                                                  "(default: as rerender, a caption of the video).")] = None,
    json_mode: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Fly through VIDEO's scene in the browser and author a camera path.

    Keyframes, a timeline, the live warp with its coverage, speed warnings; save as keyframe JSON (-t FILE).

    Needs the optional extra: pip install "inspatio-cli\\[studio]". Offline, CPU, no weights needed.

    With the generator's weights, a render button streams the path's render into the page. Ctrl-C stops it.
    """
    from ..studio.server import load_viser

    load_viser()
    from ..studio import StudioState, open_source, serve

    report = reporter(json_mode, quiet)
    canvas = None if size is None else parse_size(size)
    source = open_source(video, depth, fit=fit, size=canvas, weights_dir=weights_dir, reporter=report)
    server = serve(StudioState(source), host=host, port=port,
                   session_factory=_session_factory(video, depth, weights_dir, prompt, canvas), reporter=report)
    try:
        report.event("studio", url=server.url)
        report.info(f"studio for {video} at {server.url} (Ctrl-C to stop)")
        server.wait()
    finally:
        server.stop()
