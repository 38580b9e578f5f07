"""Per-frame cameras for the warper, computed exactly as the official render path does
(trajectory.md sections 4-5, REFERENCE.md 4.4 and 5.1).

With ``S_i`` the source camera-to-world poses, ``C0 = S_0`` (the first *original* source frame, whatever
the time map does) and ``rel_k`` the trajectory's pose of output frame ``k`` showing source frame
``s = time_map[k]``:

* default: ``target_c2w_k = C0^-1 @ rel_k`` (a fixed path around the first view);
* ``relative_to_source``: ``target_c2w_k = (C0^-1 @ S_s) @ (C0^-1 @ rel_k)`` (the path rides on the
  moving source camera);
* the warper receives ``source_w2c_k = S_s^-1`` and ``target_w2c_k = target_c2w_k^-1``.

Everything is float32 with the official operations (:func:`render_cameras` says why).

The official code mixes ``C0`` and ``C0^-1`` (frame 0 of the default mode is warped by ``C0 @ C0``, not
the identity); this is reproduced because the trained model saw it, and it is harmless as the depth
stage normalises ``C0`` to (nearly) the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..choices import MODEL_SIZE
from ..errors import UsageError
from .official import recenter_K
from .trajectory import Trajectory


@dataclass(frozen=True)
class RenderCameras:
    """Per output frame, float32 tensors for the warper.

    ``source_w2c (N, 4, 4)``: the camera of the source frame shown (``time_map``); ``target_w2c (N, 4, 4)``
    and ``target_c2w (N, 4, 4)``: the new camera; ``K (N, 3, 3)``: the intrinsics of the source frames,
    recentred as the official renderer does, which the official warper also uses for the target;
    ``target_K (N, 3, 3)``: the target's intrinsics (equal to ``K`` unless the trajectory animates them);
    ``source_index (N,)`` int64: the time map (which frame and depth map to warp).
    """

    source_w2c: torch.Tensor
    target_w2c: torch.Tensor
    target_c2w: torch.Tensor
    K: torch.Tensor
    target_K: torch.Tensor
    source_index: torch.Tensor


def _as_f32(x) -> torch.Tensor:
    """A tensor or array as a float32 CPU tensor."""
    return x.detach().cpu().float() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x, np.float32))


def render_cameras(trajectory: Trajectory, source_c2w, K, *, relative_to_source: bool = False,
                   width: int = MODEL_SIZE[1], height: int = MODEL_SIZE[0], per_frame_K: bool = False
                   ) -> RenderCameras:
    """Source and target cameras of every output frame of ``trajectory`` (see the module docstring).

    ``source_c2w (T, 4, 4)``: the depth stage's source poses (OpenCV c2w, e.g. ``DepthResult.c2w``; for
    the official ``extrinsic.txt`` pass ``inv(w2c)`` computed in float32); ``K (3, 3)`` or ``(T, 3, 3)`` in
    pixels of ``width x height``. As in the official code, frame 0's K is used for every frame unless
    ``per_frame_K`` asks for each shown frame's own K.

    Composed in float32 with the official operations (general 4x4 inverses, and the relative mode as
    ``inv(inv(C0^-1 rel) @ inv(C0^-1 S))``): this reproduces the official render cameras bit for bit,
    where a float64 composition differs in the last bit of about half the entries, which moves
    near-integer splats and changes about 3% of the 8-bit warped values. Float64 would gain nothing for
    other trajectory formats either, as the warper itself runs in float32.
    """
    S = _as_f32(source_c2w)
    if S.ndim != 3 or S.shape[1:] != (4, 4):
        raise UsageError(f"source_c2w must have shape (T, 4, 4), got {tuple(S.shape)}")
    tm = trajectory.time_map
    if trajectory.num_source_frames != len(S):
        raise UsageError(f"the trajectory was resolved for {trajectory.num_source_frames} source frames "
                         f"but {len(S)} source cameras were given")
    K_in = _as_f32(K)
    K_all = K_in[None] if K_in.shape == (3, 3) else K_in
    if K_all.ndim != 3 or K_all.shape[1:] != (3, 3) or len(K_all) not in (1, len(S)):
        raise UsageError(f"K must have shape (3, 3) or ({len(S)}, 3, 3), got {tuple(K_in.shape)}")
    Kr = torch.from_numpy(recenter_K(K_all.numpy(), width, height))
    K_frames = Kr[tm] if per_frame_K and len(Kr) > 1 else Kr[:1].expand(len(tm), 3, 3).clone()

    S_k = S[tm]
    C0_inv = torch.linalg.inv(S[0])
    target_c2w = C0_inv @ trajectory.rel_c2w.float()
    if relative_to_source:
        target_c2w = torch.linalg.inv(torch.linalg.inv(target_c2w) @ torch.linalg.inv(C0_inv @ S_k))
    target_K = trajectory.K_at((height, width))
    return RenderCameras(
        source_w2c=torch.linalg.inv(S_k),
        target_w2c=torch.linalg.inv(target_c2w),
        target_c2w=target_c2w,
        K=K_frames,
        target_K=K_frames.clone() if target_K is None else target_K.float(),
        source_index=tm.clone(),
    )
