"""The rerender's chunk loop: warped chunks -> latent condition -> one STAR chunk -> decoded frames.

:class:`ChunkStepper` is the loop, one generator chunk per :meth:`~ChunkStepper.step`; :func:`stream` (the
offline render: every camera known, frames written to a video) and the live render session
(:mod:`.session`: cameras given chunk by chunk) both step it, so a session stepped with a trajectory's
cameras makes the same frames as the render, bit for bit.

The soft z-buffer maximum ``Lmax`` (:mod:`inspatio_cli.warp`, v1 rule) depends on the cameras of the whole
clip: when the trajectory is known (a render, or a session given one) every chunk uses the planned clip-wide
value, even for a chunk whose cameras the caller changes; a live session (no trajectory) uses the running
maximum over the chunks stepped so far, as a chunk cannot see the cameras of later ones.

Memory does not grow with the video: between chunks only the generator's KV buffer and previous chunk,
the autoencoders' per-layer caches and at most two chunks of latents are kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..cameras import RenderCameras, Trajectory, render_cameras
from ..errors import UsageError
from ..generate.condition import ChunkFeeder
from ..generate.star import StarSampler
from ..geometry import se3
from ..meter import StageMeter
from ..models.dit import CausalWanDiT
from ..models.vae import StreamingAutoencoder
from ..progress import Reporter
from ..scene import Scene, padded_length
from ..scene_stream import ChunkWarper, WarpedChunk
from ..video import VideoWriter
from ..warp import coverage
from .condition_videos import ConditionWriter


@dataclass(frozen=True)
class StreamOptions:
    """How the loop runs and writes: the noise ``seed``, the output's H.264 ``crf``, whether to copy the
    source ``audio``, a ``save_condition`` folder for the condition videos (or ``None``), ``skip_bad_frames``
    (replace undecodable source frames by the previous good one), the warp/model ``device`` and whether to
    ``compile`` the generator."""

    seed: int
    crf: int
    audio: bool
    save_condition: str | Path | None
    skip_bad_frames: bool
    device: torch.device
    compile: bool


class ChunkStepper:
    """The chunk loop of one render, stepped one generator chunk at a time.

    ``scene``: the source, depth and planned trajectory (its time map and length decide which source frame
    each output frame shows and how many frames there are; it is padded here to whole chunks,
    :func:`~inspatio_cli.scene.padded_length`); ``generator``/``autoencoder``/``embedding`` ``(1, 512,
    text_dim)``: the models and the prompt; ``seed``, ``device``, ``compile``, ``skip_bad_frames``: as
    :class:`StreamOptions`; ``live``: the trajectory is a placeholder and the cameras come with each step
    (running ``Lmax``, see the module docstring); ``relative_to_source``: how cameras given to :meth:`step`
    compose with the source cameras (:func:`~inspatio_cli.cameras.render_cameras`); ``meter``: times warp,
    encode, generate and decode; ``on_chunk``: sees every warped chunk (padding included) before it is encoded.
    """

    def __init__(self, scene: Scene, generator: CausalWanDiT, autoencoder: StreamingAutoencoder,
                 embedding: torch.Tensor, *, seed: int, device: torch.device, compile: bool = False,
                 skip_bad_frames: bool = False, live: bool = False, relative_to_source: bool = False,
                 meter: StageMeter | None = None, on_chunk: Callable[[WarpedChunk], None] | None = None,
                 reporter: Reporter | None = None):
        self.total = scene.num_frames
        padded = scene.padded(padded_length(self.total))
        self.plan = [chunk.frames for chunk in padded.trajectory.chunks()]
        self.lmax = None if live else scene.log_depth_max(device)
        self.scene = dataclasses.replace(padded)  # its own object: a step that sets cameras copies them first
        self._own_cameras = False
        self.device, self.live, self.relative_to_source = device, live, relative_to_source
        self.meter = meter or StageMeter(device)
        self.index = 0  # the next chunk to generate
        self.warped = 0  # chunks warped so far (TAEHV encodes a chunk with the next chunk's first frames)
        self.stats: dict = {}
        self.warper = ChunkWarper(self.scene, device, skip_bad_frames, self.stats)
        self.feeder = ChunkFeeder(autoencoder, _Pull(self._warp_next), self.meter, on_chunk or (lambda chunk: None))
        self.sampler = StarSampler(generator, embedding, seed=seed, compile=compile, reporter=reporter)
        self.decoder = autoencoder.stream_decoder()

    @property
    def chunks(self) -> int:
        """Generator chunks of the whole run."""
        return len(self.plan)

    @property
    def lost_frames(self) -> int:
        """Source frames that did not decode so far (with ``skip_bad_frames``)."""
        return self.stats.get("lost_frames", 0)

    def chunk_frames(self, index: int) -> int:
        """Output frames chunk ``index`` makes: 9 for the first, 12 for the others, fewer for the last
        (its padding is not output); 0 past the end."""
        if index >= len(self.plan):
            return 0
        frames = self.plan[index]
        return max(0, min(frames.stop, self.total) - frames.start)

    def step(self, cameras: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """Generate the next chunk; returns its output frames ``(n, 3, H, W)`` float32 in [-1, 1] with
        ``n = chunk_frames(index)``. ``cameras``: the chunk's target cameras ``(n, 4, 4)`` c2w, OpenCV axes,
        relative to the source's first camera in depth units (as :attr:`Trajectory.rel_c2w`); ``None``: the
        planned trajectory's. Raises :class:`UsageError` past the last chunk, for cameras of the wrong
        shape or not rigid, and for new cameras of a chunk already warped (with TAEHV, the chunk after the
        one generated)."""
        if self.index >= len(self.plan):
            raise UsageError(f"the render has made all its {self.total} frames: its source is exhausted")
        if cameras is not None:
            self._set_cameras(self.index, cameras)
        elif self.live:
            raise UsageError("a live render session needs the cameras of every chunk")
        inputs = self.feeder.next()
        with self.meter("generate"):
            latents = self.sampler.step(inputs)
        with self.meter("decode"):
            frames = self.decoder.feed(latents)[0]
        keep = self.chunk_frames(self.index)
        self.index += 1
        return frames[:keep]

    def close(self) -> None:
        """Stop decoding the source."""
        self.warper.close()

    def _set_cameras(self, index: int, given: torch.Tensor | np.ndarray) -> None:
        """Use the c2w ``given`` for chunk ``index``'s output frames (the last one repeated over the padding)."""
        frames, real = self.plan[index], self.chunk_frames(index)
        c2w = torch.as_tensor(np.asarray(given.cpu() if isinstance(given, torch.Tensor) else given),
                              dtype=torch.float64)
        if tuple(c2w.shape) != (real, 4, 4):
            raise UsageError(f"chunk {index} needs cameras of shape ({real}, 4, 4), got {tuple(c2w.shape)}")
        if not (torch.isfinite(c2w).all() and se3.is_rigid(c2w.numpy(), atol=1e-3).all()):
            raise UsageError(f"chunk {index}: every camera must be a finite rigid c2w matrix")
        c2w = torch.cat([c2w, c2w[-1:].expand(len(frames) - real, 4, 4)])
        planned = self.scene.trajectory
        window = slice(frames.start, frames.stop)
        if torch.equal(c2w, planned.rel_c2w[window]):
            return
        if index < self.warped:
            raise UsageError(f"chunk {index} was warped already with the planned cameras (TAEHV encodes a chunk "
                             "together with the next one's first frames): its cameras cannot change now")
        chunk = Trajectory(c2w, planned.time_map[window], planned.num_source_frames,
                           None if planned.K is None else planned.K[window], planned.size)
        depth, (h, w) = self.scene.depth, self.scene.size
        new = render_cameras(chunk, depth.c2w, depth.K, relative_to_source=self.relative_to_source,
                             width=w, height=h)
        if not self._own_cameras:  # copied on the first change only: a render's cameras are never copied
            self.scene.cameras = RenderCameras(**{f.name: getattr(self.scene.cameras, f.name).clone()
                                                  for f in dataclasses.fields(RenderCameras)})
            self.scene.trajectory = dataclasses.replace(planned, rel_c2w=planned.rel_c2w.clone())
            self._own_cameras = True
        for field in dataclasses.fields(new):
            getattr(self.scene.cameras, field.name)[window] = getattr(new, field.name)
        self.scene.trajectory.rel_c2w[window] = c2w

    def _warp_next(self) -> WarpedChunk | None:
        """The next chunk warped (with the clip-wide or running ``Lmax``), or None after the last one."""
        if self.warped >= len(self.plan):
            return None
        if self.live and self.warped > self.index:
            raise UsageError("a live render session cannot look ahead: the TAEHV decoder needs the next chunk's "
                             "cameras, so use the Wan VAE (decoder='wan') or give the session a trajectory")
        frames = self.plan[self.warped]
        if self.live and not self.scene.rules.warp.per_frame_lmax:  # v1.5 rules: each frame's own Lmax
            peak = self.scene.chunk_log_depth_max(frames, self.device)
            self.lmax = peak if self.lmax is None else torch.maximum(self.lmax, peak)
        self.warped += 1
        return self.warper.warp(frames, self.lmax)


