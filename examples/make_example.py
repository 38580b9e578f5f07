"""Render the bundled example: a small textured room seen by a slowly moving camera, with exact depth.

Writes ``examples/room.mp4`` and its sidecar ``examples/room.depth.safetensors.gz``: the ground-truth depth,
intrinsics and camera poses of the same rendering (depth as float16, gzip-compressed to about 1 MB), so
``inspatio preview examples/room.mp4 -t <trajectory>`` runs offline with no depth model; and its first frame
as a still image, ``examples/room_frame.png``, with its own one-frame sidecar
``room_frame.depth.safetensors.gz``. Deterministic: a rerun renders the same frames and depth (x264's threading
may change the encoded bytes slightly).

The scene is analytic (ray casting, no dependencies beyond torch): a room 6 m wide with a checkered floor,
striped and tiled walls, and three objects at different depths (a box at ~2.2 m, a sphere at ~3.6 m, a pillar
at ~5 m). Surfaces are Lambertian with procedural textures tied to world coordinates, so every view of a
point has the same colour and the depth-warp of one frame into another camera reproduces it.

Run: ``python examples/make_example.py [--frames 49] [--fps 24]``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from PIL import Image

from inspatio_cli.depth import DepthResult
from inspatio_cli.video import write_video

HEIGHT, WIDTH = 480, 832
FOCAL = 620.0
ROOM = {"x": (-3.0, 3.0), "y": (-1.6, 1.3), "z": (-1.0, 7.0)}  # OpenCV axes: y points down (floor at +1.3)
BOX = ((-1.45, 0.45, 1.8), (-0.6, 1.3, 2.6))  # axis-aligned box standing on the floor: min and max corners
SPHERE = ((1.1, 0.75, 3.6), 0.55)  # centre and radius
PILLAR = ((-0.35, 5.0), 0.35)  # vertical cylinder: (x, z) of the axis and radius, floor to ceiling
LIGHT = torch.tensor([-0.35, -0.8, -0.45], dtype=torch.float64)


def camera_path(frames: int) -> torch.Tensor:
    """c2w (T, 4, 4) float64: a gentle sideways drift with a slight pan and bob, frame 0 = identity."""
    poses = torch.eye(4, dtype=torch.float64).repeat(frames, 1, 1)
    for i in range(frames):
        s = i / max(frames - 1, 1)
        yaw = math.radians(2.5 * math.sin(math.pi * s))
        poses[i, :3, :3] = torch.tensor([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0],
                                         [-math.sin(yaw), 0, math.cos(yaw)]], dtype=torch.float64)
        poses[i, :3, 3] = torch.tensor([0.35 * s, -0.04 * math.sin(2 * math.pi * s), 0.15 * s])
    return poses


def intrinsics() -> torch.Tensor:
    """K (3, 3) in pixels; principal point at (W/2, H/2) as the official pipeline assumes."""
    return torch.tensor([[FOCAL, 0, WIDTH / 2], [0, FOCAL, HEIGHT / 2], [0, 0, 1]], dtype=torch.float64)


def _rays(c2w: torch.Tensor, supersample: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """World-space ray origins/directions for pixel samples, and each direction's camera z component."""
    offsets = (torch.arange(supersample, dtype=torch.float64) + 0.5) / supersample - 0.5 if supersample > 1 \
        else torch.zeros(1, dtype=torch.float64)
    v, u = torch.meshgrid(torch.arange(HEIGHT, dtype=torch.float64), torch.arange(WIDTH, dtype=torch.float64),
                          indexing="ij")
    u = (u[..., None, None] + offsets[None, :]).reshape(HEIGHT, WIDTH, -1)
    v = (v[..., None, None] + offsets[:, None]).reshape(HEIGHT, WIDTH, -1)
    d_cam = torch.stack([(u - WIDTH / 2) / FOCAL, (v - HEIGHT / 2) / FOCAL, torch.ones_like(u)], -1)
    d_world = d_cam @ c2w[:3, :3].T
    origin = c2w[:3, 3].expand_as(d_world)
    return origin, d_world, d_cam[..., 2]


