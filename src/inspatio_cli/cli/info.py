"""``inspatio info VIDEO...``: the facts of each video, as a table or JSON lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import InspatioError, Interrupted
from .app import JsonOpt, QuietOpt, add_plain_row, app, exit_for, print_error, print_table


@app.command()
def info(
    videos: Annotated[list[Path], typer.Argument(help="Video files to inspect.", show_default=False)],
    json_mode: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Show size, fps, frame count, duration, rotation, audio and codec of videos."""
    from ..video import probe

    table = Table("file", "size", "fps", "frames", "duration", "rotation", "audio", "codec")
    failures = []
    for path in videos:
        try:
            facts = probe(path)
        except Interrupted:
            raise
        except InspatioError as exc:
            failures.append(exc)
            print_error(exc.one_line())
            continue
        if json_mode:
            typer.echo(json.dumps(facts.as_dict()))
            continue
        audio = f"{facts.audio_codec} {facts.audio_sample_rate} Hz" if facts.has_audio else "none"
        fps = f"{facts.fps:.3f}".rstrip("0").rstrip(".") + (" (VFR)" if facts.variable_frame_rate else "") + (
            "" if facts.timestamps else " (no timestamps)")
        frames = str(facts.frame_count) + (f" of {facts.frame_count + facts.missing_frames} (cut off)"
                                           if facts.missing_frames else "")
        add_plain_row(table, path, f"{facts.width}x{facts.height}", fps, frames, f"{facts.duration:.2f} s",
                      f"{facts.rotation}°", audio, f"{facts.codec} {facts.pix_fmt}")
    if not json_mode and not quiet and table.row_count:
        print_table(table)
    exit_for(failures)
