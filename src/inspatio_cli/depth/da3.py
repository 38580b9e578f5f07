"""Depth-Anything-3 (DA3) in plain PyTorch: the any-view network, the metric network and the nested model.

What the InSpatio pipeline runs (``inference(frames, use_ray_pose=False)``, no camera input):

* **Backbone** (``backbone.pretrained.*``): a DINOv2 ViT/14 over ``S`` views. From block ``alt_start`` on,
  odd blocks attend *globally* over all views and even blocks *locally* within a view; blocks from
  ``qknorm_start`` normalise q/k per head and from ``rope_start`` apply a 2-D RoPE. Just before block
  ``alt_start - 1`` a reference view is chosen (``saddle_balanced``, ``S >= 3``) and moved first; at block
  ``alt_start`` token 0 becomes a learned camera token (one for the reference, one for the others). Four
  out layers give features ``cat(last local output, final_norm(x))`` and raw camera tokens.
* **DualDPT head** (``head.*``): depth (``exp``) and confidence (``exp + 1``) at the input resolution. Its
  ray branch (``*_aux``) is discarded by inference and is not built here.
* **Camera decoder** (``cam_dec.*``): per-view translation, quaternion and field of view, turned into
  world-to-camera ``[R|t]`` (OpenCV axes, world = reference camera) and pinhole ``K`` (``cx = W/2``).
* **Metric network** (plain ViT + DPT with a sky head) and the **nested model** (``da3.*`` any-view +
  ``da3_metric.*`` metric): the any-view depth is scaled by a least-squares fit to the metric depth on
  confident non-sky pixels, translations follow, sky pixels get a capped far depth.

Parameter names equal the Hugging Face checkpoint keys after the ``model.`` prefix. Modules inference never
uses (``cam_enc``, ``gs_head``/``gs_adapter``, the DualDPT ray branch) are not built; their keys are listed in
:data:`UNUSED_PREFIXES` so loaders can skip them. Quantiles are exact (the official code draws a random
subsample of 100,000 values above that size, so its sky depth varies run to run; ours does not).
Specification: ``shared/golden/da3.md`` sections 2-3; verified against the ``da3_*`` golden files.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

UNUSED_PREFIXES: tuple[str, ...] = (
    "cam_enc.", "gs_head.", "gs_adapter.",
    *(f"head.scratch.refinenet{i}_aux." for i in range(1, 5)),
    "head.scratch.output_conv1_aux.", "head.scratch.output_conv2_aux.",
)
"""Checkpoint key prefixes (relative to one network) that inference never uses: tolerated and skipped."""

HEAD_PIXELS = 8 * 504 * 294
"""Pixels the DPT head decodes per chunk: the official chunk of 8 views at the usual 504x294."""


# --------------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class BackboneConfig:
    """DINOv2 ViT/14 with DA3's multi-view options; ``-1`` disables alternating attention / QK norm / RoPE."""

    embed_dim: int
    depth: int
    num_heads: int
    out_layers: tuple[int, int, int, int]
    ffn: str = "mlp"
    mlp_ratio: float = 4.0
    alt_start: int = -1
    qknorm_start: int = -1
    rope_start: int = -1
    rope_freq: float = 100.0
    cat_token: bool = True
    patch_size: int = 14
    pos_embed_grid: int = 37

    @property
    def ffn_hidden(self) -> int:
        """Hidden width of the FFN (SwiGLU rounds 2/3 of the MLP width up to a multiple of 8)."""
        hidden = int(self.embed_dim * self.mlp_ratio)
        return (int(hidden * 2 / 3) + 7) // 8 * 8 if self.ffn == "swiglu" else hidden


@dataclass(frozen=True)
class HeadConfig:
    """DPT head. ``dual``: the any-view DualDPT (token LayerNorm, UV position embedding, depth + conf);
    otherwise the metric DPT (depth only, optional ReLU sky head)."""

    dim_in: int
    features: int
    out_channels: tuple[int, int, int, int]
    dual: bool = True
    sky_head: bool = False

    @property
    def output_dim(self) -> int:
        return 2 if self.dual else 1


