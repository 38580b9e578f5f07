"""Every fast-path switch leaves the results unchanged: the background encoder and the decode prefetch give
the same frames as the foreground code, errors still arrive in order and nothing is left behind."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from inspatio_cli.errors import RuntimeFailure
from inspatio_cli.video import Prefetch, VideoWriter, iter_frames


def _decoded(path) -> tuple[list[float], np.ndarray]:
    stamps, images = zip(*iter_frames(path))
    return list(stamps), np.stack(images)


def test_background_writer_writes_the_frames_a_foreground_writer_writes(tmp_path):
    g = torch.Generator().manual_seed(0)
    batches = [torch.rand(n, 3, 32, 48, generator=g) * 2 - 1 for n in (5, 1, 7)]
    buffer = np.zeros((4, 32, 48, 3), np.uint8)
    results = {}
    for background in (False, True):
        out = tmp_path / f"{background}.mp4"
        with VideoWriter(out, 24, lossless=True, background=background) as writer:
            for batch in batches:
                writer.write(batch)
                buffer[:] = 17 * len(batch)
                writer.write(buffer)  # reused by the caller right after: the queued frames must not change
                buffer[:] = 255
            assert writer.frames_written == 13 + 3 * 4
        results[background] = _decoded(out)
    assert results[True][0] == results[False][0]
    assert np.array_equal(results[True][1], results[False][1])
    assert results[True][1].shape == (25, 32, 48, 3)
    assert (results[True][1][5] == 85).all()


def test_background_writer_raises_an_encoding_error_and_leaves_nothing(tmp_path, monkeypatch):
    calls = []
    encode = VideoWriter._encode

    def failing(self, array, stop=None):
        calls.append(threading.current_thread().name)
        if len(calls) == 2:
            raise RuntimeFailure("cannot write the video (No space left on device)", self.path)
        encode(self, array, stop)

    monkeypatch.setattr(VideoWriter, "_encode", failing)
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeFailure, match="No space left"):
        with VideoWriter(out, 24) as writer:
            for _ in range(20):
                writer.write(np.zeros((2, 16, 16, 3), np.uint8))
    assert calls[0] == "inspatio-encode" and len(calls) == 2
    assert list(tmp_path.iterdir()) == []
    assert not any(t.name == "inspatio-encode" for t in threading.enumerate())


def test_prefetch_yields_in_order_and_raises_where_the_source_failed():
    def source():
        yield from range(5)
        raise ValueError("frame 5 is damaged")

    got = []
    with pytest.raises(ValueError, match="frame 5"):
        for item in Prefetch(source, 2):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]


def test_prefetch_stays_bounded_and_close_stops_the_source():
    made, closed = [], threading.Event()

    def source():
        try:
            for i in range(1000):
                made.append(i)
                yield i
        finally:
            closed.set()

    frames = Prefetch(source, 3)
    assert [next(frames) for _ in range(4)] == [0, 1, 2, 3]
    frames.close()
    assert closed.is_set() and len(made) <= 4 + 3 + 1
    with pytest.raises(StopIteration):
        next(frames)