class _Pull:
    """An iterator over ``make()``'s results that ends when it returns None (the feeder's chunk source)."""

    def __init__(self, make: Callable[[], WarpedChunk | None]):
        self.make = make

    def __iter__(self) -> "_Pull":
        return self

    def __next__(self) -> WarpedChunk:
        chunk = self.make()
        if chunk is None:
            raise StopIteration
        return chunk


def stream(scene: Scene, output: Path, generator: CausalWanDiT, autoencoder: StreamingAutoencoder,
           embedding: torch.Tensor, options: StreamOptions, meter: StageMeter,
           reporter: Reporter) -> tuple[list[float], int]:
    """Generate ``scene`` chunk by chunk into the video ``output`` (and the condition videos) with the
    prompt ``embedding`` ``(1, 512, text_dim)``: the scene is padded to the generator's chunks
    (:func:`~inspatio_cli.scene.padded_length`) and the decoded video trimmed back to its frames.
    Returns the warp coverage of every output frame (kept as numbers: nothing grows per chunk) and the
    number of source frames that did not decode (``skip_bad_frames``). Stages timed on ``meter``: warp,
    encode, generate, decode, write; progress: a ``rerender`` stage advancing per chunk."""
    total = scene.num_frames
    rate = scene.video.rate
    coverages: list[float] = []
    with contextlib.ExitStack() as stack:  # the condition videos are renamed last, once the video is there
        conditions = (stack.enter_context(ConditionWriter(options.save_condition, rate))
                      if options.save_condition is not None else None)
        writer = stack.enter_context(VideoWriter(output, rate, crf=options.crf,
                                                 audio_from=scene.video.path if options.audio else None,
                                                 warn=reporter.warn))

        def seen(chunk: WarpedChunk) -> None:
            real = max(0, min(chunk.frames.stop, total) - chunk.frames.start)  # the rest pads the last chunk
            coverages.extend(coverage(chunk.mask[:real]).tolist())
            if conditions is not None and real:
                conditions.write(chunk.warped[:real], chunk.mask[:real])

        stepper = ChunkStepper(scene, generator, autoencoder, embedding, seed=options.seed, device=options.device,
                               compile=options.compile, skip_bad_frames=options.skip_bad_frames, meter=meter,
                               on_chunk=seen, reporter=reporter)  # before tracking: the padded cameras are the scene's
        stack.callback(stepper.close)
        stack.enter_context(meter.tracking())
        progress = stack.enter_context(reporter.stage("rerender", total=total))
        for index in range(stepper.chunks):
            frames = stepper.step()
            with meter("write"):
                writer.write(frames)
            progress.advance(len(frames), chunk=index + 1, chunks=stepper.chunks)
            progress.status(f"chunk {index + 1}/{stepper.chunks}")
            del frames  # nothing of this chunk stays alive while the next one is made
        if conditions is not None:
            conditions.finish()
    return coverages, stepper.lost_frames