@dataclass(frozen=True)
class DA3Config:
    """One DA3 network: ``anyview`` (camera decoder, alternating attention) or ``metric`` (plain ViT)."""

    name: str
    backbone: BackboneConfig
    head: HeadConfig
    cam_dec_dim: int | None = None

    @property
    def is_anyview(self) -> bool:
        return self.cam_dec_dim is not None


@dataclass(frozen=True)
class NestedConstants:
    """Constants of the nested metric alignment (``da3.md`` section 3.6)."""

    metric_focal_divisor: float = 300.0
    sky_threshold: float = 0.3
    sky_depth_cap: float = 200.0
    min_depth: float = 1e-3
    min_metric_depth: float = 1e-2
    sky_quantile: float = 0.99
    conf_quantile: float = 0.5


@dataclass(frozen=True)
class NestedConfig:
    """Any-view network aligned to a metric network (``da3.*`` + ``da3_metric.*``)."""

    name: str
    anyview: DA3Config
    metric: DA3Config
    constants: NestedConstants = field(default_factory=NestedConstants)


def _anyview(name: str, d: int, depth: int, heads: int, ffn: str, start: int, out_layers: tuple[int, ...],
             features: int, out_channels: tuple[int, ...]) -> DA3Config:
    bb = BackboneConfig(d, depth, heads, tuple(out_layers), ffn=ffn, alt_start=start, qknorm_start=start,
                        rope_start=start)
    return DA3Config(name, bb, HeadConfig(2 * d, features, tuple(out_channels)), cam_dec_dim=2 * d)


def _metric(name: str, d: int, depth: int, heads: int, out_layers: tuple[int, ...], features: int,
            out_channels: tuple[int, ...]) -> DA3Config:
    bb = BackboneConfig(d, depth, heads, tuple(out_layers), cat_token=False)
    return DA3Config(name, bb, HeadConfig(d, features, tuple(out_channels), dual=False, sky_head=True))


_WIDE = (256, 512, 1024, 1024)
CONFIGS: dict[str, DA3Config | NestedConfig] = {
    "da3-small": _anyview("da3-small", 384, 12, 6, "mlp", 4, (5, 7, 9, 11), 64, (48, 96, 192, 384)),
    "da3-base": _anyview("da3-base", 768, 12, 12, "mlp", 4, (5, 7, 9, 11), 128, (96, 192, 384, 768)),
    "da3-large": _anyview("da3-large", 1024, 24, 16, "mlp", 8, (11, 15, 19, 23), 256, _WIDE),
    "da3-giant": _anyview("da3-giant", 1536, 40, 24, "swiglu", 13, (19, 27, 33, 39), 256, _WIDE),
    "da3metric-large": _metric("da3metric-large", 1024, 24, 16, (4, 11, 17, 23), 256, _WIDE),
}
CONFIGS["da3nested-giant-large"] = NestedConfig("da3nested-giant-large", CONFIGS["da3-giant"],
                                                CONFIGS["da3metric-large"])
"""The released networks by their official ``model_name`` (the ``config.json`` of each Hugging Face repo)."""


def config_from_dict(d: dict) -> DA3Config | NestedConfig:
    """Build a config from the JSON schema of the golden files and key lists (``da3.md`` section 1)."""
    if d["type"] == "nested":
        consts = NestedConstants(**{k: float(v) for k, v in d.get("constants", {}).items()
                                    if k in NestedConstants.__dataclass_fields__})
        return NestedConfig(d.get("official_name") or "nested", config_from_dict(d["anyview"]),
                            config_from_dict(d["metric"]), consts)
    b, h = d["backbone"], d["head"]
    if h.get("activation", "exp") != "exp" or h.get("conf_activation", "expp1") != "expp1" \
            or h.get("sky_activation", "relu") != "relu":
        raise ValueError(f"unsupported DA3 head activations in {h}")
    bb = BackboneConfig(int(b["embed_dim"]), int(b["depth"]), int(b["num_heads"]), tuple(b["out_layers"]),
                        ffn=b.get("ffn", "mlp"), mlp_ratio=float(b.get("mlp_ratio", 4)),
                        alt_start=int(b["alt_start"]), qknorm_start=int(b["qknorm_start"]),
                        rope_start=int(b["rope_start"]), rope_freq=float(b.get("rope_freq", 100)),
                        cat_token=bool(b["cat_token"]), patch_size=int(d.get("patch_size", 14)),
                        pos_embed_grid=int(d.get("pos_embed_grid", 37)))
    dual = h["type"] == "dualdpt"
    head = HeadConfig(int(h["dim_in"]), int(h["features"]), tuple(h["out_channels"]), dual=dual,
                      sky_head=bool(h.get("sky_head", False)))
    cam = d.get("cam_dec")
    return DA3Config(d.get("official_name") or d["type"], bb, head, int(cam["dim_in"]) if cam else None)


