"""``inspatio trajectory show|check|convert|presets``, and the shared trajectory/time/convention options.

:func:`camera_options` is the one definition of the flags that say how a trajectory is read and applied
(``--format --convention --direction --scale --anchor --rotation-only --resample --relative-to-source
--align-to --freeze --slow --reverse --extend --min-frames``). Any command gets all of them, identically, by
decorating itself and taking a ``camera: CameraOptions`` parameter::

    @app.command()
    @camera_options
    def preview(video: Path, trajectory: TrajectoryArg, camera: CameraOptions, ...): ...
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console

from ..choices import CONVENTIONS, EXPORTS, EXTEND_MODES, FORMATS
from ..files import check_outputs
from .app import JsonOpt, OverwriteOpt, QuietOpt, app, option_group, reporter

if TYPE_CHECKING:
    from ..cameras import CameraOptions
    from ..depth.result import DepthResult

PANEL = "Trajectory options"
TIME_PANEL = "Time options"


def _option(*names: str, help: str, panel: str = PANEL, **kw) -> typer.models.OptionInfo:
    return typer.Option(*names, help=help, rich_help_panel=panel, **kw)


_CAMERA_PARAMETERS = [
    ("fmt", Optional[str], None, _option("--format", help=f"Trajectory file format: {', '.join(FORMATS)} "
                                         "(default: detected from the file).")),
    ("convention", Optional[str], None, _option("--convention", help=f"Camera axes of a pose file: "
                                                f"{', '.join(CONVENTIONS)} (default: the format's).")),
    ("direction", Optional[str], None, _option("--direction", help="Matrices are c2w (camera-to-world) or w2c "
                                               "(default: the format's; tcw and RealEstate10K are w2c).")),
    ("scale", float, 1.0, _option("--scale", help="Multiply translations (the orbit radius of 3-line files) by "
                                  "this, e.g. 0.01 for centimetres.")),
    ("anchor", Optional[str], None, _option("--anchor", help="world: poses are in the first source camera's frame "
                                            "(default); first: relative to the file's own first pose.")),
    ("rotation_only", bool, False, _option("--rotation-only", help="Keep the camera at the source position, "
                                           "rotate only (the official rotation_only; no effect on pure dolly files).")),
    ("resample", bool, False, _option("--resample", help="Stretch a per-frame pose file to the video length "
                                      "instead of requiring one pose per frame.")),
    ("relative_to_source", bool, False, _option("--relative-to-source", help="Apply the path on top of the moving "
                                                "source camera (for driving/handheld videos).")),
    ("align_to", Optional[str], None, _option("--align-to", metavar="CAMERAS", help="The path is written in the "
                                              "coordinate system of CAMERAS, your cameras of the source frames "
                                              "(any pose format, one per frame): fit them onto the scene's and map "
                                              "the path into it (needs the scene: --depth for trajectory commands).")),
    ("freeze", Optional[list[str]], None, _option("--freeze", metavar="FRAME:COUNT", panel=TIME_PANEL,
                                                  help="Hold source FRAME (or 'mid') for COUNT extra frames while "
                                                       "the camera keeps moving; repeatable.")),
    ("slow", Optional[list[str]], None, _option("--slow", metavar="START:END:FACTOR", panel=TIME_PANEL,
                                                help="Play source frames START..END FACTOR times slower; repeatable.")),
    ("reverse", Optional[list[str]], None, _option("--reverse", metavar="START:END", panel=TIME_PANEL,
                                                   help="Play source frames START..END backwards; repeatable.")),
    ("extend", str, "none", _option("--extend", panel=TIME_PANEL,
                                    help=f"Lengthen short clips to --min-frames: {', '.join(EXTEND_MODES)} "
                                         "(official = the official adaptive bounce/subsample, 3-line files only).")),
    ("min_frames", int, 0, _option("--min-frames", panel=TIME_PANEL, help="Output length for --extend "
                                   "pingpong|loop|hold (never shortens).")),
]


def build_camera_options(fmt: str | None = None, convention: str | None = None, direction: str | None = None,
                         scale: float = 1.0, anchor: str | None = None, rotation_only: bool = False,
                         resample: bool = False, relative_to_source: bool = False, freeze: list[str] | None = None,
                         slow: list[str] | None = None, reverse: list[str] | None = None, extend: str = "none",
                         min_frames: int = 0, align_to: str | None = None) -> CameraOptions:
    """:class:`CameraOptions` from the values of the shared flags (validated: bad values are usage errors)."""
    from ..cameras import CameraOptions, TimeControl

    time = TimeControl.from_options(freeze, slow, reverse, extend, min_frames)
    return CameraOptions(fmt, convention, direction, scale, anchor, rotation_only, resample, relative_to_source, time,
                         align_to)


camera_options = option_group("camera", [(name, Annotated[kind, info], default)
                                         for name, kind, default, info in _CAMERA_PARAMETERS], build_camera_options)
"""Decorator for a Typer command: adds the shared trajectory/time/convention flags and passes them to the
command as its ``camera: CameraOptions`` parameter (the cameras code is imported only when a command runs)."""


TrajectoryArg = Annotated[str, typer.Argument(help="A trajectory file or a preset name (see "
                                              "'inspatio trajectory presets').", show_default=False)]
FramesOpt = Annotated[Optional[int], typer.Option("--frames", "-n", help="Number of source video frames "
                                                  "(default: the depth file's or the file's own).")]
DepthOpt = Annotated[Optional[Path], typer.Option("--depth", help="Depth cache file (inspatio depth): frame "
                                                  "count, source cameras and scene depth.")]
FpsOpt = Annotated[Optional[float], typer.Option("--fps", help="Video frame rate, for keyframes given in seconds.")]

group = typer.Typer(name="trajectory", help="Plot, lint, convert and list camera trajectories.",
                    no_args_is_help=True)
app.add_typer(group)


def _check_output(output: Path, trajectory: str, depth: Path | None, overwrite: bool) -> None:
    """Before any work: ``output`` is neither the trajectory file nor the depth file, nor (unless
    ``overwrite``) an existing file."""
    inputs = {Path(trajectory): "the trajectory file"} if Path(trajectory).is_file() else {}
    if depth is not None:
        inputs[depth] = "the depth file"
    check_outputs([(output, "the output")], inputs, overwrite=overwrite)


def _depth(path: Path | None) -> DepthResult | None:
    from ..depth.result import DepthResult

    return None if path is None else DepthResult.load(path)


@group.command()
@camera_options
def show(
    trajectory: TrajectoryArg,
    camera: CameraOptions,
    output: Annotated[Path, typer.Option("--output", "-o", help="Picture to write: .png, .jpg, .svg or .pdf.", show_default=False)],
    frames: FramesOpt = None,
    depth: DepthOpt = None,
    fps: FpsOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Draw the camera path: top and side views with frustums, start/end, and a timing panel."""
    _check_output(output, trajectory, depth, overwrite)
    from ..cameras.commands import show_trajectory

    out = show_trajectory(trajectory, output, options=camera, num_frames=frames, depth=_depth(depth), fps=fps)
    if not quiet:
        Console(stderr=True).print(f"wrote {out}", highlight=False, markup=False)


