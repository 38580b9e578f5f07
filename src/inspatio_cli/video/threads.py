"""The stage's background threads, so I/O overlaps compute: :class:`Prefetch` runs an iterator a few items
ahead (decoding the next frames), :class:`EncodeThread` consumes queued batches behind the caller (encoding
the last ones). Both stop promptly on request and hand their errors to the caller's thread."""

from __future__ import annotations

import queue
import threading
from typing import Callable, Generic, Iterator, TypeVar

import numpy as np

T = TypeVar("T")
_POLL = 0.05
"""Seconds between checks of the stop flag while a queue is full or empty."""


class _Channel:
    """A FIFO of at most ``size`` items between a producer and a consumer thread, made of two C-level
    ``queue.SimpleQueue`` (the items, and one token per free place). ``queue.Queue`` waits in Python code
    (``Condition.wait``): the exception a signal handler raises in the main thread (``Interrupted``) can
    land inside it and leave its lock corrupted, and both threads then wait for ever. A ``SimpleQueue``
    call is one C call, which a signal interrupts cleanly."""

    def __init__(self, size: int):
        self._items: queue.SimpleQueue = queue.SimpleQueue()
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(size):
            self._free.put(None)

    def put(self, item: object, stop: threading.Event) -> bool:
        """Put ``item`` once there is room, unless ``stop`` is set first (False then); never blocks for good."""
        while not stop.is_set():
            try:
                self._free.get(timeout=_POLL)
            except queue.Empty:
                continue
            self._items.put(item)
            return True
        return False

    def put_last(self, item: object) -> None:
        """Put an end marker or an error, without waiting for room (at most one more item)."""
        self._items.put(item)

    def get(self, timeout: float | None = None) -> object:
        """The next item (waits; ``queue.Empty`` after ``timeout`` seconds when given)."""
        item = self._items.get(timeout=timeout)
        self._free.put(None)
        return item


class Prefetch(Generic[T]):
    """Iterates ``make()`` on a background thread, up to ``ahead`` items in advance, in order.

    For decoding: the thread decodes (and fits) the next frames while the caller warps, encodes or
    generates. The iterator is created, run and closed on the thread; an exception it raises is raised
    by ``next`` at its place in the sequence (items before it are delivered first, items after are never
    made). :meth:`close` (also on garbage collection of an unfinished prefetch) stops the thread after
    the item it is making. Memory: at most ``ahead + 1`` items exist at once.
    """

    def __init__(self, make: Callable[[], Iterator[T]], ahead: int, name: str = "inspatio-prefetch"):
        if ahead < 1:
            raise ValueError(f"ahead must be >= 1, got {ahead}")
        self._items = _Channel(ahead)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, args=(make,), name=name, daemon=True)
        self._thread.start()

    def _run(self, make: Callable[[], Iterator[T]]) -> None:
        source = None
        try:
            source = make()
            for item in source:
                if not self._items.put((True, item), self._stop):
                    return
            self._items.put_last((False, None))
        except BaseException as exc:  # handed to the caller, who sees it where it happened
            self._items.put_last((False, exc))
        finally:
            if source is not None and hasattr(source, "close"):
                source.close()

    def __iter__(self) -> "Prefetch[T]":
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        ok, value = self._items.get()
        if ok:
            return value
        self._done = True
        self._thread.join()
        if value is not None:
            raise value
        raise StopIteration

    def close(self) -> None:
        """Stop the thread (it finishes the item in hand and closes its iterator) and wait for it."""
        self._done = True
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def __del__(self) -> None:
        self._stop.set()


class EncodeThread:
    """Runs ``encode(batch, stop)`` for every queued batch, in order, on one thread; at most ``queued``
    batches wait. The first error is kept and raised in the caller's thread by the next :meth:`put` or by
    :meth:`finish`."""

    def __init__(self, encode: Callable[[np.ndarray, threading.Event], None], queued: int):
        self._batches = _Channel(queued)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(encode,), name="inspatio-encode", daemon=True)
        self._thread.start()

    def _run(self, encode: Callable[[np.ndarray, threading.Event], None]) -> None:
        while not self._stop.is_set():
            try:
                batch = self._batches.get(timeout=_POLL)
            except queue.Empty:
                continue
            if batch is None:
                return
            try:
                encode(batch, self._stop)
            except BaseException as exc:  # raised again in the caller's thread
                self._error = exc
                self._stop.set()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def put(self, batch: np.ndarray) -> None:
        """Queue a batch (waits while the queue is full); raises an earlier batch's error instead."""
        self._raise()
        self._batches.put(batch, self._stop)
        self._raise()

    def finish(self) -> None:
        """Encode everything queued, stop the thread, raise its error if any."""
        self._batches.put_last(None)
        self._thread.join()
        self._raise()

    def stop(self) -> None:
        """Drop what is queued: the thread stops after the frame in hand."""
        self._stop.set()
        self._thread.join()
