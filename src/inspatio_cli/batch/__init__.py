"""``batch``: many rerenders in one process: jobs, manifests, validation, sharding, resume, failure isolation.

A **job** is one :meth:`Rerenderer.render` call: a video, a trajectory, an output and the settings. Jobs
come from a manifest (:func:`read_manifest` + :func:`plan_jobs`) or from the command line's cross product
of videos x trajectories x seeds (``inspatio rerender a.mp4 b.mp4 -t x -t y -o out/``, :func:`plan_inputs`);
both go through :func:`plan_jobs`, which validates every job before anything runs and reports all problems
at once. :func:`run_jobs` renders the validated list with the models loaded once.

Manifests (relative paths are relative to the manifest's folder, or the current folder for stdin):

* **JSONL** (``.jsonl``/``.ndjson``, or a first line starting with ``{``): one object per line;
* **CSV** (``.csv``, ``.tsv``, or a first line with a ``video`` column): a header row, then one row per line;
* **a plain list** of video paths, one per line (anything else), with the trajectories given by ``-t``.

Keys (:data:`JOB_KEYS` and the per-job overrides :data:`OPTION_KEYS`; anything else is an error): ``video``,
``trajectory``, ``output``, ``prompt``/``prompt_file``, ``seed``. A row without ``trajectory`` (or ``seed``)
expands to every ``-t`` (``--seed``) of the command line; a row without ``output`` is named by the
``--name`` pattern in ``-o DIR``. Blank lines and lines starting with ``#`` are skipped.

Scaling out: :func:`run_on_ray` renders the same validated list on a pool of Ray workers (``--ray``);
:func:`parse_shard` (``--shard K/N`` or ``auto``) splits it statically across processes a launcher starts.
The planning API a user's own scheduler calls: :func:`plan_manifest` (a manifest -> validated jobs, numbered
as ``inspatio batch`` numbers them), :func:`job_fingerprint` and :func:`split_finished` (finished, to do).

Modules, in the order the data flows: ``keys`` (the keys and their cell parsers), ``manifest`` (reading
JSONL/CSV/lists into rows; :class:`Problem`, :class:`InvalidJobs`), ``jobs`` (:class:`JobDefaults`,
:class:`Job`, shards), ``plan`` (rows -> validated jobs: expansion, output names, conflicts), ``resume``
(fingerprints, finished jobs, the dry-run estimate), ``run`` (:func:`run_jobs`: phases, per-job events,
failure isolation), ``cluster`` (:func:`run_on_ray`: the pool, retries, cancel, events) and ``worker`` (the
Ray actor). Importing the package imports none of them (nor PyTorch, nor Ray): each public name is imported
on first use.
"""

from ..lazy import lazy_exports

_EXPORTS = {
    "ALL_KEYS": "keys", "BATCH_WIDE_KEYS": "keys", "JOB_KEYS": "keys", "OPTION_KEYS": "keys",
    "InvalidJobs": "manifest", "Manifest": "manifest", "Problem": "manifest", "Row": "manifest",
    "read_manifest": "manifest",
    "Job": "jobs", "JobDefaults": "jobs", "parse_shard": "jobs", "select_shard": "jobs",
    "shard_from_environment": "jobs",
    "output_is_folder": "plan", "plan_inputs": "plan", "plan_jobs": "plan", "plan_manifest": "plan",
    "Estimate": "resume", "estimate": "resume", "is_finished": "resume", "job_fingerprint": "resume",
    "read_sidecar": "resume", "split_finished": "resume",
    "BatchSummary": "run", "Outcome": "run", "check_pending": "run", "check_weights": "run", "prepare_jobs": "run",
    "render_job": "run", "run_jobs": "run",
    "RayOptions": "cluster", "run_on_ray": "cluster",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
