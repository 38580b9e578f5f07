"""Shifted flow-matching schedule of the distilled generator (REFERENCE.md section 12).

A latent at time t is ``x_t = (1 - sigma(t)) x0 + sigma(t) noise``; the DiT predicts the flow
``noise - x0``. The table has 1000 entries ``sigma = shift s / (1 + (shift - 1) s)`` for
``s = linspace(1, 0, 1001)[:-1]`` (float32) and ``t = 1000 sigma``. Sigma at any t is the entry of the nearest
table t. The 4 distilled steps are the "warped" list ``[1000, 937.5, 833.33, 625]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import torch

DISTILLED_STEPS = (1000, 750, 500, 250)


@dataclass(frozen=True)
class FlowMatchScheduler:
    """The flow-matching tables (shift 5 for InSpatio-World) and the conversions the sampler needs."""

    shift: float = 5.0
    num_train_timesteps: int = 1000

    @cached_property
    def sigmas(self) -> torch.Tensor:
        """(num_train_timesteps,) float32, from 1.0 down, in the official operation order."""
        s = torch.linspace(1.0, 0.0, self.num_train_timesteps + 1, dtype=torch.float32)[:-1]
        return self.shift * s / (1 + (self.shift - 1) * s)

    @cached_property
    def timesteps(self) -> torch.Tensor:
        """(num_train_timesteps,) float32 model timesteps ``num_train_timesteps * sigma``."""
        return self.sigmas * self.num_train_timesteps

    def denoising_steps(self, steps: Sequence[int] = DISTILLED_STEPS, warp: bool = True) -> torch.Tensor:
        """The timesteps of the sampling steps, float32 (4,) by default.

        With ``warp`` (the shipped config) step ``k`` becomes the table timestep at index
        ``num_train_timesteps - k`` (0 appended at the end of the table): [1000, 937.5, 833.3333, 625].
        """
        steps_t = torch.as_tensor(list(steps), dtype=torch.long)
        if not warp:
            return steps_t.to(torch.float32)
        table = torch.cat([self.timesteps, torch.zeros(1)])
        return table[self.num_train_timesteps - steps_t]

    def sigma(self, t: torch.Tensor | float) -> torch.Tensor:
        """Sigma of the table entry nearest to each t (float32, t's shape), found in float64."""
        t = torch.as_tensor(t)
        flat = t.reshape(-1, 1).to(device="cpu", dtype=torch.float64)
        index = (self.timesteps.to(torch.float64)[None, :] - flat).abs().argmin(dim=1)
        return self.sigmas[index].reshape(t.shape).to(t.device)

    @staticmethod
    def _rows(sigma: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Broadcast one sigma per leading row of ``like`` (or a single sigma) over its other dims."""
        if sigma.ndim == 0:
            return sigma.to(like.device)
        return sigma.reshape(-1, *([1] * (like.ndim - 1))).to(like.device)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """``(1 - sigma) x0 + sigma noise`` in float32, cast to x0's dtype (the official re-noising precision).

        t is a scalar or one value per leading row of x0 (for example (B*F,) for (B*F, C, H, W)).
        """
        s = self._rows(self.sigma(t), x0)
        return ((1 - s) * x0.float() + s * noise.float()).to(x0.dtype)

    def x0_from_flow(self, flow: torch.Tensor, xt: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """``x_t - sigma flow`` computed in float64, cast to flow's dtype: the clean latent the flow implies."""
        s = self._rows(self.sigma(t), flow).to(torch.float64)
        return (xt.to(torch.float64) - s * flow.to(torch.float64)).to(flow.dtype)
