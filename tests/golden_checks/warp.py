"""Golden checks for the ``warp`` component: the warper core, mask -> latent channels, and the end-to-end
render stage, chosen by the first word of the ``case`` metadata (``forward``, ``maskconv``, ``pipeline``;
``ply`` is the optional backend we do not implement).

Tolerances (``warp.md``): per frame the mask may differ on at most 0.5% of pixels, the render must be within
1e-4 on at least 99% of the pixels where both masks are 1 (float32 ulp noise decides near-integer splats),
``render_uint8`` within 1 level there; mask channels within 1e-6.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from inspatio_cli.cameras import CameraOptions, Freeze, TimeControl
from inspatio_cli.depth import DepthResult
from inspatio_cli.scene import Scene
from inspatio_cli.video import VideoInfo, to_uint8
from inspatio_cli.warp import forward_warp, mask_to_latent_channels, mask_to_video
from media import mask_from_video

from .common import GoldenCase, assert_close

MASK_FLIP_FRACTION = 0.005
RENDER_ATOL = 1e-4
RENDER_FRACTION = 0.99
EXACT_UINT8_FRACTION = 0.999
"""``render_uint8`` equals the official bytes on at least this fraction of the values valid in both masks
(the cameras are bit-exact; a float64 camera composition changed 3-6% of them)."""


def _kind(case: GoldenCase) -> str:
    """What the case checks: the first word of its ``case`` metadata (``pipeline_orbit_n5_64x112`` -> pipeline)."""
    return case.case_id.split("_", 1)[0]


def skip_reason(case: GoldenCase) -> str | None:
    if _kind(case) == "ply" or case.config.get("render_backend") == "ply":
        return "optional: the ply render backend is not implemented (we implement the default warper backend)"
    if _kind(case) == "pipeline" and _frames_hw(case) != (case.config["height"], case.config["width"]):
        return ("optional: the official renderer resizes depth-stage frames of another size with OpenCV "
                "INTER_AREA; ours fits the source video with bilinear-antialias (see video.py's da3frames cases)")
    return None


def check(case: GoldenCase) -> None:
    checks = {"forward": _check_forward, "maskconv": _check_maskconv, "pipeline": _check_pipeline}
    if _kind(case) not in checks:
        raise AssertionError(f"unknown warp case {case.case_id!r}")
    checks[_kind(case)](case)


def assert_warp_close(render: torch.Tensor, mask: torch.Tensor, expected_render: torch.Tensor,
                      expected_mask: torch.Tensor, atol: float = RENDER_ATOL, name: str = "render") -> None:
    """Per frame: masks agree on >= 99.5% of pixels; render within ``atol`` on >= 99% of the pixels valid
    in both. Renders (T, C, H, W); masks (T, 1, H, W) or (T, H, W) in {0, 1}."""
    assert render.shape == expected_render.shape, f"{name}: {tuple(render.shape)} != {tuple(expected_render.shape)}"
    for i in range(render.shape[0]):
        m, e = mask[i].reshape(render.shape[2:]) > 0.5, expected_mask[i].reshape(render.shape[2:]) > 0.5
        flips = (m != e).float().mean().item()
        assert flips <= MASK_FLIP_FRACTION, f"{name} frame {i}: mask differs on {flips:.4%} of pixels"
        diff = (render[i].double() - expected_render[i].double()).abs().amax(0)[m & e]
        if diff.numel():
            good = (diff <= atol).float().mean().item()
            assert good >= RENDER_FRACTION, (f"{name} frame {i}: only {good:.4%} of valid pixels within {atol} "
                                             f"(max |diff| {diff.max().item():.3g})")


def _check_forward(case: GoldenCase) -> None:
    render, mask = forward_warp(case["input.frame"], case["input.depth"], case["input.source_w2c"],
                                case["input.target_w2c"], case["input.K"])
    assert_warp_close(render, mask, case["output.render"], case["output.mask"])


def _check_maskconv(case: GoldenCase) -> None:
    atol, rtol = case.tolerance(1e-6, 0.0)
    mask = mask_from_video(case["input.mask_uint8"])
    if "output.mask_model" in case:
        assert_close("mask_model", mask * 2 - 1, case["output.mask_model"], atol, 0.0)
    assert_close("mask_latent", mask_to_latent_channels(mask), case["output.mask_latent"], atol, 0.0)


def _frames_hw(case: GoldenCase) -> tuple[int, int]:
    """(H, W) of the depth stage's frames, which stand for the source video."""
    return tuple(case["input.da3_frames_uint8"].shape[1:3])