# --------------------------------------------------------------------------------------------------
# Backbone


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * b)


class LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


def rope_tables(pos: Tensor, head_dim: int, freq: float) -> tuple[Tensor, Tensor]:
    """cos/sin tables ``(T, head_dim)`` of the 2-D RoPE for integer positions ``pos (T, 2)`` = (y, x).

    Each half of a head (``F = head_dim/2``) is rotated by one coordinate with ``inv_j = freq^(-2j/F)``;
    the angle vector is repeated (``[a, a]``), not interleaved. Float32, like the official tables.
    """
    half = head_dim // 2
    inv = 1.0 / (freq ** (torch.arange(0, half, 2, device=pos.device).float() / half))
    cos, sin = [], []
    for axis in range(2):
        angles = pos[:, axis].float()[:, None] * inv[None]
        angles = torch.cat([angles, angles], dim=-1)
        cos.append(angles.cos())
        sin.append(angles.sin())
    return torch.cat(cos, dim=-1), torch.cat(sin, dim=-1)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate ``x (..., T, hd)``: the first half of the head by y, the second by x (``rot(u) = [-u2, u1]``)."""
    half = x.shape[-1] // 2
    out = []
    for part, c, s in ((x[..., :half], cos[:, :half], sin[:, :half]), (x[..., half:], cos[:, half:], sin[:, half:])):
        u1, u2 = part[..., : half // 2], part[..., half // 2:]
        out.append(part * c.to(x.dtype) + torch.cat([-u2, u1], dim=-1) * s.to(x.dtype))
    return torch.cat(out, dim=-1)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, qk_norm: bool):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        head_dim = dim // heads
        self.q_norm = nn.LayerNorm(head_dim) if qk_norm else None
        self.k_norm = nn.LayerNorm(head_dim) if qk_norm else None

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    """Pre-LN transformer block with LayerScale (LayerNorm eps 1e-6)."""

    def __init__(self, cfg: BackboneConfig, index: int):
        super().__init__()
        d = cfg.embed_dim
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.attn = Attention(d, cfg.num_heads, cfg.qknorm_start != -1 and index >= cfg.qknorm_start)
        self.ls1 = LayerScale(d)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = (SwiGLU if cfg.ffn == "swiglu" else Mlp)(d, cfg.ffn_hidden)
        self.ls2 = LayerScale(d)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), rope))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


def saddle_balanced_reference(cls_tokens: Tensor) -> Tensor:
    """Reference view per batch item ``(B,)`` from token 0 of each view ``(B, S, d)``: the view closest to
    the middle of the range on three metrics (mean cosine similarity to the others, token norm, variance
    of the unit token), each min-max normalised over the views."""
    s = cls_tokens.shape[1]
    unit = cls_tokens / cls_tokens.norm(dim=-1, keepdim=True)
    sim = (unit @ unit.transpose(1, 2) - torch.eye(s, device=unit.device, dtype=unit.dtype)).sum(-1) / (s - 1)

    def spread(m: Tensor) -> Tensor:
        lo, hi = m.min(dim=1, keepdim=True).values, m.max(dim=1, keepdim=True).values
        return (m - lo) / (hi - lo + 1e-8)

    score = ((spread(sim) - 0.5).abs() + (spread(cls_tokens.norm(dim=-1)) - 0.5).abs()
             + (spread(unit.var(dim=-1)) - 0.5).abs())
    return score.argmin(dim=1)


class VisionTransformer(nn.Module):
    """The DA3 backbone (``backbone.pretrained.*``). ``forward`` returns the four out-layer features
    ``(B, S, N, 2d)`` (``(B, S, N, d)`` without ``cat_token``) and camera tokens ``(B, S, 2d)``."""

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        if cfg.alt_start != -1:
            self.camera_token = nn.Parameter(torch.zeros(1, 2, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.pos_embed_grid ** 2, d))
        self.patch_embed = PatchEmbed(cfg.patch_size, d)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.depth))
        self.norm = nn.LayerNorm(d)

    def interpolated_pos_embed(self, h: int, w: int) -> Tensor:
        """``(1, 1 + h*w, d)``: the 37x37 table resized bicubically (A = -0.75, no antialias) with the
        DINOv2 ``scale_factor = (h + 0.1)/37`` convention (``size=`` would give different values)."""
        m = self.cfg.pos_embed_grid
        table = self.pos_embed.float()
        if h == m and w == m:
            return table
        grid = table[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, scale_factor=((h + 0.1) / m, (w + 0.1) / m), mode="bicubic", antialias=False)
        return torch.cat([table[:, :1], grid.permute(0, 2, 3, 1).reshape(1, h * w, -1)], dim=1)

    def _rope(self, h: int, w: int, views: int, device: torch.device) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """(local, global) RoPE tables. Local: token 0 at (0,0), patch (r,c) at (r+1,c+1), per view.
        Global: token 0 at (0,0) and every patch at (1,1), repeated over the views in sequence order."""
        hd = self.cfg.embed_dim // self.cfg.num_heads
        rows = torch.arange(h, device=device).repeat_interleave(w)
        cols = torch.arange(w, device=device).repeat(h)
        local = torch.cat([torch.zeros(1, 2, dtype=torch.long, device=device), torch.stack([rows, cols], 1) + 1])
        flat = torch.ones_like(local)
        flat[0] = 0
        return rope_tables(local, hd, self.cfg.rope_freq), rope_tables(flat.repeat(views, 1), hd, self.cfg.rope_freq)

    def forward(self, x: Tensor, trace: dict[str, Tensor] | None = None) -> tuple[list[Tensor], list[Tensor]]:
        cfg = self.cfg
        b, s, _, height, width = x.shape
        h, w = height // cfg.patch_size, width // cfg.patch_size
        tokens = self.patch_embed(x.flatten(0, 1))
        tokens = torch.cat([self.cls_token.expand(b * s, 1, -1).to(tokens.dtype), tokens], dim=1)
        pos = self.interpolated_pos_embed(h, w)
        x = (tokens + pos.to(tokens.dtype)).reshape(b, s, 1 + h * w, -1)
        if trace is not None:
            trace["pos_embed"], trace["embed"] = pos, x.clone()
        rope_local = rope_global = None
        if cfg.rope_start != -1:
            rope_local, rope_global = self._rope(h, w, s, x.device)
        restore = None
        ref = torch.full((b,), -1, dtype=torch.long, device=x.device)
        local_x = x
        feats, cam_tokens = [], []
        batch = torch.arange(b, device=x.device)[:, None]
        for i, blk in enumerate(self.blocks):
            if cfg.alt_start != -1 and i == cfg.alt_start - 1 and s >= 3:
                ref = saddle_balanced_reference(x[:, :, 0])
                ar = torch.arange(s, device=x.device)[None].expand(b, s)
                order = torch.where((ar > 0) & (ar <= ref[:, None]), ar - 1, ar)
                order[:, 0] = ref
                restore = order.argsort(dim=1)
                x, local_x = x[batch, order], local_x[batch, order]
            if cfg.alt_start != -1 and i == cfg.alt_start:
                # In place, as upstream: when the previous block was local, local_x sees the camera token too.
                x[:, 0, 0] = self.camera_token[0, 0].to(x.dtype)
                x[:, 1:, 0] = self.camera_token[0, 1].to(x.dtype)
            use_rope = cfg.rope_start != -1 and i >= cfg.rope_start
            if cfg.alt_start != -1 and i >= cfg.alt_start and i % 2 == 1:
                x = blk(x.reshape(b, -1, x.shape[-1]), rope_global if use_rope else None).reshape(x.shape)
            else:
                x = blk(x.reshape(b * s, -1, x.shape[-1]), rope_local if use_rope else None).reshape(x.shape)
                local_x = x
            if i in cfg.out_layers:
                out = torch.cat([local_x, x], dim=-1) if cfg.cat_token else x
                if restore is not None:
                    out = out[batch, restore]
                cam_tokens.append(out[:, :, 0])
                feats.append(out)
        d = cfg.embed_dim
        if cfg.cat_token:
            feats = [torch.cat([f[..., :d], self.norm(f[..., d:])], dim=-1)[:, :, 1:] for f in feats]
        else:
            feats = [self.norm(f)[:, :, 1:] for f in feats]
        if trace is not None:
            trace["ref_view_index"] = ref[:1].clone()
            for k, (f, c) in enumerate(zip(feats, cam_tokens)):
                trace[f"backbone_feat{k}"], trace[f"backbone_camtok{k}"] = f, c
        return feats, cam_tokens


class Backbone(nn.Module):
    """Holder that gives the ViT its checkpoint prefix ``backbone.pretrained``."""

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.pretrained = VisionTransformer(cfg)


# --------------------------------------------------------------------------------------------------
# Heads


def uv_embedding(channels: int, height: int, width: int, aspect: float, device: torch.device) -> Tensor:
    """``(channels, height, width)`` sin/cos embedding of a UV grid spanning the image diagonal.

    x spans ``+-sx (W-1)/W`` with ``sx = a/sqrt(a^2+1)`` (y likewise with ``1/sqrt(a^2+1)``), ``a`` the
    image aspect W/H; each coordinate p gives ``[sin(p w_j), cos(p w_j)]`` with ``w_j = 100^(-j/(C/4))``.
    """
    diag = (aspect ** 2 + 1.0) ** 0.5
    sx, sy = aspect / diag, 1.0 / diag
    xs = torch.linspace(-sx * (width - 1) / width, sx * (width - 1) / width, width, device=device)
    ys = torch.linspace(-sy * (height - 1) / height, sy * (height - 1) / height, height, device=device)
    quarter = channels // 4
    omega = 1.0 / 100.0 ** (torch.arange(quarter, dtype=torch.float32, device=device) / quarter)

    def embed(p: Tensor) -> Tensor:
        angles = p[:, None] * omega[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    ex = embed(xs)[None, :, :].expand(height, width, 2 * quarter)
    ey = embed(ys)[:, None, :].expand(height, width, 2 * quarter)
    return torch.cat([ex, ey], dim=-1).permute(2, 0, 1)


class ResidualConvUnit(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FusionBlock(nn.Module):
    """``out_conv(up(RCU2(x + RCU1(lateral))))``, bilinear ``align_corners=True`` to ``size`` (default x2)."""

    def __init__(self, features: int, residual: bool = True):
        super().__init__()
        if residual:
            self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)
        self.out_conv = nn.Conv2d(features, features, 1)

    def forward(self, x: Tensor, lateral: Tensor | None = None, size: tuple[int, int] | None = None) -> Tensor:
        if lateral is not None:
            x = x + self.resConfUnit1(lateral)
        x = self.resConfUnit2(x)
        size = size or (2 * x.shape[-2], 2 * x.shape[-1])
        return self.out_conv(F.interpolate(x, size=size, mode="bilinear", align_corners=True))


class DPTHead(nn.Module):
    """DPT decoder from the four out-layer features to full-resolution maps.

    ``forward(feats, H, W)`` with ``feats[k] (V, N, C)`` returns ``depth (V, H, W)`` and ``conf`` (DualDPT)
    or ``sky`` (metric DPT with sky head), all float32.
    """

    def __init__(self, cfg: HeadConfig):
        super().__init__()
        self.cfg = cfg
        f, oc = cfg.features, cfg.out_channels
        if cfg.dual:
            self.norm = nn.LayerNorm(cfg.dim_in)
        self.projects = nn.ModuleList(nn.Conv2d(cfg.dim_in, c, 1) for c in oc)
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(oc[0], oc[0], kernel_size=4, stride=4),
            nn.ConvTranspose2d(oc[1], oc[1], kernel_size=2, stride=2),
            nn.Identity(),
            nn.Conv2d(oc[3], oc[3], kernel_size=3, stride=2, padding=1),
        ])
        scratch = nn.Module()
        for k, c in enumerate(oc, start=1):
            setattr(scratch, f"layer{k}_rn", nn.Conv2d(c, f, 3, padding=1, bias=False))
        for k in range(1, 5):
            setattr(scratch, f"refinenet{k}", FusionBlock(f, residual=k != 4))
        scratch.output_conv1 = nn.Conv2d(f, f // 2, 3, padding=1)
        scratch.output_conv2 = nn.Sequential(nn.Conv2d(f // 2, 32, 3, padding=1), nn.ReLU(),
                                             nn.Conv2d(32, cfg.output_dim, 1))
        if cfg.sky_head:
            scratch.sky_output_conv2 = nn.Sequential(nn.Conv2d(f // 2, 32, 3, padding=1), nn.ReLU(),
                                                     nn.Conv2d(32, 1, 1))
        self.scratch = scratch

    def _with_pe(self, x: Tensor, height: int, width: int) -> Tensor:
        if not self.cfg.dual:
            return x
        return x + 0.1 * uv_embedding(x.shape[1], x.shape[2], x.shape[3], width / height, x.device)

    def forward(self, feats: list[Tensor], height: int, width: int, patch: int = 14) -> dict[str, Tensor]:
        ph, pw = height // patch, width // patch
        levels = []
        for k, feat in enumerate(feats):
            x = self.norm(feat) if self.cfg.dual else feat
            x = x.permute(0, 2, 1).reshape(x.shape[0], x.shape[2], ph, pw)
            x = self._with_pe(self.projects[k](x), height, width)
            levels.append(self.resize_layers[k](x))
        sc = self.scratch
        l1, l2, l3, l4 = (getattr(sc, f"layer{k + 1}_rn")(x) for k, x in enumerate(levels))
        x = sc.refinenet4(l4, size=l3.shape[2:])
        x = sc.refinenet3(x, l3, size=l2.shape[2:])
        x = sc.refinenet2(x, l2, size=l1.shape[2:])
        x = sc.output_conv1(sc.refinenet1(x, l1))
        x = self._with_pe(F.interpolate(x, size=(height, width), mode="bilinear", align_corners=True), height, width)
        logits = sc.output_conv2(x)
        out = {"depth": torch.exp(logits[:, 0])}
        if self.cfg.dual:
            out["conf"] = torch.exp(logits[:, 1]) + 1
        if self.cfg.sky_head:
            out["sky"] = F.relu(sc.sky_output_conv2(x)[:, 0])
        return out


class CameraDecoder(nn.Module):
    """Camera token ``(B, S, dim)`` -> pose encoding ``(B, S, 9)`` = [t (3), quaternion xyzw (4), fov_h, fov_w]."""

    def __init__(self, dim: int):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU())
        self.fc_t = nn.Linear(dim, 3)
        self.fc_qvec = nn.Linear(dim, 4)
        self.fc_fov = nn.Sequential(nn.Linear(dim, 2), nn.ReLU())

    def forward(self, tok: Tensor) -> Tensor:
        x = self.backbone(tok).float()
        return torch.cat([self.fc_t(x), self.fc_qvec(x), self.fc_fov(x)], dim=-1)


def pose_encoding_to_cameras(enc: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Pose encoding ``(..., 9)`` -> world-to-camera ``(..., 3, 4)`` and ``K (..., 3, 3)`` in pixels.

    The quaternion (x, y, z, w) is not normalised: ``R = I - s[...]`` with ``s = 2/|q|^2``; ``[R|t]`` is
    camera-to-world, inverted to ``[R^T | -R^T t]``. ``fx = (W/2)/tan(fov_w/2)``, principal point at the
    image centre.
    """
    t, q, fov = enc[..., :3], enc[..., 3:7], enc[..., 7:9]
    x, y, z, w = q.unbind(-1)
    s = 2.0 / (q * q).sum(-1)
    rot = torch.stack([
        1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w),
        s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w),
        s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y),
    ], dim=-1).reshape(*q.shape[:-1], 3, 3)
    rt = rot.transpose(-1, -2)
    w2c = torch.cat([rt, -(rt @ t[..., None])], dim=-1)
    K = torch.zeros(*enc.shape[:-1], 3, 3, dtype=enc.dtype, device=enc.device)
    K[..., 0, 0] = (width / 2) / torch.clamp(torch.tan(fov[..., 1] / 2), min=1e-6)
    K[..., 1, 1] = (height / 2) / torch.clamp(torch.tan(fov[..., 0] / 2), min=1e-6)
    K[..., 0, 2], K[..., 1, 2], K[..., 2, 2] = width / 2, height / 2, 1.0
    return w2c, K


