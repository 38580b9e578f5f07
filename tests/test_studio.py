"""``inspatio studio``'s state, driven through its Python handles (no viser, no browser): keyframes, the
timeline, the warp preview, saving (a saved path previews like the same path written by hand), export
(equal to the keyframes), the render through a session (a fake one), and the missing-extra error."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch

from clirun import run
from decoded import read_video
from inspatio_cli.cameras import load_trajectory
from inspatio_cli.errors import UsageError
from inspatio_cli.render.preview import preview
from inspatio_cli.scene import Scene
from inspatio_cli.studio import StudioState, open_source
from inspatio_cli.video import to_uint8
from test_preview_pipeline import H, W, scene_files

FRAMES = 12
YAW_DEG = 6.0
SHIFT = 0.3


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def clip(tmp_path):
    """A 48x80 clip of 12 frames with its sidecar depth (a wall with a nearer box, static identity camera)."""
    return scene_files(tmp_path, FRAMES, 12)


def turned(yaw_deg: float, x: float) -> np.ndarray:
    """A camera-to-world matrix turned by ``yaw_deg`` about +y and moved by ``x`` along +x."""
    a = math.radians(yaw_deg)
    c2w = np.eye(4)
    c2w[:3, :3] = [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]]
    c2w[0, 3] = x
    return c2w


def two_keyframes(state: StudioState) -> None:
    """Keyframes at frame 0 (the source camera) and at the last frame (turned and moved)."""
    state.scrub(0)
    state.add_keyframe()
    state.scrub(state.num_frames - 1)
    state.set_camera(turned(YAW_DEG, SHIFT))
    state.add_keyframe()


def test_keyframes_timeline_and_preview(clip):
    source = open_source(clip["video"])
    points, colours = source.point_cloud(budget=1000)
    assert len(points) == len(colours) <= 1000 and len(points) > 500
    assert np.isin(np.round(points[:, 2], 3), [1.5, 3.0]).all()  # the wall and the box, unprojected
    state = StudioState(source)
    assert state.num_frames == FRAMES and not state.has_path and state.warnings() == []
    start = state.preview()
    assert start.coverage == 1.0 and start.image.shape == (48, 80, 3)
    two_keyframes(state)
    assert [k.frame for k in state.keyframes] == [0, FRAMES - 1] and state.has_path
    state.scrub(5)
    middle = state.camera[0, 3]
    assert 0 < middle < SHIFT
    view = state.preview()
    assert view.frame == 5 and view.source_frame == 5 and 0.5 < view.coverage < 1.0
    state.set_camera(turned(0.0, -SHIFT))
    state.add_keyframe()  # a third keyframe, between the others
    assert [k.frame for k in state.keyframes] == [0, 5, FRAMES - 1]
    state.scrub(5)
    assert state.camera[0, 3] == pytest.approx(-SHIFT, abs=1e-6)
    state.set_camera(turned(0.0, 0.1))
    state.move_keyframe(1)
    state.scrub(5)
    assert state.camera[0, 3] == pytest.approx(0.1, abs=1e-6) and len(state.keyframes) == 3
    state.set_camera(turned(0.0, 0.2))
    state.add_keyframe()  # at a keyframe's frame: replaces its pose
    assert len(state.keyframes) == 3 and state.keyframes[1].c2w[0, 3] == 0.2
    state.delete_keyframe(1)
    state.delete_keyframe(0)
    assert not state.has_path
    for bad in (lambda: state.scrub(FRAMES), lambda: state.delete_keyframe(3), lambda: state.path()):
        with pytest.raises(UsageError):
            bad()


def test_fast_turn_warns_as_trajectory_check(clip):
    state = StudioState(open_source(clip["video"]))
    state.add_keyframe()
    state.scrub(2)
    state.set_camera(turned(10.0, 0.0))
    state.add_keyframe()
    warnings = state.warnings()
    assert len(warnings) == 1 and "deg/frame" in warnings[0]


def test_saved_path_previews_like_the_same_path_written_by_hand(clip, tmp_path):
    state = StudioState(open_source(clip["video"]))
    two_keyframes(state)
    saved = state.save(tmp_path / "saved.json")
    with pytest.raises(UsageError, match="already exists"):
        state.save(saved)
    hand = tmp_path / "hand.json"
    hand.write_text(json.dumps({"keyframes": [
        {"at": 0, "position": [0, 0, 0]},
        {"at": FRAMES - 1, "position": [SHIFT, 0, 0], "euler_deg": [YAW_DEG, 0, 0]}]}))
    ours, theirs = (load_trajectory(p).resolve(FRAMES) for p in (saved, hand))
    assert torch.allclose(ours.rel_c2w, theirs.rel_c2w, atol=1e-9)
    results = [preview(clip["video"], p, tmp_path / f"{p.stem}.mp4") for p in (saved, hand)]
    assert results[0].coverage == results[1].coverage
    assert np.array_equal(read_video(tmp_path / "saved.mp4").frames, read_video(tmp_path / "hand.mp4").frames)
    source = state.source
    by_hand = Scene.make(source.video, source.small, source.depth_origin, load_trajectory(hand),
                         size=source.preview_size)
    for frame in (3, FRAMES - 1):
        state.scrub(frame)
        view = state.preview()
        warped, _ = by_hand.warp(range(frame, frame + 1), source.image(frame), by_hand.log_depth_max())
        assert np.array_equal(view.image, to_uint8(warped)[0])
        assert view.coverage == pytest.approx(results[1].coverage[frame], abs=1e-6)


@pytest.mark.parametrize("to,name", [("tcw", "path.tcw.txt"), ("json", "path.json"), ("npy", "path.npy")])
def test_export_equals_the_keyframes(clip, tmp_path, to, name):
    state = StudioState(open_source(clip["video"]))
    two_keyframes(state)
    path, lost = state.export(tmp_path / name, to)
    assert lost is None
    exported = load_trajectory(path, fmt="tcw" if to == "tcw" else None).resolve(FRAMES).rel_c2w.numpy()
    assert np.allclose(exported, state.path().trajectory.rel_c2w.numpy(), atol=1e-9)
    for key in state.keyframes:
        assert np.allclose(exported[key.frame], key.c2w, atol=1e-9)  # the source's first camera is the identity


class FakeSession:
    """The session interface the render button drives, made on the path it is given: 9 frames in chunk 0,
    then 12 (the last chunk cut to the path); each frame's pixels hold its position in the run."""

    def __init__(self, path=None):
        self.path, self.closed, self.done, self.frames = path, False, 0, FRAMES

    @property
    def finished(self) -> bool:
        return self.done >= self.frames

    def step(self) -> np.ndarray:
        count = min(9 if self.done == 0 else 12, self.frames - self.done)
        frames = np.arange(self.done, self.done + count, dtype=np.uint8)[:, None, None, None]
        self.done += count
        return np.broadcast_to(frames, (count, 4, 6, 3))

    def close(self) -> None:
        self.closed = True


