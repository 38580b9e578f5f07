"""``inspatio caption VIDEO...``: the Florence-2 caption of each video (the official automatic prompt)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..devices import check_device
from ..errors import InputError, UsageError
from .app import JsonOpt, QuietOpt, add_plain_row, app, exit_for, print_error, print_table, reporter
from .models import WeightsDirOpt


@app.command()
def caption(
    videos: Annotated[list[Path], typer.Argument(help="Video files to caption.", show_default=False)],
    frame: Annotated[Optional[int], typer.Option("--frame", metavar="N", help="Caption frame N (0-based) "
                                                 "instead of the middle frame.", show_default=False)] = None,
    device: Annotated[str, typer.Option("--device", help="auto (the GPU if any), cpu, cuda, cuda:1, ...",
                                        callback=lambda name: check_device(name))] = "auto",
    weights_dir: WeightsDirOpt = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the caption cache.")
                        ] = False,
    json_mode: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Describe each video with Florence-2-large, as the official pipeline does to make its prompt.

    Captions the middle frame with the <MORE_DETAILED_CAPTION> task; captions are cached by video content.
    Needs the optional extra: pip install "inspatio-cli\\[caption]".
    """
    from ..caption import Captioner

    table = Table("video", "frame", "caption")
    failures = []
    with Captioner(weights_dir=weights_dir, device=device, cache=not no_cache,
                   reporter=reporter(json_mode, quiet)) as captioner:
        for path in videos:
            try:
                result = captioner.caption(path, frame)
            except (InputError, UsageError) as exc:
                failures.append(exc)
                print_error(exc.one_line())
                continue
            add_plain_row(table, path, result.frame, result.text)
    if not json_mode and not quiet and table.row_count:
        print_table(table)
    exit_for(failures)
