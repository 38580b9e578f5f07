"""``inspatio models list|download|verify``: the weight files, where they are, fetching and checking them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import WeightsError
from ..files import check_folder
from ..weights import catalog, hub
from .app import JsonOpt, QuietOpt, app, print_table, reporter

group = typer.Typer(name="models", help="List, download and verify the model weights.", no_args_is_help=True)
app.add_typer(group)

WeightsDirOpt = Annotated[Optional[Path], typer.Option(
    "--weights-dir", metavar="DIR", envvar="INSPATIO_WEIGHTS_DIR",
    help="Folder laid out like the official checkpoints/ (default: the Hugging Face cache).",
    callback=lambda folder: None if folder is None else check_folder(folder, WeightsError, "weights folder"))]
OnlyOpt = Annotated[Optional[str], typer.Option(
    "--only", metavar="NAMES",
    help="Comma-separated names or groups (generator, vae, text, tae, depth, depth-base, ..., all). "
         "Default for download: what a default rerender needs.")]


def _selection(only: str | None, default_all: bool) -> list[catalog.WeightFile]:
    names = [n.strip() for n in only.split(",") if n.strip()] if only else (["all"] if default_all else None)
    return catalog.select(names)


@group.command("list")
def list_(weights_dir: WeightsDirOpt = None, only: OnlyOpt = None, json_mode: JsonOpt = False) -> None:
    """Show every weight file: what needs it, size, licence, and whether it is present."""
    rows = []
    for item in _selection(only, default_all=True):
        path = hub.locate(item, weights_dir)
        rows.append({"name": item.name, "group": item.group, "source": item.source, "size": item.size,
                     "licence": item.licence, "needed_by": catalog.commands_for(item), "purpose": item.purpose,
                     "present": path is not None, "path": str(path) if path else None})
    if json_mode:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    table = Table("name", "needed by", "size", "licence", "status", "source")
    for row in rows:
        status = f"[green]present[/green] {escape(str(row['path']))}" if row["present"] else "[red]missing[/red]"
        table.add_row(row["name"], escape(row["needed_by"]), hub.human_size(row["size"]), row["licence"],
                      status, row["source"])
    print_table(table)
    root = hub.weights_root(weights_dir)
    typer.echo(f"looking in {root}" if root else "looking in the Hugging Face cache (HF_HOME)", err=True)


@group.command()
def download(weights_dir: WeightsDirOpt = None, only: OnlyOpt = None, json_mode: JsonOpt = False,
             quiet: QuietOpt = False) -> None:
    """Fetch missing weights from the Hugging Face hub (resumable) and GitHub (TAEHV)."""
    report = reporter(json_mode, quiet)
    items = _selection(only, default_all=False)
    total = sum(i.size for i in items if hub.locate(i, weights_dir) is None)
    report.info(f"{len(items)} file(s), up to {hub.human_size(total)} to download")

    def on_file(item: catalog.WeightFile, status: str) -> None:
        report.event("file", name=item.name, source=item.source, status=status)
        if status != "done":
            report.info(f"{item.name}: {status} ({item.source}, {hub.human_size(item.size)})")

    paths = hub.download(items, weights_dir, on_file=on_file)
    report.event("summary", files={k: str(v) for k, v in paths.items()})
    report.info(f"done: {len(paths)} file(s) ready")


@group.command()
def verify(weights_dir: WeightsDirOpt = None, only: OnlyOpt = None, json_mode: JsonOpt = False,
           quiet: QuietOpt = False) -> None:
    """Check present weight files against the model classes (keys and shapes, headers only)."""
    from ..weights.checks import verify as check_files

    checks = check_files(_selection(only, default_all=True), weights_dir)
    if json_mode:
        for c in checks:
            typer.echo(json.dumps({"name": c.item.name, "status": c.status, "path": str(c.path) if c.path else None,
                                   "detail": c.detail}))
    elif not quiet:
        table = Table("name", "status", "detail", "path")
        colours = {"ok": "green", "bad": "red", "missing": "yellow"}
        for c in checks:
            table.add_row(c.item.name, f"[{colours[c.status]}]{c.status}[/]", escape(c.detail), str(c.path or ""))
        print_table(table)
    bad = [c for c in checks if c.status == "bad"]
    for c in bad:
        typer.echo(f"error: {c.path}: {c.detail}", err=True)
    if not any(c.status == "ok" for c in checks) and not bad:
        typer.echo("warning: no weight file found to verify", err=True)
    raise typer.Exit(1 if bad else 0)