def test_render_streams_the_path_through_a_session(clip):
    state = StudioState(open_source(clip["video"]))
    two_keyframes(state)
    chunks = list(state.render(FakeSession()))
    assert [frames for frames, _ in chunks] == [range(0, 9), range(9, FRAMES)]
    assert np.concatenate([pixels[:, 0, 0, 0] for _, pixels in chunks]).tolist() == list(range(FRAMES))


def test_the_render_button_renders_what_rerender_renders_along_the_saved_path(clip, tiny_weights, tmp_path,
                                                                             monkeypatch):
    """The real session the button makes (tiny weights, CPU) gives, bit for bit, the frames ``render()``
    writes for the saved path file."""
    from inspatio_cli.cli.studio import _session_factory
    from inspatio_cli import Rerenderer
    from inspatio_cli.render import stream

    written = []

    class RecordingWriter(stream.VideoWriter):
        def write(self, frames):
            written.append(to_uint8(frames))
            super().write(frames)

    state = StudioState(open_source(clip["video"]))
    two_keyframes(state)
    saved = state.save(tmp_path / "path.json")
    with _session_factory(clip["video"], None, tiny_weights, "a room", (H, W))(state.path_source()) as session:
        streamed = np.concatenate([pixels for _, pixels in state.render(session)])
    monkeypatch.setattr(stream, "VideoWriter", RecordingWriter)
    Rerenderer(tiny_weights).render(clip["video"], saved, tmp_path / "out.mp4", prompt="a room", size=(H, W))
    assert streamed.shape[0] == FRAMES and np.array_equal(streamed, np.concatenate(written))


def test_without_viser_one_line_naming_the_extra(clip, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "viser", None)
    code, out, err = run(capsys, "studio", clip["video"])
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and 'pip install "inspatio-cli[studio]"' in err


def test_page_handlers_drive_the_state(clip, tmp_path):
    """The viser layer in-process (no browser): the GUI handlers add, select, move and delete keyframes,
    scrub, save, export and render into the page; errors go to the status line."""
    pytest.importorskip("viser")
    from inspatio_cli.studio import serve

    sessions = []
    server = serve(StudioState(open_source(clip["video"])), port=0,
                   session_factory=lambda path: sessions.append(FakeSession(path)) or sessions[-1])
    state = server.state
    try:
        server._call(server._edit, state.delete_keyframe)
        assert "select a keyframe first" in server.status.content
        server._call(server._add_keyframe)
        server.slider.value = FRAMES - 1
        server._call(server._scrub)
        server._call(server._camera_moved, type("Camera", (), {"wxyz": np.array([1.0, 0, 0, 0]),
                                                               "position": np.array([SHIFT, 0, 0])})())
        assert state.camera[0, 3] == SHIFT
        server._call(server._add_keyframe)
        assert server.selected.options == ("0: frame 0", "1: frame 11") and server.selected.value == "1: frame 11"
        server.selected.value = "0: frame 0"
        server._call(server._select)
        assert server.slider.value == 0
        server.file.value = str(tmp_path / "mine.json")
        server._call(server._save)
        assert load_trajectory(tmp_path / "mine.json").resolve(FRAMES).rel_c2w[-1, 0, 3] == pytest.approx(SHIFT)
        server._call(server._save)
        assert "already exists" in server.status.content
        server.export_to.value = "tcw"
        server._call(server._export)
        assert (tmp_path / "mine.tcw.txt").is_file()
        server._render()
        assert sessions[0].closed and server.status.content == f"rendered frame {FRAMES} of {FRAMES}"
        assert sessions[0].path.meta["format"] == "keyframes"
        server._call(server._edit, state.delete_keyframe)
        assert len(state.keyframes) == 1 and server.selected.options == ("0: frame 11",)
    finally:
        server.stop()


def test_render_button_only_with_the_generator_weights(clip, tmp_path):
    from inspatio_cli.cli.studio import _session_factory
    from inspatio_cli.weights import catalog

    weights = tmp_path / "weights"
    assert _session_factory(clip["video"], None, weights) is None
    for name in ("generator", "vae"):
        (weights / catalog.entry(name).local).parent.mkdir(parents=True, exist_ok=True)
        (weights / catalog.entry(name).local).touch()
    assert callable(_session_factory(clip["video"], None, weights))