def _hit_room(o: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distance along d to the room's inner walls, the wall normal and a surface id (0 floor .. 5)."""
    best = torch.full(o.shape[:-1], math.inf, dtype=o.dtype)
    normal = torch.zeros_like(o)
    sid = torch.zeros(o.shape[:-1], dtype=torch.long)
    for axis, name in enumerate("xyz"):
        for side, bound in enumerate(ROOM[name]):
            t = (bound - o[..., axis]) / d[..., axis]
            ok = (t > 1e-6) & (t < best)
            best = torch.where(ok, t, best)
            n = torch.zeros(3, dtype=o.dtype)
            n[axis] = 1.0 if side == 0 else -1.0
            normal = torch.where(ok[..., None], n, normal)
            sid = torch.where(ok, torch.tensor(axis * 2 + side), sid)
    return best, normal, sid


def _hit_box(o: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    lo, hi = (torch.tensor(c, dtype=o.dtype) for c in BOX)
    t0, t1 = (lo - o) / d, (hi - o) / d
    tmin, tmax = torch.minimum(t0, t1), torch.maximum(t0, t1)
    near, axis = tmin.max(-1)
    far = tmax.min(-1).values
    hit = (near <= far) & (near > 1e-6)
    normal = torch.nn.functional.one_hot(axis, 3).to(o.dtype) * -torch.sign(d)
    return torch.where(hit, near, torch.full_like(near, math.inf)), normal


def _hit_sphere(o: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    centre, radius = torch.tensor(SPHERE[0], dtype=o.dtype), SPHERE[1]
    oc = o - centre
    a = (d * d).sum(-1)
    b = 2 * (oc * d).sum(-1)
    c = (oc * oc).sum(-1) - radius**2
    disc = b * b - 4 * a * c
    t = (-b - disc.clamp(min=0).sqrt()) / (2 * a)
    t = torch.where((disc >= 0) & (t > 1e-6), t, torch.full_like(t, math.inf))
    point = o + d * torch.where(torch.isfinite(t), t, torch.zeros_like(t))[..., None]
    return t, (point - centre) / radius


def _hit_pillar(o: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    (cx, cz), radius = PILLAR
    ox, oz, dx, dz = o[..., 0] - cx, o[..., 2] - cz, d[..., 0], d[..., 2]
    a = dx * dx + dz * dz
    b = 2 * (ox * dx + oz * dz)
    c = ox * ox + oz * oz - radius**2
    disc = b * b - 4 * a * c
    t = (-b - disc.clamp(min=0).sqrt()) / (2 * a)
    t = torch.where((disc >= 0) & (t > 1e-6), t, torch.full_like(t, math.inf))
    px = ox + dx * torch.where(torch.isfinite(t), t, torch.zeros_like(t))
    pz = oz + dz * torch.where(torch.isfinite(t), t, torch.zeros_like(t))
    return t, torch.stack([px / radius, torch.zeros_like(px), pz / radius], -1)


def _texture(p: torch.Tensor, sid: torch.Tensor) -> torch.Tensor:
    """Albedo (..., 3) in [0, 1] from world position and surface id (room 0-5, box 6, sphere 7, pillar 8)."""
    x, y, z = p.unbind(-1)
    checker = ((torch.floor(x * 2) + torch.floor(z * 2)) % 2)[..., None]
    floor = torch.tensor([0.55, 0.38, 0.22]) + 0.18 * checker * torch.tensor([1.0, 0.9, 0.7])
    grain = 0.05 * torch.sin(z * 40 + 3 * torch.sin(x * 7))[..., None]
    stripes = (0.5 + 0.5 * torch.sin(x * 9 + z * 9))[..., None]
    wall = torch.tensor([0.62, 0.66, 0.72]) + 0.12 * stripes * torch.tensor([0.4, 0.2, -0.3])
    tiles = ((torch.floor(x * 3) + torch.floor(y * 3)) % 2)[..., None]
    back = torch.tensor([0.35, 0.5, 0.62]) + 0.2 * tiles
    ceiling = torch.full_like(p, 0.85)
    box = torch.tensor([0.75, 0.25, 0.2]) + 0.2 * (((torch.floor(x * 8) + torch.floor(y * 8) + torch.floor(z * 8)) % 2)[..., None])
    sphere = torch.tensor([0.2, 0.6, 0.3]) + 0.25 * (0.5 + 0.5 * torch.sin(y * 25))[..., None]
    pillar = torch.tensor([0.9, 0.8, 0.35]) - 0.3 * ((torch.floor(y * 4) % 2)[..., None])
    choices = [wall, wall, ceiling, floor + grain, back, back, box, sphere, pillar]
    out = torch.zeros_like(p)
    for index, albedo in enumerate(choices):
        out = torch.where((sid == index)[..., None], albedo.expand_as(p), out)
    return out.clamp(0, 1)


def _trace(o: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest hit along each ray: distance, surface normal and surface id."""
    t, normal, sid = _hit_room(o, d)
    for index, (tt, nn) in zip((6, 7, 8), (_hit_box(o, d), _hit_sphere(o, d), _hit_pillar(o, d))):
        closer = tt < t
        t = torch.where(closer, tt, t)
        normal = torch.where(closer[..., None], nn, normal)
        sid = torch.where(closer, torch.tensor(index), sid)
    return t, normal, sid


def render(c2w: torch.Tensor, supersample: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """One view: uint8 image (H, W, 3), antialiased with supersample^2 rays per pixel, and the z-depth
    (H, W) float32 in metres at the integer pixel positions (the convention of the warp)."""
    o, d, _ = _rays(c2w, supersample)
    t, normal, sid = _trace(o, d)
    light = LIGHT / LIGHT.norm()
    shade = 0.45 + 0.55 * (normal * -light).sum(-1).clamp(min=0)
    rgb = (_texture(o + d * t[..., None], sid) * shade[..., None]).mean(-2)
    image = (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    o1, d1, dz1 = _rays(c2w, 1)
    depth = (_trace(o1, d1)[0] * dz1)[..., 0]
    return image, depth.float()


def write_depth(path: Path, depths: torch.Tensor, poses: torch.Tensor) -> None:
    """The ground-truth depth file of the views ``poses`` (T, 4, 4) with z-depths ``depths`` (T, H, W)."""
    K = intrinsics().float().expand(len(poses), 3, 3).clone()
    DepthResult(depth=depths, K=K, c2w=poses.float(),
                meta={"model": "ground-truth (synthetic render)", "units": "metric",
                      "source": "examples/make_example.py"}).save(path, depth_dtype=torch.float16)


def write_still(folder: Path, image: torch.Tensor, depth: torch.Tensor, pose: torch.Tensor) -> Path:
    """The view ``image`` (H, W, 3) uint8 as ``room_frame.png`` with its one-frame sidecar depth file."""
    path = folder / "room_frame.png"
    Image.fromarray(image.numpy()).save(path, optimize=True)
    write_depth(folder / "room_frame.depth.safetensors.gz", depth[None], pose[None])
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--fps", type=float, default=24.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    poses = camera_path(args.frames)
    images, depths = zip(*(render(pose) for pose in poses))
    video_path = args.out / "room.mp4"
    depth_path = args.out / "room.depth.safetensors.gz"
    write_video(video_path, torch.stack(images).numpy(), args.fps, crf=20)
    write_depth(depth_path, torch.stack(depths), poses)
    still = write_still(args.out, images[0], depths[0], poses[0])
    print(f"wrote {video_path} and {depth_path} ({args.frames} frames), and {still}")


if __name__ == "__main__":
    main()
