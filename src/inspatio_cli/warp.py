"""Depth-warp renderer: forward splatting with a soft z-buffer, and the mask's latent channels.

This is the geometric condition the generator was trained on, so it follows the official "warper"
(REFERENCE.md sec. 5.2, golden ``warp.md`` sec. 1) operation by operation, in float32:

1. ``T = target_w2c @ inverse(source_w2c)``; for every integer pixel ``(u, v)`` (the pixel centre, no +0.5)
   ``X = D[v, u] * (K^-1 @ (u, v, 1))``, ``X' = T @ [X; 1]``, ``q = K_target @ X'``,
   ``(x, y, z) = (q0/q2, q1/q2, q2)``. Points are not culled for leaving the view.
2. Bilinear splat onto a canvas padded by one pixel: ``floor``/``ceil`` of ``x+1``, ``y+1`` clamped to the
   canvas, four proximity weights that are NOT renormalised (an exact integer coordinate deposits twice
   into one cell), out-of-view points land on the ring that is cropped away.
3. Soft z-buffer: each weight is divided by ``exp(log(1 + clamp(z, 0, 1000)) / Lmax * 50)`` and zeroed for
   ``z < 0``. ``Lmax`` is the largest ``log(1 + clamp(z, 0, 1000))`` over **all pixels of all frames of the
   clip**, so a foreground point outweighs the background by 1e6 or more wherever it touches a pixel.
4. ``render = sum(w * colour) / sum(w)`` clamped to [-1, 1] where ``sum(w) > 0``, the hole value -1
   elsewhere; ``mask = (sum(w) > 0)``.

Streaming: :func:`log_depth_max` is a cheap first pass (projection only, no splat) over the clip, chunk by
chunk; handing its result to :func:`forward_warp` makes warping chunk by chunk equal to warping the whole
clip at once, bit for bit on CPU. Every operation is per frame and element-wise (no batched BLAS whose
kernel could depend on the batch size), and the CPU scatter-add runs in a fixed order. On CUDA the
scatter-add uses atomics, so sums can differ in the last bit from run to run.

Release rules (:class:`WarpRules`): v1.5 (REFERENCE-v1.5.md R4) warps with the same splat but makes one
call per (target frame, source view), so ``Lmax`` is per frame (:data:`V15_RULES`); it divides by
``max(z, 1e-6)``, never splats depth <= 0 or target z <= 0, and also splats z itself, giving the target
depth (:func:`forward_warp_distance`) that the multi-view merge of :mod:`inspatio_cli.views` compares.

The mask reaches the generator as 4 sub-frame channels per latent frame (:func:`mask_to_latent_channels`,
REFERENCE.md sec. 7). The official code round-trips the mask through lossy H.264 before that and
re-thresholds it at 0.5; we feed the exact binary mask instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

HOLE = -1.0
"""Render value of pixels no source point reached (black)."""
MAX_Z = 1000.0
"""Target depths are clamped to [0, MAX_Z] before the soft z-buffer weight."""
SHARPNESS = 50.0
"""Exponent scale of the soft z-buffer: weight ~ (1 + z) ** (-SHARPNESS / Lmax)."""
MIN_LOG_DEPTH_MAX = 1e-6
"""Lower bound of ``Lmax`` (a clip whose points all sit at z <= 0)."""


@dataclass(frozen=True)
class WarpRules:
    """Where the render rules of the model releases differ (REFERENCE-v1.5.md R0 #6-7, R4).

    ``per_frame_lmax``: the soft z-buffer's ``Lmax`` is each frame's own (v1.5: one warper call per target
    frame and view) rather than shared by all the frames warped together (v1: one call per clip).
    ``min_z``: the projection divides by ``max(z, min_z)`` (v1.5: 1e-6); None divides by the raw z (v1).
    ``positive_depth``: only source depth > 0 and target z > 0 splat (v1.5); v1 splats every z >= 0.
    """

    per_frame_lmax: bool
    min_z: float | None
    positive_depth: bool


V1_RULES = WarpRules(per_frame_lmax=False, min_z=None, positive_depth=False)
"""InSpatio-World v1 (REFERENCE.md sec. 5.2)."""
V15_RULES = WarpRules(per_frame_lmax=True, min_z=1e-6, positive_depth=True)
"""InSpatio-World v1.5 (REFERENCE-v1.5.md R4)."""


def _as_depth(depth: torch.Tensor) -> torch.Tensor:
    """(B, H, W) or (B, 1, H, W) -> (B, H, W) float32."""
    if depth.ndim == 4:
        if depth.shape[1] != 1:
            raise ValueError(f"depth must be (B, H, W) or (B, 1, H, W), got {tuple(depth.shape)}")
        depth = depth[:, 0]
    if depth.ndim != 3:
        raise ValueError(f"depth must be (B, H, W) or (B, 1, H, W), got {tuple(depth.shape)}")
    return depth.float()


def project(depth: torch.Tensor, source_w2c: torch.Tensor, target_w2c: torch.Tensor, K: torch.Tensor,
            K_target: torch.Tensor | None = None,
            min_z: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where every source pixel lands in the target camera.

    ``depth`` (B, H, W) or (B, 1, H, W): z-depth in the source camera (model units); ``source_w2c``,
    ``target_w2c`` (B, 4, 4) world-to-camera (OpenCV axes); ``K`` (B, 3, 3) source intrinsics in pixels,
    ``K_target`` (B, 3, 3) the target's (default: ``K``). Returns ``x``, ``y`` (target pixel coordinates,
    integer = pixel centre) and ``z`` (target-camera depth), each (B, H, W) float32. ``min_z``: divide by
    ``max(z, min_z)`` instead of ``z`` (:class:`WarpRules`); ``z`` itself is returned unclamped.

    Float32 with the official op order: ``K^-1 @ (u, v, 1)``, times depth, the 4x4, then ``K_target``,
    each product summed left to right; ``x`` is formed as the official flow ``(x - u) + u``.
    """
    depth = _as_depth(depth)
    b, h, w = depth.shape
    device = depth.device
    K = K.to(device, torch.float32)
    K2 = K if K_target is None else K_target.to(device, torch.float32)
    k_inv = torch.linalg.inv(K)
    T = target_w2c.to(device, torch.float32) @ torch.linalg.inv(source_w2c.to(device, torch.float32))
    u = torch.arange(w, device=device, dtype=torch.float32).view(1, 1, w)
    v = torch.arange(h, device=device, dtype=torch.float32).view(1, h, 1)

    def entry(m: torch.Tensor, i: int, j: int) -> torch.Tensor:
        return m[:, i, j].view(b, 1, 1)

    ray = [entry(k_inv, i, 0) * u + entry(k_inv, i, 1) * v + entry(k_inv, i, 2) for i in range(3)]
    point = [depth * r for r in ray]
    moved = [entry(T, i, 0) * point[0] + entry(T, i, 1) * point[1] + entry(T, i, 2) * point[2] + entry(T, i, 3)
             for i in range(3)]
    q = [entry(K2, i, 0) * moved[0] + entry(K2, i, 1) * moved[1] + entry(K2, i, 2) * moved[2] for i in range(3)]
    z = q[2]
    divisor = z if min_z is None else z.clamp_min(min_z)
    x = (q[0] / divisor - u) + u
    y = (q[1] / divisor - v) + v
    return x, y, z


def _log_depth(z: torch.Tensor) -> torch.Tensor:
    return torch.log(1 + z.clamp(0, MAX_Z))


def _frame_groups(count: int, device: torch.device) -> list[slice]:
    """Frames processed together: all of them on CUDA; one at a time on CPU, where the per-frame working
    set stays in cache (about 3x faster at 480x832). Every operation is per frame, so the grouping never
    changes a result."""
    step = count if device.type == "cuda" else 1
    return [slice(i, i + step) for i in range(0, count, step)]


def log_depth_max(depth: torch.Tensor, source_w2c: torch.Tensor, target_w2c: torch.Tensor, K: torch.Tensor,
                  K_target: torch.Tensor | None = None, per_frame: bool = False) -> torch.Tensor:
    """``Lmax`` of these frames: the largest ``log(1 + clamp(z, 0, 1000))`` of their target depths (every
    pixel counts, valid or not), at least 1e-6: a 0-dim float32 tensor, or (B,) with ``per_frame`` (each
    frame's own, the v1.5 rule). Same arguments as :func:`project`.

    The clip-wide value is the maximum over the clip's chunks; pass it to :func:`forward_warp` as ``lmax``
    so chunked warping equals whole-clip warping.
    """
    depth = _as_depth(depth)
    K2 = K if K_target is None else K_target
    peaks = [_log_depth(project(depth[i], source_w2c[i], target_w2c[i], K[i], K2[i])[2]).flatten(1).amax(1)
             for i in _frame_groups(depth.shape[0], depth.device)]
    per = torch.cat(peaks).clamp_min(MIN_LOG_DEPTH_MAX)
    return per if per_frame else per.max()


def forward_warp(frames: torch.Tensor, depth: torch.Tensor, source_w2c: torch.Tensor, target_w2c: torch.Tensor,
                 K: torch.Tensor, K_target: torch.Tensor | None = None, lmax: torch.Tensor | float | None = None,
                 rules: WarpRules = V1_RULES) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward-splat each source frame with its depth into its target camera (the official warper).

    ``frames`` (B, 3, H, W) in [-1, 1]; ``depth``, ``source_w2c``, ``target_w2c``, ``K``, ``K_target`` as in
    :func:`project`; ``lmax``: the clip-wide :func:`log_depth_max`, 0-dim, or (B,) per frame (default:
    computed over these B frames, i.e. the official one-call behaviour, or per frame when
    ``rules.per_frame_lmax``); ``rules``: :data:`V1_RULES` or :data:`V15_RULES`. Returns ``render``
    (B, 3, H, W) float32 in [-1, 1] with holes at -1, and ``mask`` (B, 1, H, W) float32, 1 where any source
    point landed (even with a tiny weight).
    """
    render, mask, _ = _warp(frames, depth, source_w2c, target_w2c, K, K_target, lmax, rules, distance=False)
    return render, mask


def forward_warp_distance(frames: torch.Tensor, depth: torch.Tensor, source_w2c: torch.Tensor,
                          target_w2c: torch.Tensor, K: torch.Tensor, K_target: torch.Tensor | None = None,
                          lmax: torch.Tensor | float | None = None,
                          rules: WarpRules = V1_RULES) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`forward_warp` that also splats the target depth z as a 4th value (v1.5's "distance", which
    the multi-view merge compares). Returns ``render`` (B, 3, H, W), ``mask`` (B, 1, H, W) and ``distance``
    (B, H, W) float32: the weight-averaged target z in model units, 0 in holes, not clamped."""
    render, mask, distance = _warp(frames, depth, source_w2c, target_w2c, K, K_target, lmax, rules, distance=True)
    assert distance is not None
    return render, mask, distance


def _warp(frames: torch.Tensor, depth: torch.Tensor, source_w2c: torch.Tensor, target_w2c: torch.Tensor,
          K: torch.Tensor, K_target: torch.Tensor | None, lmax: torch.Tensor | float | None, rules: WarpRules,
          distance: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """:func:`forward_warp` and :func:`forward_warp_distance`: check the shapes, project and splat each
    group of frames (:func:`_frame_groups`)."""
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames must be (B, 3, H, W), got {tuple(frames.shape)}")
    depth = _as_depth(depth)
    if tuple(depth.shape) != (frames.shape[0], *frames.shape[2:]):
        raise ValueError(f"depth {tuple(depth.shape)} does not match frames {tuple(frames.shape)}")
    frames = frames.to(depth.device, torch.float32)
    K2 = K if K_target is None else K_target
    if lmax is None:
        lmax = log_depth_max(depth, source_w2c, target_w2c, K, K2, per_frame=rules.per_frame_lmax)
    lmax = torch.as_tensor(lmax, dtype=torch.float32, device=depth.device)
    parts = []
    for g in _frame_groups(depth.shape[0], depth.device):
        x, y, z = project(depth[g], source_w2c[g], target_w2c[g], K[g], K2[g], min_z=rules.min_z)
        valid = (depth[g] > 0) & (z > 0) if rules.positive_depth else None
        parts.append(_splat(frames[g], x, y, z, lmax[g] if lmax.ndim else lmax, valid, distance))
    render, mask = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    return render, mask, (torch.cat([p[2] for p in parts]) if distance else None)


def _splat(frames: torch.Tensor, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, lmax: torch.Tensor,
           valid: torch.Tensor | None = None,
           distance: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Bilinear splat with the soft z-buffer: frames (B, 3, H, W), target coordinates x, y and depth z
    (B, H, W) from :func:`project`, ``lmax`` 0-dim or (B,) -> render (B, 3, H, W), mask (B, 1, H, W) and,
    with ``distance``, the splatted z (B, H, W) (0 in holes). ``valid`` (B, H, W) bool: the points allowed
    to splat, on top of ``z >= 0`` (v1.5's ``mask1``)."""
    b, _, h, w = frames.shape
    finite = torch.isfinite(x) & torch.isfinite(y)
    keep = (z >= 0) & finite
    if valid is not None:
        keep &= valid
    keep = keep.float()
    x = torch.where(finite, x, 0.0) + 1
    y = torch.where(finite, y, 0.0) + 1
    x0, x1 = x.floor().clamp(0, w + 1), x.ceil().clamp(0, w + 1)
    y0, y1 = y.floor().clamp(0, h + 1), y.ceil().clamp(0, h + 1)
    x, y = x.clamp(0, w + 1), y.clamp(0, h + 1)
    near_x, far_x = 1 - (x - x0), 1 - (x1 - x)
    near_y, far_y = 1 - (y - y0), 1 - (y1 - y)
    depth_weight = torch.exp(_log_depth(z) / lmax.reshape(-1, 1, 1) * SHARPNESS)
    corners = ((y0, x0, near_y * near_x), (y1, x0, far_y * near_x), (y0, x1, near_y * far_x),
               (y1, x1, far_y * far_x))

    cells = (h + 2) * (w + 2)
    base = (torch.arange(b, device=z.device) * cells).view(b, 1, 1)
    index = torch.stack([base + cy.long() * (w + 2) + cx.long() for cy, cx, _ in corners]).reshape(-1)
    weight = torch.stack([proximity * keep / depth_weight for _, _, proximity in corners])
    values = [frames[:, channel] for channel in range(3)] + ([z] if distance else [])
    canvas = torch.zeros(len(values) + 1, b * cells, device=z.device, dtype=torch.float32)
    for channel, value in enumerate(values):
        canvas[channel].index_add_(0, index, (weight * value).reshape(-1))
    canvas[-1].index_add_(0, index, weight.reshape(-1))
    canvas = canvas.view(-1, b, h + 2, w + 2)[:, :, 1:-1, 1:-1].transpose(0, 1)
    total = canvas[:, -1:]
    known = total > 0
    render = torch.where(known, canvas[:, :3] / total, HOLE).clamp(-1, 1)
    splat_z = torch.where(known, canvas[:, 3:4] / total, 0.0)[:, 0] if distance else None
    return render, known.float(), splat_z


def coverage(mask: torch.Tensor) -> torch.Tensor:
    """Fraction of known pixels per frame: ``mask`` (T, 1, H, W) or (T, H, W) in {0, 1} -> (T,) float32."""
    return mask.float().flatten(1).mean(1)


def mask_to_video(mask: torch.Tensor) -> torch.Tensor:
    """Mask-video bytes: (T, 1, H, W) in {0, 1} -> uint8 (T, H, W, 3) in {0, 255} on the CPU, the official
    writer's ``trunc(m * 255)`` on 3 equal channels."""
    return (mask.detach().float().cpu() * 255).to(torch.uint8).permute(0, 2, 3, 1).expand(-1, -1, -1, 3).contiguous()


def mask_to_latent_channels(mask: torch.Tensor, first: bool = True) -> torch.Tensor:
    """Pixel validity mask -> the generator's 4 mask channels per latent frame (``convert_mask_video``).

    ``mask`` (b, T, H, W) in {0, 1} (1 = valid). Returns (b, L, 4, H//8, W//8) float32 with values in
    {-1, -0.5, 0, 0.5, 1}: the mask in {-1, +1} is resized bilinearly (align_corners=False, no antialias)
    to the latent grid, then grouped like the VAE groups frames: latent frame 0 holds pixel frame 0 four
    times, latent frame j >= 1 holds pixel frames 4j-3 .. 4j.

    Streaming: call with ``first=True`` for the clip's first chunk (frame 0 is repeated) and ``first=False``
    for the following ones, which must hold multiples of 4 frames except the last. Frames that do not fill
    a latent frame at the end are dropped, as the official code does, so L = (T+3)//4 for a whole clip.
    """
    if mask.ndim != 4:
        raise ValueError(f"mask must be (b, T, H, W), got {tuple(mask.shape)}")
    b, t, h, w = mask.shape
    signed = mask.float() * 2 - 1
    small = F.interpolate(signed.reshape(b * t, 1, h, w), size=(h // 8, w // 8), mode="bilinear",
                          align_corners=False).reshape(b, t, h // 8, w // 8)
    if first:
        small = torch.cat([small[:, :1].expand(b, 3, h // 8, w // 8), small], dim=1)
    latents = small.shape[1] // 4
    return small[:, :latents * 4].reshape(b, latents, 4, h // 8, w // 8)
