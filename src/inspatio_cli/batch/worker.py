"""One worker of a Ray batch (:mod:`.cluster`): a plain class that Ray runs as an actor. It holds one
:class:`Rerenderer` for its whole life, so the generator and autoencoder load once per worker (on its
first job), and it renders the jobs the driver hands it one at a time with the same code as a local batch
(:func:`.run.prepare_jobs`, :func:`.run.render_job`). Its events go to the driver through a queue."""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import Interrupted
from ..progress import Reporter
from ..render.rerender import Rerenderer
from .jobs import Job
from .run import Outcome, prepare_jobs, render_job


class Relay(Reporter):
    """A worker's reporter: prints nothing; every event, message and error is put on ``queue`` (a
    ``ray.util.queue.Queue``) as ``(worker, kind, name, data)``, where ``kind`` is ``event``, ``info`` or
    ``error``; the driver reports them (:class:`.cluster.Pool`). Warnings arrive as ``warning`` events.
    The driver cancels a batch by removing the queue: the next item raises :class:`Interrupted` here, in the
    middle of the render that sent it, so the render unwinds like a local one on Ctrl-C."""

    def __init__(self, queue: Any, worker: str):
        super().__init__("silent")
        self.queue, self.worker = queue, worker

    def event(self, kind: str, **data: Any) -> None:
        self._send("event", kind, data)

    def info(self, message: str) -> None:
        self._send("info", message, {})

    def error(self, message: str) -> None:
        self._send("error", message, {})

    def _send(self, kind: str, name: str, data: dict[str, Any]) -> None:
        try:
            self.queue.put((self.worker, kind, name, data))
        except Exception:  # noqa: BLE001 - the queue is gone: the driver cancelled the batch
            raise Interrupted("the batch's driver") from None


class Worker:
    """The actor: ``renderer_args`` are :class:`Rerenderer`'s keyword arguments (devices resolved here, on
    the worker's own GPU); ``queue`` carries the events to the driver; ``name`` tags them."""

    def __init__(self, renderer_args: dict[str, Any], queue: Any, name: str):
        self.renderer = Rerenderer(**renderer_args)
        self.reporter = Relay(queue, name)

    def prepare(self, jobs: Sequence[Job], force: bool, total: int) -> dict[int, Outcome]:
        """Skip finished jobs, check weights, estimate depth and embed prompts for the whole list, once
        (:func:`.run.prepare_jobs`); returns the ``skipped`` and ``failed`` outcomes by job number."""
        return prepare_jobs(jobs, self.renderer, self.reporter, force=force, total=total)

    def render(self, job: Job, total: int) -> Outcome:
        """Render one prepared job (:func:`.run.render_job`)."""
        return render_job(job, self.renderer, self.reporter, total=total)
