"""``Rerenderer.session``: the render made chunk by chunk, on tiny random checkpoints (``tiny_weights``), CPU,
48x80. A session stepped with the trajectory's cameras equals ``render()`` bit for bit; a live session takes
the cameras each step gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inspatio_cli.errors import UsageError
from inspatio_cli.render import stream
from inspatio_cli.render.models import Models
from inspatio_cli.render.rerender import Rerenderer
from inspatio_cli.video import to_uint8
from test_preview_pipeline import H, W, scene_files

PROMPT = "a cat sits on the mat"


@pytest.fixture(autouse=True)
def one_thread(tmp_path, monkeypatch):
    monkeypatch.setenv("INSPATIO_CACHE_DIR", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models() -> Models:
    return Models()


def test_a_session_stepped_with_the_trajectory_equals_the_render(tiny_weights, models, tmp_path, monkeypatch):
    """20 frames -> chunks of 9 and 11 (+1 padding): the streamed frames equal, bit for bit, the frames
    ``render()`` hands its video writer (the uint8 levels it encodes)."""
    written = []

    class RecordingWriter(stream.VideoWriter):
        def write(self, frames):
            written.append(to_uint8(frames))
            super().write(frames)

    monkeypatch.setattr(stream, "VideoWriter", RecordingWriter)
    files = scene_files(tmp_path, 20, 10)
    rr = Rerenderer(tiny_weights, device="cpu", models=models)
    rr.render(files["video"], files["traj"], tmp_path / "render.mp4", prompt=PROMPT, size=(H, W), seed=3)
    with rr.session(files["video"], files["traj"], prompt=PROMPT, size=(H, W), seed=3) as session:
        assert (session.frames, session.chunks, session.size, session.live) == (20, 2, (H, W), False)
        sizes = [session.chunk_frames(i) for i in range(session.chunks)]
        chunks = [session.step(session.planned_cameras(i)) for i in range(session.chunks)]
        assert session.finished
        with pytest.raises(UsageError, match="exhausted"):
            session.step()
    assert sizes == [9, 11] and [c.shape for c in chunks] == [(9, H, W, 3), (11, H, W, 3)]
    assert chunks[0].dtype == np.uint8 and np.array_equal(np.concatenate(chunks), np.concatenate(written))


def test_a_live_session_takes_each_steps_cameras(tiny_weights, models, tmp_path):
    """No trajectory: frame k shows source frame k; a still camera and a moved one give different frames;
    bad cameras and the TAEHV decoder are refused with one-line usage errors."""
    files = scene_files(tmp_path, 9, 10)
    rr = Rerenderer(tiny_weights, device="cpu", models=models)
    still = torch.eye(4, dtype=torch.float64).repeat(9, 1, 1)
    moved = still.clone()
    moved[:, 0, 3] = torch.linspace(0, 0.6, 9)
    outputs = []
    for cameras in (still, moved):
        with rr.session(files["video"], prompt=PROMPT, size=(H, W)) as session:
            assert session.live and (session.frames, session.chunks) == (9, 1)
            assert torch.equal(session.source_frames(0), torch.arange(9))
            with pytest.raises(UsageError, match=r"\(9, 4, 4\)"):
                session.step(cameras[:4])
            with pytest.raises(UsageError, match="rigid"):
                session.step(cameras * 2)
            outputs.append(session.step(cameras))
            assert torch.equal(session.planned_cameras(0), cameras)
    assert outputs[0].shape == (9, H, W, 3) and not np.array_equal(*outputs)
    tae = Rerenderer(tiny_weights, device="cpu", decoder="tae", models=Models())
    with pytest.raises(UsageError, match="Wan VAE"):
        tae.session(files["video"], prompt=PROMPT, size=(H, W))
