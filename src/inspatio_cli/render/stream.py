"""The rerender's chunk loop: warped chunks -> latent condition -> one STAR chunk -> decoded frames.

Memory does not grow with the video: between chunks only the generator's KV buffer and previous chunk,
the autoencoders' per-layer caches and at most two chunks of latents are kept.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch

from ..generate.condition import ChunkFeeder
from ..generate.star import StarSampler
from ..meter import StageMeter
from ..models.dit import CausalWanDiT
from ..models.vae import StreamingAutoencoder
from ..progress import Reporter
from ..scene import Scene, padded_length
from ..scene_stream import WarpedChunk, warped_chunks
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
    padded = scene.padded(padded_length(total))
    plan = padded.trajectory.chunks()
    rate = scene.video.rate
    coverages: list[float] = []
    decoding: dict = {}
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

        stack.enter_context(meter.tracking())
        progress = stack.enter_context(reporter.stage("rerender", total=total))
        chunks = warped_chunks(padded, [c.frames for c in plan], device=options.device,
                               skip_bad_frames=options.skip_bad_frames, stats=decoding, reporter=Reporter("silent"))
        stack.callback(chunks.close)
        feeder = ChunkFeeder(autoencoder, chunks, meter, seen)
        sampler = StarSampler(generator, embedding, seed=options.seed, compile=options.compile, reporter=reporter)
        decoder = autoencoder.stream_decoder()
        for index in range(len(plan)):
            inputs = feeder.next()
            with meter("generate"):
                latents = sampler.step(inputs)
            with meter("decode"):
                frames = decoder.feed(latents)[0]
            keep = min(frames.shape[0], total - writer.frames_written)
            with meter("write"):
                writer.write(frames[:keep])
            del inputs, latents, frames  # nothing of this chunk stays alive while the next one is made
            progress.advance(keep, chunk=index + 1, chunks=len(plan))
            progress.status(f"chunk {index + 1}/{len(plan)}")
        if conditions is not None:
            conditions.finish()
    return coverages, decoding["lost_frames"]
