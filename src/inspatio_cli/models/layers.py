"""Building blocks shared by several models (the DiT and the umT5 text encoder), defined once so that the
same math runs in both."""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    """RMS normalisation over the last dim, statistics in fp32, result cast back and scaled by ``weight``
    (the DiT's q/k norms and every umT5 norm: the official code computes both this way). ``x (..., dim)``
    -> the same shape and dtype."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight
