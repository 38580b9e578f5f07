"""``trajectory check``: lint a trajectory against a video length and, optionally, the scene depth.

Errors make the trajectory unusable (malformed file, pose count that does not fit the video, camera
inside the scene geometry, clip too short for one generator chunk); warnings point at likely bad
results with the change that fixes them (turning faster than the official 0.8 deg/frame bound, frames
the generator will drop, large moves compared with the scene depth, a pose file that does not start at
the source camera, an ``--align-to`` fit with a large residual, outliers or too few frames); infos say how
the file was read and the fit's figures.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..depth.result import DepthResult
from ..errors import TrajectoryError
from ..geometry import se3
from .align import alignment_summary, alignment_warnings
from .official import OrbitKeyframes
from .options import CameraOptions
from .render import render_cameras
from .source import MEDIAN_DEPTH, TrajectorySource, frame_count, in_scene_units
from .timecontrol import OFFICIAL_MAX_DEG_PER_FRAME
from .trajectory import Trajectory

DEFAULT_FRAMES = 121
FIRST_CHUNK_FRAMES = 9
NEAR_DEPTH_PERCENTILE = 5.0
LARGE_MOVE_FRACTION = 0.5
START_OFFSET_DEG = 2.0
START_OFFSET_UNITS = 0.1


@dataclass(frozen=True)
class Issue:
    """One finding: ``level`` is ``error``, ``warning`` or ``info``; ``code`` a stable short name;
    ``line`` the 1-based file line when it concerns one."""

    level: str
    code: str
    message: str
    line: int | None = None


@dataclass
class LintReport:
    """All findings for one trajectory, plus figures (``summary``) for ``--json``."""

    path: str
    issues: list[Issue] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(i.level == "error" for i in self.issues)

    def add(self, level: str, code: str, message: str, line: int | None = None) -> None:
        self.issues.append(Issue(level, code, message, line))

    def as_dict(self) -> dict:
        return {"path": self.path, "ok": self.ok, "issues": [asdict(i) for i in self.issues], "summary": self.summary}


def check_trajectory(source: str | Path, *, options: CameraOptions | None = None, num_frames: int | None = None,
                     depth: DepthResult | None = None, fps: float | None = None) -> LintReport:
    """Lint ``source`` (a file or preset) as it would be used on a video of ``num_frames`` frames (or
    the depth file's frame count; else the file's own pose count; else 121). Bad options (including a
    ``--frames`` that contradicts the depth file) raise :class:`UsageError`; everything about the file
    is reported as issues. With ``options.align_to`` (which needs ``depth``) the path is aligned first and the
    fit reported (:mod:`.align`); a bad cameras file or an impossible fit raises :class:`TrajectoryError`
    (it is another input than the trajectory checked)."""
    options = options or CameraOptions()
    report = LintReport(str(source))
    try:
        parsed = options.load(source)
    except TrajectoryError as exc:
        report.add("error", "parse", exc.message, exc.line)
        return report
    report.path = str(source) if parsed.meta.get("preset") else parsed.meta.get("path") or str(source)
    _describe_reading(report, parsed)
    n = frame_count(parsed, num_frames, None if depth is None else depth.num_frames, DEFAULT_FRAMES)
    if not (num_frames or depth is not None or parsed.frame_count):
        report.add("info", "frames", f"assuming a {n}-frame video (pass --frames N or --depth FILE)")
    try:
        traj = parsed.resolve(n, options.time, fps=fps)
    except TrajectoryError as exc:
        report.add("error", "resolve" if parsed.frame_count is None else "count",
                   exc.message + (f" ({exc.hint})" if exc.hint else ""), exc.line)
        return report
    if depth is not None:
        traj = in_scene_units(traj, depth)
    elif traj.meta.get("translation_unit") == MEDIAN_DEPTH:
        report.add("info", "units", "moves are measured in median depths of the scene: without --depth the "
                                    "distances are checked for a median depth of 1")
    traj = options.align(traj, depth)
    report.summary.update(format=parsed.meta.get("format"), source_frames=n, frames=len(traj))
    _check_alignment(report, traj)
    if isinstance(parsed, OrbitKeyframes):
        _check_orbit(report, parsed, len(traj))
    _check_speed(report, traj)
    _check_chunks(report, traj)
    if not isinstance(parsed, OrbitKeyframes) and "alignment" not in traj.meta:  # an aligned start is intended
        _check_start(report, traj, depth)
    if depth is not None:
        _check_depth(report, traj, depth, options.relative_to_source)
    return report


def _check_alignment(report: LintReport, traj: Trajectory) -> None:
    """The ``--align-to`` fit's figures (``summary.alignment``), its summary as an info and its doubts
    (large residual, outliers, too few or collinear frames) as warnings."""
    fit = traj.meta.get("alignment")
    if fit is None:
        return
    report.summary["alignment"] = fit
    report.add("info", "align", alignment_summary(fit))
    for warning in alignment_warnings(fit):
        report.add("warning", "align", warning)


def _describe_reading(report: LintReport, parsed: TrajectorySource) -> None:
    meta = parsed.meta
    if meta.get("preset"):
        report.add("info", "preset", f"preset {meta['preset']!r} ({meta.get('path')})")
    if meta.get("format") == "moves":
        report.add("info", "format", f"read as moves: {', '.join(meta['segments'])}")
    elif meta.get("format") != "orbit":
        report.add("info", "format", f"read as {meta.get('format')}: {meta.get('convention')} axes, "
                   f"{meta.get('direction')}, anchor {meta.get('anchor')}, scale {meta.get('scale'):g} "
                   "(see --format/--convention/--direction/--anchor/--scale)")


def _check_orbit(report: LintReport, orbit: OrbitKeyframes, n: int) -> None:
    for line in orbit.meta.get("ignored_lines", []):
        report.add("warning", "ignored-line", "lines after the third are ignored (as by the official code)", line)
    samples = orbit.samples(n)
    for keys, values, line, name in ((orbit.x_up, samples.x_up, orbit.lines[0], "pitch"),
                                     (orbit.y_left, samples.y_left, orbit.lines[1], "yaw")):
        if len(keys) <= 3:
            report.add("info", "linear", f"{len(keys)} {name} keyframes: linear interpolation", line)
        elif np.abs(keys).max() - np.abs(values).max() > 0.5:
            report.add("info", "smoothing", f"the official smoothing spline reaches {np.abs(values).max():.2f} deg of "
                       f"{name}, not the keyframes' {np.abs(keys).max():g} deg", line)
    if samples.is_zoom:
        report.add("info", "zoom", "pitch and yaw are zero: the displacement line is a forward dolly")


def _check_speed(report: LintReport, traj: Trajectory) -> None:
    steps = _turn_steps(traj)
    report.summary.update(total_deg=round(float(steps.sum()), 4),
                          max_deg_per_frame=round(float(steps.max(initial=0.0)), 4))
    warning = speed_warning(traj, steps)
    if warning:
        report.add("warning", "speed", warning)


def _turn_steps(traj: Trajectory) -> np.ndarray:
    """Degrees the camera turns between consecutive output frames, ``(T-1,)``."""
    R = traj.rel_c2w.numpy()[:, :3, :3]
    return se3.rotation_angle_deg(R[:-1], R[1:]) if len(R) > 1 else np.zeros(0)


def speed_warning(traj: Trajectory, steps: np.ndarray | None = None) -> str | None:
    """The warning for a camera that turns faster than the official 0.8 deg/frame bound (the generator
    smears such motion), with how many frames would keep it under the bound; None when it does not.
    ``trajectory check`` lists it; preview and rerender print it and record it with their warnings."""
    steps = _turn_steps(traj) if steps is None else steps
    if not len(steps) or steps.max() <= OFFICIAL_MAX_DEG_PER_FRAME:
        return None
    k = int(steps.argmax())
    fast = int((steps > OFFICIAL_MAX_DEG_PER_FRAME).sum())
    needed = math.ceil(len(steps) * steps.max() / OFFICIAL_MAX_DEG_PER_FRAME) + 1
    return (f"the camera turns up to {steps.max():.2f} deg/frame (frames {k}->{k + 1}; {fast} steps above the "
            f"official bound of {OFFICIAL_MAX_DEG_PER_FRAME} deg/frame): expect smearing; use a longer clip "
            f"(about {needed} frames, e.g. --slow or --extend pingpong --min-frames {needed}) or smaller angles")


def _check_chunks(report: LintReport, traj: Trajectory) -> None:
    plan = traj.chunks()
    report.summary.update(chunks=len(plan), padded_frames=plan.padded_frames, official_frames=plan.official_frames)
    if not len(plan):
        report.add("error", "empty", "the trajectory has no output frames")
    elif len(traj) < FIRST_CHUNK_FRAMES:
        report.add("warning", "short", f"{len(traj)} frames fill less than the generator's first chunk "
                   f"({FIRST_CHUNK_FRAMES} frames): it is padded with the last frame; a longer clip gives the "
                   f"generator real motion to work with (--extend hold|loop|pingpong --min-frames {FIRST_CHUNK_FRAMES})")
    elif plan.padding:
        report.add("info", "padded", f"the last chunk is completed with {plan.padding} repeat(s) of the last frame, "
                   f"generated and then trimmed (the official pipeline would drop the last "
                   f"{len(traj) - plan.official_frames} frame(s) instead)")


def _check_start(report: LintReport, traj: Trajectory, depth: DepthResult | None) -> None:
    first = traj.rel_c2w[0].numpy()
    angle = float(se3.rotation_angle_deg(np.eye(3), first[:3, :3]))
    offset = float(np.linalg.norm(first[:3, 3]))
    limit = START_OFFSET_UNITS if depth is None else START_OFFSET_UNITS * float(depth.depth[0].median())
    report.summary.update(start_offset=round(offset, 6), start_angle_deg=round(angle, 4))
    if angle > START_OFFSET_DEG or offset > limit:
        report.add("warning", "start", f"the path starts {offset:.3g} units and {angle:.1f} deg away from the source "
                   "camera; if the file comes from another tool use --anchor first (poses relative to the first)")


def _check_depth(report: LintReport, traj: Trajectory, depth: DepthResult, relative_to_source: bool) -> None:
    d = depth.depth.double().numpy()
    cams = render_cameras(traj, depth.c2w, depth.K[0], relative_to_source=relative_to_source,
                          width=depth.size[1], height=depth.size[0])
    target = cams.target_c2w.double().numpy()
    src_w2c = cams.source_w2c.double().numpy()
    near = float(np.percentile(d[0], NEAR_DEPTH_PERCENTILE))
    centres = np.einsum("nij,nj->ni", src_w2c, np.c_[target[:, :3, 3], np.ones(len(target))])[:, :3]
    moves = np.linalg.norm(centres, axis=1)
    report.summary.update(near_depth=round(near, 6), max_move=round(float(moves.max()), 6))
    if moves.max() > LARGE_MOVE_FRACTION * near:
        k = int(moves.argmax())
        report.add("warning", "large-move", f"the camera moves up to {moves.max():.3g} units from the source camera "
                   f"(frame {k}), {moves.max() / near:.0%} of the near scene depth {near:.3g}: expect large holes; "
                   "reduce the displacement or --scale")
    K = depth.K.double().numpy()[cams.source_index.numpy()]
    inside = []
    h, w = depth.size
    for k, (p, s) in enumerate(zip(centres, cams.source_index.numpy())):
        if p[2] <= 1e-9:
            continue
        u, v = K[k, 0, 0] * p[0] / p[2] + K[k, 0, 2], K[k, 1, 1] * p[1] / p[2] + K[k, 1, 2]
        if 0 <= u < w and 0 <= v < h and p[2] >= d[s, int(v), int(u)]:
            inside.append(k)
    report.summary["frames_inside_geometry"] = len(inside)
    if inside:
        report.add("error", "inside-geometry",
                   f"the camera passes behind the visible surface in {len(inside)} frame(s) "
                   f"(first {inside[0]}, last {inside[-1]}): it would look from inside the scene; reduce the "
                   "displacement or --scale")