@group.command()
@camera_options
def check(
    trajectory: TrajectoryArg,
    camera: CameraOptions,
    frames: FramesOpt = None,
    depth: DepthOpt = None,
    fps: FpsOpt = None,
    json_mode: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Lint a trajectory for a video: exit 0 when usable, 1 when it has errors."""
    from ..cameras import check_trajectory

    report = check_trajectory(trajectory, options=camera, num_frames=frames, depth=_depth(depth), fps=fps)
    if json_mode:
        typer.echo(json.dumps(report.as_dict()))
    elif not quiet or not report.ok:
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        for issue in report.issues:
            if quiet and issue.level != "error":
                continue
            where = f"{report.path}:{issue.line}" if issue.line else report.path
            err.print(f"{issue.level}: {where}: {issue.message}", markup=False)
        if not quiet:
            s = report.summary
            if "frames" in s:
                err.print(f"{'ok' if report.ok else 'failed'}: {s['frames']} output frames, "
                          f"{s.get('chunks', 0)} chunks, "
                          f"max turn {s.get('max_deg_per_frame', 0):.2f} deg/frame", markup=False)
    if not report.ok:
        raise typer.Exit(1)


@group.command()
@camera_options
def convert(
    trajectory: TrajectoryArg,
    camera: CameraOptions,
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.", show_default=False)],
    to: Annotated[str, typer.Option("--to", help=f"Export format: {', '.join(EXPORTS)}.", show_default=False)],
    frames: FramesOpt = None,
    depth: DepthOpt = None,
    fps: FpsOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write the resolved per-frame cameras (OpenCV, relative to the first source camera) to another format."""
    _check_output(output, trajectory, depth, overwrite)
    from ..cameras.commands import convert_trajectory

    out = reporter(False, quiet)
    traj = convert_trajectory(trajectory, output, to, options=camera, num_frames=frames, depth=_depth(depth), fps=fps,
                              reporter=out)
    out.info(f"wrote {output} ({len(traj)} cameras, {to})")


@group.command()
def presets(json_mode: JsonOpt = False) -> None:
    """List the bundled trajectory presets (usable by name, e.g. '-t orbit_left')."""
    from ..cameras import list_presets
    from ..cameras.loader import preset_description

    items = {name: {"path": str(path), "description": preset_description(path)}
             for name, path in list_presets().items()}
    if json_mode:
        typer.echo(json.dumps(items))
        return
    for name, item in items.items():
        typer.echo(f"{name:18s} {item['description']}")
