"""The studio's state, in plain Python (no viser): keyframes, the timeline, the current camera, the warp
preview, speed warnings, saving and exporting, and the render through a session.

Cameras are float64 (4, 4) camera-to-world matrices in the depth's world (OpenCV axes), the frame in which
the point cloud and the source cameras are shown. A keyframe file stores each pose as the render path reads
it back: the render places output camera ``rel`` at ``C0^-1 @ rel`` (``C0`` the first source camera,
:mod:`inspatio_cli.cameras.render`), so a view ``W`` is stored as ``rel = C0 @ W`` and renders exactly at
``W``. The path between keyframes is the keyframe format's own interpolation (cubic), resolved by the same
code as ``-t saved.json`` everywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np
import torch

from ..cameras import CameraOptions, Trajectory, TrajectorySource
from ..cameras.formats.keyframes import parse_keyframes
from ..cameras.lint import speed_warning
from ..cameras.loader import export_losses, write_trajectory
from ..errors import UsageError
from ..files import atomic_output, check_outputs
from ..geometry import se3
from ..scene import Scene, source_camera
from ..warp import coverage
from ..video import to_uint8
from .source import StudioSource

STUDIO_PATH = "studio keyframes"
"""The name a path made in the studio goes by in messages until it is saved."""


class Session(Protocol):
    """The render the studio drives: a :class:`~inspatio_cli.render.RenderSession` made on the studio's
    path (``Rerenderer.session(video, path)``); ``step()`` renders its next chunk along that path and
    returns uint8 frames (n, H, W, 3) until ``finished``."""

    @property
    def finished(self) -> bool: ...

    def step(self) -> np.ndarray: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Keyframe:
    """A camera ``c2w`` (float64 (4, 4), the depth's world) at output frame ``frame``."""

    frame: int
    c2w: np.ndarray


@dataclass(frozen=True)
class WarpView:
    """The warp preview: ``image`` uint8 (H', W', 3) (holes black), ``coverage`` (fraction of known pixels),
    the output ``frame`` and the ``source_frame`` it warps."""

    image: np.ndarray
    coverage: float
    frame: int
    source_frame: int


class StudioState:
    """Keyframes, the timeline position ``frame`` and the current ``camera`` of one studio source."""

    def __init__(self, source: StudioSource):
        self.source = source
        self.keyframes: list[Keyframe] = []
        self.frame = 0
        self.camera = source.source_c2w[0].copy()
        self._path: Scene | None = None

    @property
    def num_frames(self) -> int:
        """Frames of the timeline (the output frames of a render of the path)."""
        return self.source.output_frames

    @property
    def has_path(self) -> bool:
        """Whether there are keyframes enough (2) for a path."""
        return len(self.keyframes) >= 2

    def set_camera(self, c2w: np.ndarray) -> None:
        """The current camera (the viewer's), float (4, 4) camera-to-world."""
        c2w = np.asarray(c2w, np.float64)
        if c2w.shape != (4, 4) or not np.isfinite(c2w).all():
            raise UsageError(f"a camera is a finite 4x4 camera-to-world matrix, got shape {c2w.shape}")
        self.camera = c2w

    def scrub(self, frame: int) -> None:
        """Move the timeline to ``frame``; on a path, the current camera becomes the path's camera there."""
        if not 0 <= frame < self.num_frames:
            raise UsageError(f"frame {frame} is outside the timeline (0..{self.num_frames - 1})")
        self.frame = int(frame)
        if self.has_path:
            self.camera = self.path_cameras()[self.frame].double().numpy()

    def add_keyframe(self) -> int:
        """A keyframe at the current frame with the current camera (replacing the pose of one already
        there); returns its index in :attr:`keyframes` (sorted by frame)."""
        kept = [k for k in self.keyframes if k.frame != self.frame]
        self._set_keyframes(kept + [Keyframe(self.frame, self.camera.copy())])
        return next(i for i, k in enumerate(self.keyframes) if k.frame == self.frame)

    def move_keyframe(self, index: int) -> None:
        """Set keyframe ``index`` to the current camera (its frame stays)."""
        keys = list(self.keyframes)
        keys[self._check_index(index)] = Keyframe(keys[index].frame, self.camera.copy())
        self._set_keyframes(keys)

    def delete_keyframe(self, index: int) -> None:
        """Remove keyframe ``index``."""
        keys = list(self.keyframes)
        del keys[self._check_index(index)]
        self._set_keyframes(keys)

    def _check_index(self, index: int) -> int:
        if not 0 <= index < len(self.keyframes):
            raise UsageError(f"no keyframe {index} (there are {len(self.keyframes)})")
        return index

    def _set_keyframes(self, keys: list[Keyframe]) -> None:
        self.keyframes = sorted(keys, key=lambda k: k.frame)
        self._path = None

    def document(self) -> dict:
        """The keyframes as a keyframe JSON object (:mod:`inspatio_cli.cameras.formats.keyframes`): pose
        keyframes at output frames, cubic interpolation, poses as the render path reads them back (see the
        module doc)."""
        C0 = self.source.source_c2w[0]
        keys = []
        for key in self.keyframes:
            rel = C0 @ key.c2w
            quaternion = se3.matrix_to_quaternion(rel[None, :3, :3])[0]
            keys.append({"at": key.frame, "position": [float(v) for v in rel[:3, 3]],
                         "quaternion": [float(v) for v in quaternion]})
        return {"format": "inspatio-keyframes", "version": 1, "units": "frames", "interpolation": "cubic",
                "description": f"made with inspatio studio on {Path(self.source.video.path).name}", "keyframes": keys}

    def path_source(self) -> TrajectorySource:
        """The keyframes parsed as a trajectory file would be; :class:`UsageError` with fewer than 2."""
        if not self.has_path:
            raise UsageError(f"a path needs at least 2 keyframes, there are {len(self.keyframes)}")
        meta = {"source": STUDIO_PATH, "preset": None, "format": "keyframes", "convention": "opencv",
                "direction": "c2w", "anchor": "world", "scale": 1.0}
        return parse_keyframes(self.document(), STUDIO_PATH, direction="c2w", convention="opencv", anchor="world",
                               scale=1.0, rotation_only=False, meta=meta)

    def path(self) -> Scene:
        """The path as a scene at the preview size (resolved once per set of keyframes)."""
        if self._path is None:
            self._path = self._scene(self.path_source())
        return self._path

    def path_cameras(self) -> torch.Tensor:
        """The path's camera-to-world per output frame, float32 (N, 4, 4), as the render places them."""
        return self.path().cameras.target_c2w

    def warnings(self) -> list[str]:
        """Speed warnings of the path, as ``trajectory check``, preview and rerender give them."""
        if not self.has_path:
            return []
        warning = speed_warning(self.path().trajectory)
        return [warning] if warning else []

    def preview(self) -> WarpView:
        """The current camera's view warped from the source frame the timeline shows: on the path (the
        camera is the path's at this frame), frame ``frame`` of the path's preview (clip-wide soft
        z-buffer, as ``inspatio preview``); elsewhere, a one-frame scene of the current camera."""
        on_path = self.has_path and np.allclose(self.camera, self.path_cameras()[self.frame].double().numpy(),
                                                atol=1e-4)
        if on_path:
            scene, frame = self.path(), self.frame
        else:
            scene, frame = self._scene(self._one_frame()), 0
        source_frame = int(scene.cameras.source_index[frame])
        warped, mask = scene.warp(range(frame, frame + 1), self.source.image(source_frame), scene.log_depth_max())
        return WarpView(to_uint8(warped)[0], float(coverage(mask)[0]), self.frame, source_frame)

    def _one_frame(self) -> Trajectory:
        """A trajectory of one output frame: the current camera, showing the timeline's source frame."""
        rel = self.source.source_c2w[0] @ self.camera
        shown = min(self.frame, self.source.video.frame_count - 1)
        return Trajectory(torch.from_numpy(rel)[None], torch.tensor([shown]), self.source.video.frame_count,
                          size=self.source.preview_size, meta={"format": "studio view"})

    def _scene(self, trajectory: TrajectorySource | Trajectory) -> Scene:
        """``trajectory`` on this source at the preview size."""
        src = self.source
        camera = CameraOptions()
        if not isinstance(trajectory, Trajectory):
            camera = source_camera(src.video, trajectory, camera)
        return Scene.make(src.video, src.small, src.depth_origin, trajectory, camera=camera, fit=src.fit,
                          size=src.preview_size)

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the keyframes as keyframe JSON to ``path`` (atomically; an existing file only with
        ``overwrite``): ``-t path`` then renders this path with every command."""
        self.path_source()
        path = Path(path)
        check_outputs([(path, "the keyframe file")], {Path(self.source.video.path): "the source video"},
                      overwrite=overwrite)
        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps(self.document(), indent=1) + "\n", encoding="utf-8")
        return path

    def export(self, path: str | Path, to: str, *, overwrite: bool = False) -> tuple[Path, str | None]:
        """Write the path's per-frame cameras to ``path`` as ``to`` (an export format of ``trajectory
        convert``: :func:`~inspatio_cli.cameras.loader.write_trajectory`); returns the file and what the
        format could not keep, if anything."""
        path = Path(path)
        trajectory = self.path().trajectory
        check_outputs([(path, f"the {to} export")], {Path(self.source.video.path): "the source video"},
                      overwrite=overwrite)
        write_trajectory(trajectory, path, to, fallback_K=self.source.small.K[0].double().numpy(),
                         fps=self.source.video.fps)
        return path, export_losses(trajectory, to, path)

    def render(self, session: Session) -> Iterator[tuple[range, np.ndarray]]:
        """Render through ``session``, made on :meth:`path_source` (so it renders exactly what ``rerender -t``
        on the saved path renders) chunk by chunk: yields the output frames of each chunk and their uint8
        (n, H, W, 3) pixels."""
        done = 0
        while not session.finished:
            frames = np.asarray(session.step())
            yield range(done, done + len(frames)), frames
            done += len(frames)
