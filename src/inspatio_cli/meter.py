"""Seconds and peak memory per pipeline stage, for run reports, sidecars and benchmarks.

A :class:`StageMeter` times named sections (a stage may be entered many times, e.g. once per chunk; its
seconds add up and its peak is the largest seen). Peak memory means:

* on CUDA: the peak bytes allocated on the device while the section ran (``torch.cuda.max_memory_allocated``
  after a reset at its start), so it includes the models and everything held between chunks;
* on the CPU with ``track_tensors``: the peak bytes of live tensors created by torch operations since
  :meth:`StageMeter.tracking` began (model weights loaded before are not counted). A dispatch mode sees
  every operation's new storages and forgets them when they are freed; it slows small models down a few
  times, so it is for tests and benchmarks that compare memory, not for production runs;
* on the CPU otherwise: no per-stage figure; :func:`process_peak_rss` gives the process's peak resident memory.
"""

from __future__ import annotations

import contextlib
import resource
import sys
import time
from typing import Iterator

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


def process_peak_rss() -> int:
    """Peak resident memory of this process in bytes (``ru_maxrss``: kB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class _LiveTensors(TorchDispatchMode):
    """Follows the storages that torch operations create (not views or in-place results of existing
    ones) until they are freed; after each new allocation, the live total updates the current section's
    peak. Keys are data pointers, unique among live storages; a freed storage's entry is replaced when
    its address is reused."""

    def __init__(self) -> None:
        super().__init__()
        self.storages: dict[int, tuple[StorageWeakRef, int]] = {}
        self.section: str | None = None
        self.peaks: dict[str, int] = {}

    def _tracked(self, key: int) -> bool:
        entry = self.storages.get(key)
        return entry is not None and not entry[0].expired()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        new = False
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key, size = storage.data_ptr(), storage.nbytes()
            if size and key not in inputs and not self._tracked(key):
                self.storages[key] = (StorageWeakRef(storage), size)
                new = True
        if new and self.section is not None:
            live = 0
            for key, (ref, size) in list(self.storages.items()):
                if ref.expired():
                    del self.storages[key]
                else:
                    live += size
            self.peaks[self.section] = max(self.peaks.get(self.section, 0), live)
        return out


class StageMeter:
    """Accumulates seconds (:attr:`seconds`) and peak memory in bytes (:attr:`peak`) per section name."""

    def __init__(self, device: torch.device | str = "cpu", track_tensors: bool = False):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.track_tensors = track_tensors and not self.cuda
        self.seconds: dict[str, float] = {}
        self.peak: dict[str, int] = {}
        self._live: _LiveTensors | None = None

    @contextlib.contextmanager
    def tracking(self) -> Iterator[None]:
        """Follow live tensors inside this block (CPU with ``track_tensors`` only; a no-op otherwise)."""
        if not self.track_tensors:
            yield
            return
        self._live = _LiveTensors()
        try:
            with self._live:
                yield
        finally:
            for name, value in self._live.peaks.items():
                self.peak[name] = max(self.peak.get(name, 0), value)
            self._live = None

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        """Time (and measure) one pass through section ``name``."""
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        outer = self._live.section if self._live is not None else None
        if self._live is not None:
            self._live.section = name
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.cuda:
                torch.cuda.synchronize(self.device)
                peak = int(torch.cuda.max_memory_allocated(self.device))
                self.peak[name] = max(self.peak.get(name, 0), peak)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            if self._live is not None:
                self._live.section = outer

    def report(self) -> dict:
        """JSON-friendly figures: seconds (rounded) and peak bytes per section, plus the process peak RSS."""
        return {"seconds": {k: round(v, 4) for k, v in self.seconds.items()},
                "peak_memory": {"device": str(self.device), "kind": self.kind,
                                "stages": dict(self.peak), "process_peak_rss": process_peak_rss()}}

    @property
    def kind(self) -> str:
        """What :attr:`peak` measures: ``cuda_allocated``, ``live_tensors`` or ``none``."""
        return "cuda_allocated" if self.cuda else ("live_tensors" if self.track_tensors else "none")
