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

The mask reaches the generator as 4 sub-frame channels per latent frame (:func:`mask_to_latent_channels`,
REFERENCE.md sec. 7). The official code round-trips the mask through lossy H.264 before that and
re-thresholds it at 0.5; we feed the exact binary mask instead.
"""

from __future__ import annotations

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
            K_target: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where every source pixel lands in the target camera.

    ``depth`` (B, H, W) or (B, 1, H, W): z-depth in the source camera (model units); ``source_w2c``,
    ``target_w2c`` (B, 4, 4) world-to-camera (OpenCV axes); ``K`` (B, 3, 3) source intrinsics in pixels,
    ``K_target`` (B, 3, 3) the target's (default: ``K``). Returns ``x``, ``y`` (target pixel coordinates,
    integer = pixel centre) and ``z`` (target-camera depth), each (B, H, W) float32.

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
    x = (q[0] / z - u) + u
    y = (q[1] / z - v) + v
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
                  K_target: torch.Tensor | None = None) -> torch.Tensor:
    """``Lmax`` of these frames: the largest ``log(1 + clamp(z, 0, 1000))`` of their target depths,
    at least 1e-6 (0-dim float32 tensor). Same arguments as :func:`project`.

    The clip-wide value is the maximum over the clip's chunks; pass it to :func:`forward_warp` as ``lmax``
    so chunked warping equals whole-clip warping.
    """
    depth = _as_depth(depth)
    K2 = K if K_target is None else K_target
    peaks = [_log_depth(project(depth[g], source_w2c[g], target_w2c[g], K[g], K2[g])[2]).max()
             for g in _frame_groups(depth.shape[0], depth.device)]
    return torch.stack(peaks).max().clamp_min(MIN_LOG_DEPTH_MAX)


def forward_warp(frames: torch.Tensor, depth: torch.Tensor, source_w2c: torch.Tensor, target_w2c: torch.Tensor,
                 K: torch.Tensor, K_target: torch.Tensor | None = None,
                 lmax: torch.Tensor | float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward-splat each source frame with its depth into its target camera (the official warper).

    ``frames`` (B, 3, H, W) in [-1, 1]; ``depth``, ``source_w2c``, ``target_w2c``, ``K``, ``K_target`` as in
    :func:`project`; ``lmax``: the clip-wide :func:`log_depth_max` (default: computed over these B frames,
    i.e. the official one-call behaviour). Returns ``render`` (B, 3, H, W) float32 in [-1, 1] with holes at
    -1, and ``mask`` (B, 1, H, W) float32, 1 where any source point landed (even with a tiny weight).
    """
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames must be (B, 3, H, W), got {tuple(frames.shape)}")
    depth = _as_depth(depth)
    if tuple(depth.shape) != (frames.shape[0], *frames.shape[2:]):
        raise ValueError(f"depth {tuple(depth.shape)} does not match frames {tuple(frames.shape)}")
    frames = frames.to(depth.device, torch.float32)
    K2 = K if K_target is None else K_target
    if lmax is None:
        lmax = log_depth_max(depth, source_w2c, target_w2c, K, K2)
    lmax = torch.as_tensor(lmax, dtype=torch.float32, device=depth.device)
    parts = [_splat(frames[g], *project(depth[g], source_w2c[g], target_w2c[g], K[g], K2[g]), lmax)
             for g in _frame_groups(depth.shape[0], depth.device)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _splat(frames: torch.Tensor, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor,
           lmax: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear splat with the soft z-buffer: frames (B, 3, H, W), target coordinates x, y and depth z
    (B, H, W) from :func:`project` -> render (B, 3, H, W), mask (B, 1, H, W)."""
    b, _, h, w = frames.shape
    finite = torch.isfinite(x) & torch.isfinite(y)
    valid = ((z >= 0) & finite).float()
    x = torch.where(finite, x, 0.0) + 1
    y = torch.where(finite, y, 0.0) + 1
    x0, x1 = x.floor().clamp(0, w + 1), x.ceil().clamp(0, w + 1)
    y0, y1 = y.floor().clamp(0, h + 1), y.ceil().clamp(0, h + 1)
    x, y = x.clamp(0, w + 1), y.clamp(0, h + 1)
    near_x, far_x = 1 - (x - x0), 1 - (x1 - x)
    near_y, far_y = 1 - (y - y0), 1 - (y1 - y)
    depth_weight = torch.exp(_log_depth(z) / lmax * SHARPNESS)
    corners = ((y0, x0, near_y * near_x), (y1, x0, far_y * near_x), (y0, x1, near_y * far_x),
               (y1, x1, far_y * far_x))

    cells = (h + 2) * (w + 2)
    base = (torch.arange(b, device=z.device) * cells).view(b, 1, 1)
    index = torch.stack([base + cy.long() * (w + 2) + cx.long() for cy, cx, _ in corners]).reshape(-1)
    weight = torch.stack([proximity * valid / depth_weight for _, _, proximity in corners])
    canvas = torch.zeros(4, b * cells, device=z.device, dtype=torch.float32)
    for channel in range(3):
        canvas[channel].index_add_(0, index, (weight * frames[:, channel]).reshape(-1))
    canvas[3].index_add_(0, index, weight.reshape(-1))
    canvas = canvas.view(4, b, h + 2, w + 2)[:, :, 1:-1, 1:-1].transpose(0, 1)
    total = canvas[:, 3:]
    known = total > 0
    render = torch.where(known, canvas[:, :3] / total, HOLE).clamp(-1, 1)
    return render, known.float()


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
