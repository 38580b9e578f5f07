"""End-to-end speed and memory of ``Rerenderer.render`` with random weights: frames/s, seconds and peak
memory per stage (warp, encode, generate, decode, write), for each autoencoder. Prints figures; asserts
nothing.

The input is the bundled example (``examples/room.mp4`` with its exact sidecar depth) looped to
``--frames`` frames with the time option ``--extend loop`` (so a 10-second clip at 24 fps is 240 frames).
Models are random and injected (no weight files, no text encoder: a random prompt embedding), so the
figures cover the pipeline from decoding to the written mp4.

    python benchmarks/bench_rerender.py                            # tiny models on the CPU, 64x112
    python benchmarks/bench_rerender.py --real --frames 240        # the 1.3B configuration at 480x832 (GPU)

Steady state: a short warm-up render (``--warmup-frames``, 21 = two chunks, both chunk shapes) runs first,
untimed, so one-time costs (``--compile``, kernel selection, allocator growth, RoPE tables) are not in the
figures; the timed render's "streaming stages" figure is the steady-state rate.

Peak memory: on CUDA the allocator's peak while each stage ran (models included); on the CPU with
``--track-memory`` the peak bytes of live tensors (slower), else only the process's peak RSS.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import torch

from inspatio_cli.cameras import CameraOptions, TimeControl
from inspatio_cli.models.dit import DiTConfig, random_generator
from inspatio_cli.models.tae import TAEHV, TAEConfig
from inspatio_cli.models.vae import VAEConfig, WanVAE
from inspatio_cli.render.models import Models
from inspatio_cli.render.needs import TEXT_WEIGHTS
from inspatio_cli.render.plan import TEXT_DTYPE, RenderPlan
from inspatio_cli.render.rerender import Rerenderer

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "room.mp4"
TINY = {"dit": DiTConfig(dim=128, ffn_dim=256, freq_dim=64, num_heads=1, num_layers=2, text_dim=32),
        "vae": VAEConfig(dim=8), "tae": TAEConfig(enc_width=8, dec_widths=(16, 12, 8, 8))}
REAL = {"dit": DiTConfig(), "vae": VAEConfig(), "tae": TAEConfig()}
STAGES = ("scene", "load", "depth range", "warp", "encode", "generate", "decode", "write")
STREAM = ("warp", "encode", "generate", "decode", "write")


class RandomPrompt(Rerenderer):
    """A :class:`Rerenderer` whose prompt embedding is random (no text encoder files are needed)."""

    def plan(self, video, trajectory, **options) -> RenderPlan:
        plan = super().plan(video, trajectory, **options)
        return dataclasses.replace(plan, weights=tuple(n for n in plan.weights if n not in TEXT_WEIGHTS))

    def embed_prompts(self, prompts):
        dim = self.models.generator.cfg.text_dim
        return [torch.randn(1, self.models.generator.cfg.text_len, dim, dtype=TEXT_DTYPE) * 0.1 for _ in prompts]


def models_for(configs: dict, decoder: str, device: torch.device, dtype: torch.dtype) -> Models:
    """Random models of ``configs`` on ``device`` (TAEHV in fp16 on CUDA, as the pipeline loads it)."""
    generator = random_generator(configs["dit"], device=device, dtype=dtype)
    if decoder == "wan":
        autoencoder = WanVAE(configs["vae"]).to(device=device, dtype=dtype)
    else:
        tae_dtype = torch.float16 if device.type == "cuda" and dtype != torch.float32 else dtype
        autoencoder = TAEHV(configs["tae"]).to(device=device, dtype=tae_dtype)
    return Models(generator=generator, autoencoder=autoencoder.eval().requires_grad_(False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", action="store_true", help="the released 1.3B / Wan VAE / TAEHV sizes (for a GPU)")
    ap.add_argument("--decoder", choices=("wan", "tae", "both"), default="both")
    ap.add_argument("--frames", type=int, default=None, help="output frames (default: 240 real, 49 tiny)")
    ap.add_argument("--size", default=None, help="canvas HxW (default: 480x832 real, 64x112 tiny)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto", help="auto (bf16 on CUDA, fp32 on the CPU), bf16, fp16, fp32")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads")
    ap.add_argument("--track-memory", action="store_true", help="CPU: live tensor bytes per stage (slower)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the generator")
    ap.add_argument("--warmup-frames", type=int, default=21, help="untimed render first (0: none)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    configs = REAL if args.real else TINY
    frames = args.frames or (240 if args.real else 49)
    size = tuple(map(int, (args.size or ("480x832" if args.real else "64x112")).split("x")))
    camera = CameraOptions(time=TimeControl.from_options(extend="loop", min_frames=frames))
    decoders = ("wan", "tae") if args.decoder == "both" else (args.decoder,)
    print(f"{'real' if args.real else 'tiny'} models, {frames} frames at {size[0]}x{size[1]} "
          f"(examples/room.mp4 looped), threads {args.threads}")
    for decoder in decoders:
        probe = Rerenderer(device=args.device, dtype=args.dtype)
        models = models_for(configs, decoder, probe.device, probe.dtype)
        renderer = RandomPrompt(device=args.device, dtype=args.dtype, decoder=decoder, compile=args.compile,
                                track_memory=args.track_memory, models=models)
        with tempfile.TemporaryDirectory() as folder:
            if args.warmup_frames:
                warmup = CameraOptions(time=TimeControl.from_options(extend="loop", min_frames=args.warmup_frames))
                renderer.render(EXAMPLE, "orbit_left", Path(folder) / "warmup.mp4", prompt="benchmark",
                                camera=warmup, size=size)
            result = renderer.render(EXAMPLE, "orbit_left", Path(folder) / "out.mp4", prompt="benchmark",
                                     camera=camera, size=size)
        seconds, memory = result.seconds, result.peak_memory
        stream = sum(seconds.get(s, 0.0) for s in STREAM)
        print(f"\ndecoder {decoder} on {renderer.device} ({renderer.dtype_name}): {result.frames} frames in "
              f"{result.chunks} chunks, {seconds['total']:.2f} s total = {result.frames_per_second:.2f} frames/s; "
              f"streaming stages {stream:.2f} s = {result.frames / stream:.2f} frames/s")
        print(f"  {'stage':12s} {'seconds':>9s} {'s/frame':>9s} {'peak MiB':>9s}")
        for stage in STAGES:
            if stage in seconds:
                peak = memory["stages"].get(stage)
                print(f"  {stage:12s} {seconds[stage]:9.3f} {seconds[stage] / result.frames:9.4f} "
                      f"{'' if peak is None else f'{peak / 2**20:9.1f}'}")
        print(f"  peak memory kind: {memory['kind']}; process peak RSS {memory['process_peak_rss'] / 2**20:.0f} MiB")
        del renderer, models
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
