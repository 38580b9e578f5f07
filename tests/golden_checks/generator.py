"""Golden checks for the ``generator`` component: scheduler tables, single DiT calls (with and without the KV
buffer) and the full STAR loop, against the official code run in float32 (golden/generator.md)."""

from __future__ import annotations

from dataclasses import fields

import torch

from inspatio_cli.generate import FlowMatchScheduler, ReplayNoise, StarSampler
from inspatio_cli.generate.star import ChunkInput
from inspatio_cli.models.dit import CausalWanDiT, DiTConfig, build_generator, sinusoidal_embedding

from .common import GoldenCase, assert_close


def _model(case: GoldenCase) -> CausalWanDiT:
    """The tiny DiT of the case, loaded strictly from its ``weights.model.*`` tensors."""
    names = {f.name for f in fields(DiTConfig)}
    config = DiTConfig(**{k: v for k, v in case.config.items() if k in names})
    return build_generator(case.group("weights."), path=case.path, config=config)


def _check_scheduler(case: GoldenCase, atol: float, rtol: float) -> None:
    s = FlowMatchScheduler(shift=case.config["shift"], num_train_timesteps=case.config["num_train_timesteps"])
    x0, noise, flow = case["input.x0"], case["input.noise"], case["input.flow_pred"]
    steps = s.denoising_steps(case.config["denoising_step_list"], warp=case.config["warp_denoising_step"])
    results = {
        "sigmas": s.sigmas, "timesteps": s.timesteps, "denoising_step_list": steps,
        "sigma_at_denoising_steps": s.sigma(steps),
        "add_noise": s.add_noise(x0, noise, case["input.t_grid"]),
        "add_noise_offgrid": s.add_noise(x0, noise, case["input.t_offgrid"]),
        "x0_from_flow": s.x0_from_flow(flow, x0, case["input.t_grid"]),
        "x0_from_flow_offgrid": s.x0_from_flow(flow, x0, case["input.t_offgrid"]),
    }
    assert set(results) == set(case.group("output."))
    for name, value in results.items():
        assert_close(name, value, case[f"output.{name}"], atol, rtol)


def _call(model: CausalWanDiT, case: GoldenCase, prefix: str, cache) -> torch.Tensor:
    """Replay one recorded wrapper call: ``kv_size = (0, n)`` with n < 0 the context pass, n > 0 cached."""
    start, n = case[f"{prefix}kv_size"].tolist()
    assert start == 0
    return model(case[f"{prefix}x"], case[f"{prefix}timestep"], case["input.context"],
                 cond=None if n < 0 else case[f"{prefix}render_latent_input"], cache=cache, write=n < 0,
                 cached=max(n, 0), time_offset=int(case[f"{prefix}freqs_offset"]))


def _check_dit_block(case: GoldenCase, atol: float, rtol: float) -> None:
    model = _model(case)
    seen: dict[str, torch.Tensor] = {}
    hooks = {"time_embedding": model.time_embedding, "time_projection": model.time_projection,
             "text_embedding": model.text_embedding, "patch_embedding": model.patch_embedding,
             "block0.self_attn": model.blocks[0].self_attn, "block0.cross_attn": model.blocks[0].cross_attn,
             "block0.ffn": model.blocks[0].ffn, "head": model.head.head}
    hooks.update({f"block{i}": b for i, b in enumerate(model.blocks)})
    handles = [m.register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, out))
               for name, m in hooks.items()]
    try:
        flow = _call(model, case, "input.", None)
    finally:
        for h in handles:
            h.remove()
    t = case["input.timestep"][:, 0]
    seen["t_sinusoid"] = sinusoidal_embedding(t, model.cfg.freq_dim)
    seen["time_projection"] = seen["time_projection"].flatten(1)
    x0 = FlowMatchScheduler().x0_from_flow(flow, case["input.x"], t)
    assert_close("flow_pred", flow, case["output.flow_pred"], atol, rtol)
    assert_close("x0", x0, case["output.x0"], atol, rtol)
    expected = case.group("output.intermediate.")
    assert set(seen) == set(expected), sorted(set(seen) ^ set(expected))
    for name, value in expected.items():
        assert_close(f"intermediate.{name}", seen[name], value, atol, rtol)


def _check_dit_cache(case: GoldenCase, atol: float, rtol: float) -> None:
    model = _model(case)
    fsl = model.tokens_per_frame(*case.config["latent_hw"])
    for preallocate in (True, False):
        cache = model.new_kv_buffer(1, (9 if preallocate else 6) * fsl)
        calls = sorted({k.split(".")[2] for k in case.keys if k.startswith("input.call.")})
        for call in calls:
            prefix = f"input.call.{call}."
            flow = _call(model, case, prefix, cache)
            out = f"output.call.{call}."
            assert_close(f"call {call} flow_pred", flow, case[f"{out}flow_pred"], atol, rtol)
            if f"{out}x0" in case:
                x0 = FlowMatchScheduler().x0_from_flow(flow, case[f"{prefix}x"], case[f"{prefix}timestep"][:, 0])
                assert_close(f"call {call} x0", x0, case[f"{out}x0"], atol, rtol)
            for layer in range(model.cfg.num_layers):
                for kind in ("k", "v"):
                    name = f"{out}cache.layer{layer}.{kind}"
                    if name in case:
                        rows = case[name].shape[1]
                        stored = getattr(cache, kind)[layer][:, :, :rows].transpose(1, 2)
                        assert_close(f"call {call} layer {layer} {kind}", stored, case[name], atol, rtol)
        assert_close("block1.denoised", x0, case["output.block1.denoised"], atol, rtol)
    assert_close("steps", FlowMatchScheduler().denoising_steps(), case["output.denoising_step_list"], atol, rtol)


def _check_pipeline(case: GoldenCase, atol: float, rtol: float) -> None:
    model = _model(case)
    draws = [case[f"input.noise.{i:03d}"] for i in range(len(case.group("input.noise.")))]
    for cache_text, preallocate in ((True, True), (False, False)):
        trace: dict[str, torch.Tensor] = {}
        sampler = StarSampler(model, case["input.context"], noise=ReplayNoise(draws), cache_text=cache_text,
                              preallocate=preallocate, trace=lambda name, t: trace.__setitem__(name, t.clone()))
        ref, warped, mask = case["input.ref_latent"], case["input.render_latent"], case["input.mask_latent"]
        outs = [sampler.step(ChunkInput(ref[:, i:i + 3], warped[:, i:i + 3], mask[:, i:i + 3]))
                for i in range(0, ref.shape[1], 3)]
        expected = case.group("output.trace.")
        assert set(trace) == set(expected), sorted(set(trace) ^ set(expected))
        for name in sorted(expected):
            assert_close(f"trace.{name}", trace[name], expected[name], atol, rtol)
        assert_close("latents", torch.cat(outs, dim=1), case["output.latents"], atol, rtol)
    assert_close("steps", sampler.steps, case["output.denoising_step_list"], atol, rtol)


def check(case: GoldenCase) -> None:
    atol, rtol = case.tolerance()
    {"scheduler": _check_scheduler, "dit_block": _check_dit_block, "dit_cache": _check_dit_cache,
     "pipeline": _check_pipeline}[case.case_id](case, atol, rtol)
