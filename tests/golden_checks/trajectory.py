"""Golden checks for the ``trajectory`` component: the official trajectory text -> poses, frame indices, counts.

Each file runs the official geometry under 16 flag combinations (trajectory.md). Per combination:

* render path: our :class:`OrbitKeyframes` + :class:`TimeControl` (freeze) + :func:`render_cameras`
  against the official poses, intrinsics, interpolated values and freeze indices;
* dataset path: the same source resolved with ``extend="official"`` (the opt-in adaptive bounce /
  subsample) against the generator's frame indices, plus the reference-only depth-scaled extrinsics
  and the foreground statistic (defined here: the official pipeline only saves them, nothing uses them);
* counts: :meth:`Trajectory.chunks` against the VAE / mask / chunk frame counts.
"""

from __future__ import annotations

import numpy as np
import torch

from golden_checks.common import GoldenCase, assert_close
from inspatio_cli.cameras import Freeze, OrbitKeyframes, TimeControl, official_adaptive_indices, render_cameras
from inspatio_cli.cameras.formats.orbit import parse_orbit
from inspatio_cli.cameras.official import OrbitSamples, sample_orbit
from inspatio_cli.geometry import se3

POSE_ATOL = 1e-5
INTERP_ATOL = 1e-5
K_ATOL = 1e-3
EXACT_FRACTION = 0.99
"""Render poses and K equal the official float32 values bit for bit on at least this fraction of the entries
(all of them on every golden file, composed in float32 as officially; a float64 composition: about half)."""


def foreground_depth_min(depth: np.ndarray) -> float:
    """The official "foreground" statistic (a minimum, trajectory.md section 6): quantise all depth
    maps ``(T, h, w)`` to uint16 over their global range, dequantise frame 0 and take its minimum."""
    depth = np.asarray(depth, dtype=np.float32)
    lo, hi = float(depth.min()), float(depth.max())
    span = hi - lo if hi - lo >= 1e-8 else 1.0
    q = np.clip((depth[0] - np.float32(lo)) / np.float32(span) * np.float32(65535), 0, 65535).astype(np.uint16)
    return float((q.astype(np.float64) / 65535.0 * span + lo).min())


def reference_target_w2c(orbit: OrbitKeyframes, n: int, first_depth_min: float, radius_ratio: float = 1.0
                         ) -> tuple[np.ndarray, OrbitSamples]:
    """The official reference-only ``target_extrinsics`` (REFERENCE.md 6.5), which the official pipeline
    only saves: the orbit with ``r`` keys scaled by ``first_depth_min * radius_ratio`` (the "only y is
    zero" list by ``first_depth_min``), sampled at ``n`` frames and inverted to w2c ``(n, 4, 4)`` float64."""
    raw = orbit.r * orbit.scale
    samples = sample_orbit(orbit.x_up, orbit.y_left, raw * (first_depth_min * radius_ratio), n,
                           rotation_only=orbit.rotation_only, r_zoom_keys=raw * first_depth_min)
    return se3.invert(samples.poses()), samples


def _time_control(combo: dict, n: int, extend: str) -> TimeControl:
    """The official freeze settings; the official code clamps the freeze frame into the video, our
    TimeControl rejects out-of-range frames, so the clamp is applied here as the official one does."""
    repeat, frame = combo["freeze_repeat"], combo["freeze_frame"]
    freezes = (Freeze(None if frame is None else min(max(frame, 0), n - 1), repeat),) if repeat else ()
    return TimeControl(freezes=freezes, extend=extend)


