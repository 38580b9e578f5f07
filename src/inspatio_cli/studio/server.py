"""The studio's page: a thin viser layer binding GUI handles and the 3D view to a :class:`.StudioState`.

The only module that imports viser (the optional ``studio`` extra). The page shows the point cloud, the
source cameras (grey frustums), the keyframes (orange) and the path (a line); the side panel has the warp
preview of the current view with its coverage, the timeline (slider, play), the keyframe buttons, speed
warnings, save/export and, when a session can be made (weights found), the render button. Every GUI event
calls the state; the preview is recomputed on a worker thread for the latest camera only, so a moving
view never queues warps behind each other. No network beyond the local socket, no login.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..cameras import TrajectorySource
from ..choices import EXPORTS
from ..errors import InspatioError, UsageError
from ..geometry import se3
from ..progress import Reporter
from .state import Session, StudioState

STUDIO_EXTRA = 'pip install "inspatio-cli[studio]"'
"""The command that installs the studio's optional dependency (viser)."""
SOURCE_FRUSTUMS = 24
"""Source cameras drawn as frustums at most (evenly spaced along the video)."""
EXPORT_SUFFIXES = {"tcw": ".tcw.txt", "c2w": ".c2w.txt", "npy": ".npy", "json": ".frames.json",
                   "nerfstudio": ".camera_path.json"}
"""The export file's name after the keyframe file's stem, per format (each detected back by ``-t``)."""
KEYFRAME_COLOUR = (255, 140, 0)
SOURCE_COLOUR = (150, 150, 150)


def load_viser():
    """The ``viser`` module, or :class:`UsageError` naming the extra that installs it."""
    try:
        import viser
    except ImportError:
        raise UsageError("inspatio studio needs the optional 'studio' extra (viser)", hint=STUDIO_EXTRA) from None
    return viser


def _pose(c2w: np.ndarray) -> dict:
    """viser's ``wxyz`` and ``position`` of a camera-to-world matrix (viser cameras use OpenCV axes too)."""
    return {"wxyz": se3.matrix_to_quaternion(c2w[None, :3, :3])[0], "position": c2w[:3, 3].copy()}


