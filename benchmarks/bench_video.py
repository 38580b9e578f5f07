"""Video I/O around the models: H.264 encode (the output writer) and decode + fit (the source frames), each
alone and overlapped with the work a chunk loop does in between, foreground against background thread.
Prints figures; asserts nothing.

* ``encode``: :class:`VideoWriter` at the canvas size, frames/s of x264 alone (``preset medium``, CRF 18),
  then a loop of chunks (``--chunk`` frames written, then ``--work-ms`` of other work per chunk) with the
  encoder in the foreground and on its background thread (the default).
* ``decode``: :func:`iter_frames` + :class:`Fit` (``stretch`` onto the canvas) of a source video, frames/s
  alone, then the same chunk loop with decoding in the foreground and through :class:`Prefetch`.

``--work sleep`` stands for a GPU doing the chunk's work (the host thread waits, its cores are free);
``--work cpu`` runs matrix products on the CPU instead (the cores are shared with the encoder, as in a
CPU-only run). The source is ``--source`` or a synthetic clip of ``--source-size`` written first.

    python benchmarks/bench_video.py                                 # 96 frames, 1080p synthetic source
    python benchmarks/bench_video.py --work cpu --source ../shared/media/coffee_pour_1920x900_25fps_audio.mp4
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from inspatio_cli.choices import MODEL_SIZE
from inspatio_cli.video import Fit, Prefetch, VideoWriter, iter_frames, probe, write_video

PREFETCH_AHEAD = 12


def work(kind: str, ms: float, matrix: torch.Tensor) -> None:
    """About ``ms`` milliseconds of the chunk loop's other work: waiting (``sleep``) or CPU products."""
    if kind == "sleep":
        time.sleep(ms / 1000)
        return
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        matrix @ matrix


def synthetic_source(path: Path, frames: int, size: tuple[int, int]) -> Path:
    """Moving gradients with a little noise (x264 has some detail to code), ``frames`` frames at 25 fps."""
    h, w = size
    g = torch.Generator().manual_seed(0)
    y, x = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    batches = []
    for i in range(frames):
        base = torch.stack([torch.sin(3 * x + 0.2 * i), torch.cos(2 * y - 0.1 * i), x * y])
        batches.append((base * 0.9 + 0.04 * torch.rand(3, h, w, generator=g) - 0.02).clamp(-1, 1)[None])
    write_video(path, batches, 25)
    return path


def bench_encode(frames: torch.Tensor, chunk: int, kind: str, ms: float, folder: Path,
                 matrix: torch.Tensor) -> None:
    n = frames.shape[0]
    start = time.perf_counter()
    with VideoWriter(folder / "alone.mp4", 25, background=False) as writer:
        writer.write(frames)
    alone = time.perf_counter() - start
    print(f"encode {n} frames {frames.shape[2]}x{frames.shape[3]}: x264 alone {n / alone:6.1f} frames/s "
          f"({alone / n * 1000:5.1f} ms/frame)")
    loop = {}
    for background in (False, True):
        start = time.perf_counter()
        with VideoWriter(folder / f"loop{background}.mp4", 25, background=background) as writer:
            for i in range(0, n, chunk):
                writer.write(frames[i:i + chunk])
                work(kind, ms, matrix)
        loop[background] = time.perf_counter() - start
    busy = ms / 1000 * -(-n // chunk)
    print(f"  chunk loop ({chunk} frames + {ms:g} ms {kind} per chunk, {busy:.2f} s of work): foreground "
          f"{loop[False]:6.2f} s, background thread {loop[True]:6.2f} s ({loop[False] / loop[True]:4.2f}x)")


def bench_decode(source: Path, frames: int, chunk: int, kind: str, ms: float, matrix: torch.Tensor) -> None:
    info = probe(source)
    fit = Fit.make((info.height, info.width), MODEL_SIZE, "stretch")
    frames = min(frames, info.frame_count)

    def fitted():
        for _, raw in iter_frames(source, max_frames=frames):
            yield fit.frames(raw[None])[0]

    start = time.perf_counter()
    for _ in fitted():
        pass
    alone = time.perf_counter() - start
    print(f"decode + fit {frames} frames {info.width}x{info.height} -> {MODEL_SIZE[0]}x{MODEL_SIZE[1]}: alone "
          f"{frames / alone:6.1f} frames/s ({alone / frames * 1000:5.1f} ms/frame)")
    loop = {}
    for prefetch in (False, True):
        start = time.perf_counter()
        source_frames = Prefetch(fitted, PREFETCH_AHEAD) if prefetch else fitted()
        for i, _ in enumerate(source_frames, 1):
            if i % chunk == 0:
                work(kind, ms, matrix)
        loop[prefetch] = time.perf_counter() - start
    print(f"  chunk loop ({chunk} frames + {ms:g} ms {kind} per chunk): foreground {loop[False]:6.2f} s, "
          f"prefetch thread {loop[True]:6.2f} s ({loop[False] / loop[True]:4.2f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=96, help="at least ~60: x264 holds 40 frames back")
    ap.add_argument("--chunk", type=int, default=12, help="frames per chunk (a generator chunk is 12)")
    ap.add_argument("--work", choices=("sleep", "cpu"), default="sleep")
    ap.add_argument("--work-ms", type=float, default=300.0, help="other work per chunk, milliseconds")
    ap.add_argument("--source", type=Path, help="a source video (default: a synthetic clip)")
    ap.add_argument("--source-size", type=int, nargs=2, default=[1080, 1920], metavar=("H", "W"))
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    matrix = torch.randn(512, 512)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = args.source or synthetic_source(folder / "source.mp4", args.frames, tuple(args.source_size))
        info = probe(source)
        fit = Fit.make((info.height, info.width), MODEL_SIZE, "stretch")
        frames = torch.stack([fit.frames(raw[None])[0] for _, raw in iter_frames(source, max_frames=args.frames)])
        print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s), source {source.name}")
        bench_encode(frames, args.chunk, args.work, args.work_ms, folder, matrix)
        bench_decode(source, args.frames, args.chunk, args.work, args.work_ms, matrix)


if __name__ == "__main__":
    main()