def check(case: GoldenCase) -> None:
    cfg = case.config
    n, width, height = cfg["n_frames"], cfg["width"], cfg["height"]
    w2c = torch.zeros(n, 4, 4)
    w2c[:, :3] = case["input.extrinsic_w2c"]
    w2c[:, 3, 3] = 1.0
    source_c2w = torch.linalg.inv(w2c)
    depth_min = foreground_depth_min(case["input.da3_depth"].numpy())
    for combo in cfg["combos"]:
        out = case.group(f"output.{combo['name']}.")
        where = f"{case.name}/{combo['name']}"
        orbit = parse_orbit(cfg["traj_txt"], None, rotation_only=combo["rotation_only"])

        render = orbit.resolve(n, _time_control(combo, n, "none"))
        cams = render_cameras(render, source_c2w, case["input.intrinsic"],
                              relative_to_source=combo["relative_to_source"], width=width, height=height)
        assert_close(f"{where} render.frame_index", render.time_map, out["render.frame_index"], 0, 0)
        for name, ours in (("source_w2c", cams.source_w2c), ("target_w2c", cams.target_w2c),
                           ("target_c2w", cams.target_c2w),
                           ("c2_from_c1", cams.target_w2c.double() @ torch.linalg.inv(cams.source_w2c.double()))):
            assert_close(f"{where} render.{name}", ours, out[f"render.{name}"], POSE_ATOL, 0)
        for name, ours in (("source_w2c", cams.source_w2c), ("target_w2c", cams.target_w2c),
                           ("target_c2w", cams.target_c2w), ("K", cams.K[0])):
            exact = (ours == out[f"render.{name}"].float()).float().mean().item()
            assert exact >= EXACT_FRACTION, f"{where} render.{name}: only {exact:.2%} of the entries bit-equal"
        assert_close(f"{where} render.K", cams.K[0], out["render.K"], K_ATOL, 0)
        assert torch.equal(cams.K, cams.K[:1].expand_as(cams.K)), "the official K is the same for every frame"
        samples = orbit.samples(len(render))
        for name, ours in (("x_up_deg", samples.x_up), ("y_left_deg", samples.y_left), ("r", samples.r)):
            assert_close(f"{where} render.interp_{name}", torch.from_numpy(ours), out[f"render.interp_{name}"],
                         INTERP_ATOL, 0)
        flags = cfg["branch_flags"][combo["name"]]["render"]
        assert samples.is_zoom == flags["is_zoom"] and samples.rotation_only == flags["is_translation"]

        dataset = orbit.resolve(n, _time_control(combo, n, "official" if combo["adaptive_frame"] else "none"))
        render_index = (official_adaptive_indices(orbit.official_total_angle(), len(render))
                        if combo["adaptive_frame"] else np.arange(len(render)))
        assert_close(f"{where} dataset.final_render_index", torch.from_numpy(render_index),
                     out["dataset.final_render_index"], 0, 0)
        assert_close(f"{where} dataset.final_source_index", dataset.time_map, out["dataset.final_source_index"], 0, 0)
        assert len(dataset) == int(out["dataset.n_frames"]), f"{where}: {len(dataset)} frames"
        assert torch.equal(dataset.rel_c2w, render.rel_c2w[torch.from_numpy(render_index)]), \
            f"{where}: the official extension must replay the rendered camera path"

        assert_close(f"{where} dataset.first_depth_min", torch.tensor(depth_min, dtype=torch.float64),
                     out["dataset.first_depth_min"], 0, 1e-9)
        ref_w2c, ref = reference_target_w2c(orbit, len(dataset), depth_min, cfg["radius_ratio"])
        assert_close(f"{where} dataset.target_w2c", torch.from_numpy(ref_w2c), out["dataset.target_w2c"], POSE_ATOL, 0)
        for name, ours in (("x_up_deg", ref.x_up), ("y_left_deg", ref.y_left), ("r", ref.r)):
            assert_close(f"{where} dataset.interp_{name}", torch.from_numpy(ours), out[f"dataset.interp_{name}"],
                         INTERP_ATOL, 0)

        plan = dataset.chunks()
        counts = {"vae_latent_frames": plan.latent_frames, "mask_latent_frames": (len(dataset) + 3) // 4,
                  "latent_frames_used": plan.official_latent_frames, "output_pixel_frames": plan.official_frames}
        for name, value in counts.items():
            expected = int(out[f"counts.{name}"])
            assert value == expected, f"{where} counts.{name}: {value} != {expected}"