class StudioServer:
    """The page for ``state``, served at ``http://host:port`` until :meth:`stop`. ``session_factory``
    makes the render session on the path it is given (None: no render button, e.g. without weights)."""

    def __init__(self, state: StudioState, *, host: str = "127.0.0.1", port: int = 8080,
                 session_factory: Callable[[TrajectorySource], Session] | None = None,
                 reporter: Reporter | None = None):
        viser = load_viser()
        self.state, self.session_factory = state, session_factory
        self.reporter = reporter or Reporter("silent")
        with self._viser_output():
            self.server = viser.ViserServer(host=host, port=port, verbose=False)
        self.host, self.port = host, self.server.get_port()
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._playing = threading.Event()
        self._drawn: list = []
        self._scale = float(np.median(state.source.small.depth[0].float().numpy()))
        self._add_scene()
        self._add_panel()
        self._keyframes_changed(None)
        self._worker = threading.Thread(target=self._refresh_loop, name="studio-preview", daemon=True)
        self._worker.start()
        self._refresh_now()
        self.server.on_client_connect(self._on_connect)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def wait(self) -> None:
        """Block until :meth:`stop` (or until a signal interrupts the process)."""
        while not self._stopping.wait(0.5):
            continue

    def stop(self) -> None:
        """Stop playing, the preview worker and the server."""
        self._playing.clear()
        self._stopping.set()
        self._wake.set()
        self._worker.join(timeout=5)
        with self._viser_output():
            self.server.stop()

    @contextlib.contextmanager
    def _viser_output(self):
        """Where viser's own prints (its banner, "server stopped") go: stderr, as every log (stdout is for
        data), or nowhere for a quiet reporter."""
        if self.reporter.mode in ("human", "json"):
            with contextlib.redirect_stdout(sys.stderr):
                yield
            return
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            yield

    def _add_scene(self) -> None:
        source, scene = self.state.source, self.server.scene
        points, colours = source.point_cloud()
        scene.add_point_cloud("/cloud", points, colours, point_size=self._scale / 150, point_shape="square")
        fov, aspect = source.vertical_fov(), source.preview_size[1] / source.preview_size[0]
        c2w = source.source_c2w
        for i in np.unique(np.linspace(0, len(c2w) - 1, min(SOURCE_FRUSTUMS, len(c2w))).round().astype(int)):
            scene.add_camera_frustum(f"/source/{i}", fov, aspect, scale=self._scale / 25, color=SOURCE_COLOUR,
                                     thickness=self._scale / 400, **_pose(c2w[i]))
        start = c2w[0]
        self.server.initial_camera.position = start[:3, 3] - start[:3, 2] * self._scale * 0.5
        self.server.initial_camera.look_at = start[:3, 3] + start[:3, 2] * self._scale
        self.server.initial_camera.up = -start[:3, 1]

    def _add_panel(self) -> None:
        gui, state = self.server.gui, self.state
        source = state.source
        gui.add_markdown(f"**{Path(source.video.path).name}**: {source.video.frame_count} frame(s), depth from "
                         f"{source.depth_origin}")
        self.preview = gui.add_image(np.zeros((*source.preview_size, 3), np.uint8), label="warped view",
                                     format="png")
        self.coverage = gui.add_markdown("coverage: -")
        self.slider = gui.add_slider("frame", min=0, max=max(1, state.num_frames - 1), step=1,
                                     initial_value=state.frame)
        self.slider.on_update(lambda _: self._call(self._scrub))
        self.play = gui.add_button("play")
        self.play.on_click(lambda _: self._call(self._toggle_play))
        gui.add_button("add keyframe").on_click(lambda _: self._call(self._add_keyframe))
        self.selected = gui.add_dropdown("keyframe", options=("none",))
        self.selected.on_update(lambda _: self._call(self._select))
        gui.add_button("move to current view").on_click(lambda _: self._call(self._edit, state.move_keyframe))
        gui.add_button("delete keyframe").on_click(lambda _: self._call(self._edit, state.delete_keyframe))
        self.warnings = gui.add_markdown("")
        self.file = gui.add_text("file", initial_value=str(Path(source.video.path).with_suffix(".path.json")))
        self.overwrite = gui.add_checkbox("overwrite", initial_value=False)
        gui.add_button("save keyframes").on_click(lambda _: self._call(self._save))
        self.export_to = gui.add_dropdown("export as", options=EXPORTS, initial_value="tcw")
        gui.add_button("export").on_click(lambda _: self._call(self._export))
        if self.session_factory is not None:
            gui.add_button("render").on_click(lambda _: self._call(self._start_render))
            self.rendered = gui.add_image(np.zeros((*source.preview_size, 3), np.uint8), label="render")
        self.status = gui.add_markdown("")

    def _on_connect(self, client) -> None:
        client.camera.on_update(lambda camera: self._call(self._camera_moved, camera))

    def _call(self, action: Callable, *args) -> None:
        """Run a GUI action under the lock; a user error is shown in the status line, not raised."""
        try:
            with self._lock:
                action(*args)
        except InspatioError as exc:
            self.status.content = f"**error**: {exc.one_line()}"

    def _camera_moved(self, camera) -> None:
        self.state.set_camera(se3.make_pose(se3.quaternion_to_matrix(camera.wxyz), camera.position))
        self._wake.set()

    def _scrub(self) -> None:
        self.state.scrub(int(self.slider.value))
        if self.state.has_path:
            self._show_camera()
        self._wake.set()

    def _show_camera(self) -> None:
        """Put every viewer at the current camera."""
        pose = _pose(self.state.camera)
        for client in self.server.get_clients().values():
            with client.atomic():
                client.camera.wxyz, client.camera.position = pose["wxyz"], pose["position"]

    def _toggle_play(self) -> None:
        if self._playing.is_set():
            self._playing.clear()
            return
        if not self.state.has_path:
            raise UsageError("add 2 keyframes to play a path")
        self._playing.set()
        self.play.label = "stop"
        threading.Thread(target=self._play, name="studio-play", daemon=True).start()

    def _play(self) -> None:
        """Step the timeline at the video's frame rate until its end or until stopped."""
        step = 1.0 / max(1.0, self.state.source.video.fps)
        start = 0 if self.state.frame >= self.state.num_frames - 1 else self.state.frame
        for frame in range(start, self.state.num_frames):
            if not self._playing.is_set():
                break
            self.slider.value = frame
            self._call(self._scrub)
            time.sleep(step)
        self._playing.clear()
        self.play.label = "play"

    def _add_keyframe(self) -> None:
        index = self.state.add_keyframe()
        self._keyframes_changed(index)

    def _edit(self, change: Callable[[int], None]) -> None:
        """Apply ``change`` (move or delete) to the selected keyframe."""
        if self.selected.value == "none":
            raise UsageError("select a keyframe first")
        change(self.selected.options.index(self.selected.value))
        self._keyframes_changed(None)

    def _select(self) -> None:
        if self.selected.value != "none":
            key = self.state.keyframes[self.selected.options.index(self.selected.value)]
            self.slider.value = key.frame

    def _keyframes_changed(self, selected: int | None) -> None:
        """Redraw the keyframe frustums and the path, relist the keyframes, update the warnings."""
        state, scene = self.state, self.server.scene
        names = [f"{i}: frame {k.frame}" for i, k in enumerate(state.keyframes)]
        self.selected.options = tuple(names) or ("none",)
        self.selected.value = names[selected] if selected is not None and names else self.selected.options[0]
        for handle in self._drawn:
            handle.remove()
        fov, aspect = state.source.vertical_fov(), state.source.preview_size[1] / state.source.preview_size[0]
        self._drawn = [scene.add_camera_frustum(f"/keyframes/{i}", fov, aspect, scale=self._scale / 20,
                                                color=KEYFRAME_COLOUR, thickness=self._scale / 300, **_pose(key.c2w))
                       for i, key in enumerate(state.keyframes)]
        if state.has_path:
            centres = state.path_cameras()[:, :3, 3].numpy()
            self._drawn.append(scene.add_line_segments("/path", np.stack([centres[:-1], centres[1:]], 1),
                                                       KEYFRAME_COLOUR, thickness=self._scale / 300))
        self.warnings.content = "\n\n".join(f"**warning**: {w}" for w in state.warnings())
        self._wake.set()

    def _save(self) -> None:
        path = self.state.save(self.file.value, overwrite=self.overwrite.value)
        self.status.content = f"saved {path} (render it with -t {path})"

    def _export(self) -> None:
        """Export next to the keyframe file: ``room.path.json`` -> ``room.path.tcw.txt``, ``room.path.npy``..."""
        to = self.export_to.value
        target = Path(self.file.value).with_suffix("")
        path, lost = self.state.export(target.with_name(target.name + EXPORT_SUFFIXES[to]), to,
                                       overwrite=self.overwrite.value)
        self.status.content = f"exported {path}" + (f" ({lost})" if lost else "")

    def _start_render(self) -> None:
        self.state.path_source()
        threading.Thread(target=self._render, name="studio-render", daemon=True).start()

    def _render(self) -> None:
        """Stream the path's render through a new session into the render image, frame by frame."""
        try:
            session = self.session_factory(self.state.path_source())
            try:
                for frames, pixels in self.state.render(session):
                    for frame, image in zip(frames, pixels):
                        self.rendered.image = image
                        self.status.content = f"rendered frame {frame + 1} of {self.state.num_frames}"
            finally:
                session.close()
        except InspatioError as exc:
            self.status.content = f"**error**: {exc.one_line()}"

    def _refresh_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait()
            self._wake.clear()
            if not self._stopping.is_set():
                self._refresh_now()

    def _refresh_now(self) -> None:
        """Warp the current view and show it with its coverage."""
        with self._lock:
            view = self.state.preview()
        self.preview.image = view.image
        self.coverage.content = (f"coverage **{view.coverage:.1%}** at frame {view.frame} "
                                 f"(source frame {view.source_frame})")


def serve(state: StudioState, *, host: str = "127.0.0.1", port: int = 8080,
          session_factory: Callable[[TrajectorySource], Session] | None = None,
          reporter: Reporter | None = None) -> StudioServer:
    """Start the studio page for ``state`` on ``host:port`` (``port`` 0: a free one); returns the running
    :class:`StudioServer` (its ``url``; call ``stop()`` to end it). Raises :class:`UsageError` naming the
    ``studio`` extra when viser is not installed."""
    return StudioServer(state, host=host, port=port, session_factory=session_factory, reporter=reporter)