def _check_pipeline(case: GoldenCase) -> None:
    """The render stage through :class:`inspatio_cli.scene.Scene`: depth-stage outputs in, trajectory
    text and flags -> cameras -> one clip-wide warp -> encoder bytes -> what the dataset reads back.

    The depth is made at ``config.da3_frame_hw`` and the render canvas is ``height x width``; where they
    differ the official renderer nearest-resizes the depth (and recentres K, which any pixel scaling leaves
    unchanged), and the check sends it through the product's path for that: ``Scene.make(..., size=canvas,
    resample=True)``, i.e. :func:`inspatio_cli.scene.resample_depth`.
    """
    cfg = case.config
    n, h, w = cfg["N"], cfg["height"], cfg["width"]
    depth_hw = tuple(cfg["da3_frame_hw"])
    assert tuple(case["input.da3_depth"].shape[1:]) == depth_hw, "input.da3_depth is not config.da3_frame_hw"
    w2c = torch.cat([case["input.extrinsic_w2c"], torch.tensor([[[0.0, 0.0, 0.0, 1.0]]]).expand(n, 1, 4)], 1)
    depth = DepthResult(depth=case["input.da3_depth"], K=case["input.intrinsic"].expand(n, 3, 3),
                        c2w=torch.linalg.inv(w2c)).validate()
    info = VideoInfo(path=case.name, width=w, height=h, fps=float(cfg["fps"]), frame_count=n, duration=n / cfg["fps"],
                     rotation=0, codec="none", pix_fmt="rgb24", bit_depth=8, variable_frame_rate=False,
                     has_audio=False)
    freezes = (Freeze(cfg["freeze_frame"], cfg["freeze_repeat"]),) if cfg["freeze_repeat"] else ()
    camera = CameraOptions(rotation_only=cfg["rotation_only"], relative_to_source=cfg["relative_to_source"],
                           time=TimeControl(freezes=freezes))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "traj.txt"
        path.write_text(cfg["traj_txt"])
        scene = Scene.make(info, depth, case.name, camera.load(path), camera=camera, size=(h, w), resample=True)
    cams = scene.cameras
    assert_close("K_render", cams.K[0], case["output.K_render"], 1e-3, 0.0)
    for name in ("source_w2c", "target_w2c"):
        assert_close(name, getattr(cams, name), case[f"output.{name}"], 1e-5, 0.0)

    images = scene.fit.frames(case["input.da3_frames_uint8"])[cams.source_index]
    render, mask = scene.warp(range(scene.num_frames), images, scene.log_depth_max())
    assert_warp_close(render, mask, case["output.render"], case["output.mask"])
    render_u8, mask_u8 = torch.from_numpy(to_uint8(render)).permute(0, 3, 1, 2).float(), mask_to_video(mask)
    expected_render_u8 = case["output.render_uint8"].permute(0, 3, 1, 2).float()
    assert_warp_close(render_u8, mask, expected_render_u8, case["output.mask"], atol=1.0, name="render_uint8")
    both = ((mask > 0.5) & (case["output.mask"] > 0.5)).reshape(len(render_u8), 1, *render_u8.shape[2:])
    exact = (render_u8 == expected_render_u8)[both.expand_as(render_u8)].float().mean().item()
    assert exact >= EXACT_UINT8_FRACTION, f"render_uint8: only {exact:.3%} of the valid values equal"
    assert_warp_close(render_u8 / 255 * 2 - 1, mask, case["output.render_video_model"], case["output.mask"],
                      atol=1.0 / 127.5 + 1e-6, name="render_video_model")
    read_back = mask_from_video(mask_u8[..., 0])
    assert_warp_close(read_back[:, None] * 2 - 1, read_back, case["output.mask_video_model"][:, :1],
                      case["output.mask_video_model"][:, 0] > 0, name="mask_video_model")
    expected_u8 = case["output.mask_uint8"]
    flips = (mask_u8[..., 0] != expected_u8).flatten(1).float().mean(1).max().item()
    assert flips <= MASK_FLIP_FRACTION, f"mask_uint8 differs on {flips:.4%} of a frame's pixels"
    # the latent channels are a function of the mask bytes: exact on the official bytes, and on ours
    assert_close("mask_latent", mask_to_latent_channels(mask_from_video(expected_u8)[None]),
                 case["output.mask_latent"], 1e-6, 0.0)
    if torch.equal(mask_u8[..., 0], expected_u8):
        assert_close("mask_latent (ours)", mask_to_latent_channels(read_back[None]), case["output.mask_latent"],
                     1e-6, 0.0)
