"""What a batch need not redo and what the rest will cost: a job is finished when its output exists and its
sidecar records the settings fingerprint the job would have (:func:`is_finished`); :func:`estimate` scales
the speed and memory measured by finished renders' sidecars to the jobs left (the dry run's estimate)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ..weights import catalog, hub
from ..files import TEMP_MARK
from ..render.rerender import SIDECAR_FORMAT, Rerenderer
from ..scene import depth_weights_needed
from ..weights.io import read_header
from .jobs import Job
from .plan import refuse_existing


def read_sidecar(job: Job) -> dict[str, Any] | None:
    """The sidecar object of ``job``'s output, or None when missing or unreadable."""
    try:
        data = json.loads(job.sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == SIDECAR_FORMAT else None


def rendered_before(job: Job) -> bool:
    """Whether ``job``'s output is its own earlier render: the sidecar beside it is this tool's and names this
    output. Such a job whose settings changed is redone in place, as resuming means."""
    recorded = read_sidecar(job)
    return recorded is not None and Path(str(recorded.get("output", ""))).name == job.output.name


def refuse_foreign_outputs(jobs: Sequence[Job]) -> None:
    """Before any work: refuse (naming ``--force``) an existing output of ``jobs`` (jobs left to do) that is
    not the job's own earlier render (:func:`rendered_before`): a batch never replaces a file it did not make."""
    refuse_existing([job for job in jobs if not rendered_before(job)], "--force")


def job_fingerprint(job: Job, renderer: Rerenderer) -> str:
    """The settings fingerprint ``job`` records in its sidecar when ``renderer`` renders it (video content,
    trajectory, depth, prompt, seed, options and weights); cheap: loads no model."""
    return renderer.fingerprint(job.source, job.trajectory, **job.settings_args())


def is_finished(job: Job, renderer: Rerenderer) -> bool:
    """Whether ``job`` need not run again: its output exists and its sidecar records the settings
    fingerprint this job would have (:func:`job_fingerprint`)."""
    if not job.output.is_file():
        return False
    recorded = read_sidecar(job)
    return recorded is not None and recorded.get("fingerprint") == job_fingerprint(job, renderer)


def split_finished(jobs: Sequence[Job], renderer: Rerenderer, *, force: bool = False) -> tuple[list[Job], list[Job]]:
    """``jobs`` as (finished, to render), each in the given order (:func:`is_finished`; with ``force``
    nothing is finished). What a batch, a Ray batch or a user's own scheduler skips and runs."""
    finished = [] if force else [job for job in jobs if is_finished(job, renderer)]
    done = {job.number for job in finished}
    return finished, [job for job in jobs if job.number not in done]


@dataclass
class Estimate:
    """What a list of jobs will cost. ``seconds``: from the rate measured by finished renders with the
    same device type, decoder and precision (their sidecars next to the outputs), scaled by pixels; None
    when there is no such measurement yet. Memory: the weights each phase holds (``weights``: bytes by
    phase, each freed before the next) and the peak measured by those renders (``measured_peak``)."""

    jobs: int
    frames: int
    chunks: int
    seconds: float | None
    rate: float | None
    measured_from: int
    weights: dict[str, int]
    measured_peak: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"jobs": self.jobs, "frames": self.frames, "chunks": self.chunks,
                "seconds": None if self.seconds is None else round(self.seconds, 1),
                "frames_per_second": None if self.rate is None else round(self.rate, 3),
                "measured_from": self.measured_from, "weights_bytes": self.weights,
                "measured_peak_bytes": self.measured_peak}


def _sidecars_near(jobs: Sequence[Job], limit: int = 200) -> list[dict[str, Any]]:
    """Render sidecars in the jobs' output folders (at most ``limit`` files read)."""
    found = []
    for folder in sorted({job.output.parent for job in jobs}):
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
            if len(found) >= limit or TEMP_MARK in path.name:
                break
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and data.get("format") == SIDECAR_FORMAT:
                found.append(data)
    return found


def _resident_bytes(path: Path, dtype: torch.dtype | None) -> int:
    """Bytes a weight file occupies once loaded: parameters x ``dtype``'s size for a ``.safetensors`` file
    (read from its header), else the file's size."""
    if path.suffix == ".safetensors" and dtype is not None:
        count = sum(math.prod(shape) for shape, _ in read_header(path).values())
        return count * torch.empty((), dtype=dtype).element_size()
    return path.stat().st_size


def estimate(jobs: Sequence[Job], renderer: Rerenderer, *, near: Sequence[Job] = ()) -> Estimate:
    """Time and memory for rendering ``jobs`` with ``renderer`` (see :class:`Estimate`), measured by the
    sidecars in the output folders of ``jobs`` and ``near`` (e.g. the finished jobs); loads no model."""
    pixels = sum(job.frames * job.canvas[0] * job.canvas[1] for job in jobs)
    done_pixels = spent = 0.0
    peaks = []
    for data in _sidecars_near([*jobs, *near]):
        settings, memory = data.get("settings", {}), data.get("peak_memory", {})
        same = (settings.get("decoder") == renderer.decoder and settings.get("dtype") == renderer.dtype_name
                and str(memory.get("device", "")).split(":")[0] == renderer.device.type)
        seconds = data.get("seconds", {})
        busy = seconds.get("total", 0.0) - seconds.get("load", 0.0)
        if not same or busy <= 0:
            continue
        size = settings.get("size", [0, 0])
        done_pixels += data.get("frames", 0) * size[0] * size[1]
        spent += busy
        stages = memory.get("stages") or {}
        peaks.append(max(stages.values()) if stages else memory.get("process_peak_rss", 0))
    pixel_rate = done_pixels / spent if spent > 0 and done_pixels > 0 else None
    seconds = None if pixel_rate is None else pixels / pixel_rate
    weights: dict[str, int] = {}
    for phase, names, dtype in (("render", ("generator", renderer.autoencoder_weights), renderer.dtype),
                                ("text", ("text-encoder",), None)):
        paths = [hub.locate(catalog.entry(n), renderer.weights_dir) for n in names]
        weights[phase] = sum(_resident_bytes(p, dtype) for p in paths if p is not None)
    needed = {n for job in jobs for n in depth_weights_needed(job.source, job.depth, fit=job.fit, size=job.canvas)}
    depth_paths = [hub.locate(catalog.entry(n), renderer.weights_dir) for n in sorted(needed)]
    weights["depth"] = sum(p.stat().st_size for p in depth_paths if p is not None)
    frames = sum(job.frames for job in jobs)
    rate = frames / seconds if seconds else None
    return Estimate(len(jobs), frames, sum(job.chunks for job in jobs), seconds, rate, len(peaks), weights,
                    max(peaks) if peaks else None)