# --------------------------------------------------------------------------------------------------
# Networks


@dataclass
class DA3Output:
    """Outputs for ``B`` batches of ``S`` views at the input size ``H x W`` (all float32).

    ``depth``/``conf``/``sky`` ``(B, S, H, W)``; ``extrinsics`` world-to-camera ``(B, S, 3, 4)`` (OpenCV
    axes); ``intrinsics`` ``(B, S, 3, 3)`` in input pixels; ``scale_factor`` ``(B,)`` for nested models
    (metric depth / any-view depth); ``sky_fallback`` True when a nested model found too few non-sky pixels
    to align (it then aligns on all pixels and keeps every depth).
    """

    depth: Tensor
    conf: Tensor | None = None
    extrinsics: Tensor | None = None
    intrinsics: Tensor | None = None
    sky: Tensor | None = None
    scale_factor: Tensor | None = None
    sky_fallback: bool = False


class DA3Net(nn.Module):
    """One DA3 network (any-view or metric). ``forward(images (B, S, 3, H, W))`` -> :class:`DA3Output`.

    ``images`` are ImageNet-normalised, H and W multiples of 14. The backbone runs in the caller's autocast
    context (the official API uses bf16 on GPUs); the heads and camera decoder always run in float32.
    ``head_pixels`` bounds how many pixels (views x H x W) the DPT head decodes at once (memory; the
    default is the official 8 views of 504x294). ``trace``, when given, is
    filled with the intermediate tensors of the golden files.
    """

    def __init__(self, cfg: DA3Config):
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg.backbone)
        self.head = DPTHead(cfg.head)
        if cfg.is_anyview:
            self.cam_dec = CameraDecoder(cfg.cam_dec_dim)

    def forward(self, images: Tensor, trace: dict[str, Tensor] | None = None,
                head_pixels: int = HEAD_PIXELS) -> DA3Output:
        b, s, _, height, width = images.shape
        chunk = max(1, head_pixels // (height * width))
        feats, cam_tokens = self.backbone.pretrained(images, trace)
        with torch.autocast(device_type=images.device.type, enabled=False):
            flat = [f.float().flatten(0, 1) for f in feats]
            parts = [self.head([f[i:i + chunk] for f in flat], height, width, self.cfg.backbone.patch_size)
                     for i in range(0, b * s, chunk)]
            maps = {k: torch.cat([p[k] for p in parts]).reshape(b, s, height, width) for k in parts[0]}
            out = DA3Output(depth=maps["depth"], conf=maps.get("conf"), sky=maps.get("sky"))
            if self.cfg.is_anyview:
                enc = self.cam_dec(cam_tokens[-1].float())
                out.extrinsics, out.intrinsics = pose_encoding_to_cameras(enc, height, width)
                if trace is not None:
                    trace["pose_enc"] = enc
        return out


def exact_quantile(x: Tensor, q: float) -> Tensor:
    """Linear-interpolation quantile of all values of ``x`` (as ``torch.quantile``), exact at any size
    (``torch.quantile`` refuses inputs above 16M elements; the official code subsamples above 100k)."""
    flat = x.flatten()
    n = flat.numel()
    rank = torch.tensor(q, dtype=flat.dtype) * (n - 1)
    lo = int(rank.floor())
    hi = min(lo + 1, n - 1)
    a = torch.kthvalue(flat, lo + 1).values
    b = a if hi == lo else torch.kthvalue(flat, hi + 1).values
    return torch.lerp(a, b, (rank - lo).to(flat.dtype))


class NestedDA3Net(nn.Module):
    """Any-view network (``da3``) whose depth and translations are scaled to a metric network (``da3_metric``).

    Alignment over all views of the call: metric depth ``M * ((fx+fy)/2)/300`` (any-view K); non-sky =
    metric sky < 0.3; least-squares scale of the any-view depth on pixels with conf >= its non-sky median,
    non-sky, metric depth > 0.01 and depth > 1e-3; sky pixels then get ``min(q99(non-sky depth), 200)``
    and confidence 1. Fewer than 11 non-sky pixels (the official code asserts) -> align on all pixels and
    keep every depth (``sky_fallback``).
    """

    def __init__(self, cfg: NestedConfig):
        super().__init__()
        self.cfg = cfg
        self.da3 = DA3Net(cfg.anyview)
        self.da3_metric = DA3Net(cfg.metric)

    def forward(self, images: Tensor, trace: dict[str, Tensor] | None = None,
                head_pixels: int = HEAD_PIXELS) -> DA3Output:
        c = self.cfg.constants
        sub = {} if trace is not None else None
        metric_sub = {} if trace is not None else None
        out = self.da3(images, sub, head_pixels)
        metric = self.da3_metric(images, metric_sub, head_pixels)
        if trace is not None:
            trace.update({f"anyview.{k}": v for k, v in sub.items()})
            trace.update({f"metric.{k}": v for k, v in metric_sub.items()})
            trace["anyview.depth"], trace["anyview.extrinsics"] = out.depth.clone(), out.extrinsics.clone()
            trace["metric.head_depth"], trace["metric.sky"] = metric.depth, metric.sky
        with torch.autocast(device_type=images.device.type, enabled=False):
            K = out.intrinsics
            focal = (K[..., 0, 0] + K[..., 1, 1]) / 2
            metric_depth = metric.depth * (focal[..., None, None] / c.metric_focal_divisor)
            non_sky = metric.sky < c.sky_threshold
            fallback = int(non_sky.sum()) <= 10
            if fallback:
                non_sky = torch.ones_like(non_sky)
            median = exact_quantile(out.conf[non_sky], c.conf_quantile)
            align = (out.conf >= median) & non_sky & (metric_depth > c.min_metric_depth) & (out.depth > c.min_depth)
            if not bool(align.any()):
                align = non_sky
            d, m = out.depth[align], metric_depth[align]
            scale = (m * d).sum() / torch.clamp((d * d).sum(), min=1e-12)
            depth = out.depth * scale
            ext = out.extrinsics.clone()
            ext[..., :3, 3] *= scale
            conf = out.conf
            if not fallback:
                fill = torch.clamp(exact_quantile(depth[non_sky], c.sky_quantile), max=c.sky_depth_cap)
                depth = torch.where(non_sky, depth, fill)
                conf = torch.where(non_sky, conf, torch.ones_like(conf))
                if trace is not None:
                    trace["sky_fill"] = fill.reshape(1)
        if trace is not None:
            trace.update({"non_sky_mask": non_sky.to(torch.uint8), "align_mask": align.to(torch.uint8),
                          "median_conf": median.reshape(1)})
        return replace(out, depth=depth, conf=conf, extrinsics=ext, sky=metric.sky,
                       scale_factor=scale.reshape(1).expand(images.shape[0]).clone(), sky_fallback=fallback)


def build(cfg: DA3Config | NestedConfig) -> DA3Net | NestedDA3Net:
    """The network for ``cfg`` (parameters uninitialised: load a checkpoint, or build on ``meta``)."""
    return NestedDA3Net(cfg) if isinstance(cfg, NestedConfig) else DA3Net(cfg)


def parameter_count(cfg: DA3Config | NestedConfig) -> int:
    """Parameters inference uses, counted on the meta device."""
    with torch.device("meta"):
        return sum(p.numel() for p in build(cfg).parameters())


__all__ = ["CONFIGS", "UNUSED_PREFIXES", "BackboneConfig", "HeadConfig", "DA3Config", "NestedConfig",
           "NestedConstants", "DA3Net", "NestedDA3Net", "DA3Output", "build", "config_from_dict",
           "exact_quantile", "parameter_count", "pose_encoding_to_cameras"]
