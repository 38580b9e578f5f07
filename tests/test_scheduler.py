"""Flow-matching scheduler: the distilled step list, nearest-entry sigma lookup, and the precisions of the
two conversions (the golden case checks the float32 values)."""

from __future__ import annotations

import torch

from inspatio_cli.generate import FlowMatchScheduler

S = FlowMatchScheduler()


def test_tables_and_steps() -> None:
    assert S.sigmas.dtype == S.timesteps.dtype == torch.float32 and S.sigmas.shape == (1000,)
    assert S.timesteps[0] == 1000.0 and 4.9 < S.timesteps[-1] < 5.0
    assert S.denoising_steps().tolist() == [1000.0, 937.5, 833.3333129882812, 625.0]
    assert S.sigma(S.denoising_steps()).tolist() == [1.0, 0.9375, 0.8333333134651184, 0.625]
    assert S.denoising_steps(warp=False).tolist() == [1000.0, 750.0, 500.0, 250.0]
    # nearest table entry: t=0 maps to the last entry, not to sigma 0
    assert S.sigma(0.0) == S.sigmas[-1] and S.sigma(torch.tensor([[999.0]])).shape == (1, 1)


def test_conversions_invert_each_other_and_keep_dtype() -> None:
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 3, 16, 4, 6, generator=g), torch.randn(2, 3, 16, 4, 6, generator=g)
    for t in (1000.0, 833.3333129882812, 625.0):
        xt = S.add_noise(x0, noise, t)
        torch.testing.assert_close(S.x0_from_flow(noise - x0, xt, t), x0, atol=1e-5, rtol=1e-5)
    rows = torch.tensor([1000.0, 625.0])
    per_row = S.add_noise(x0, noise, rows)
    torch.testing.assert_close(per_row[1], S.add_noise(x0[1:], noise[1:], 625.0)[0])
    # bf16 latents: re-noising is computed in float32 and rounded once; x0 in float64 and rounded once
    xb, nb = x0.bfloat16(), noise.bfloat16()
    out = S.add_noise(xb, nb, 937.5)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, (0.0625 * xb.float() + 0.9375 * nb.float()).bfloat16())
    x0b = S.x0_from_flow(nb, xb, 937.5)
    assert x0b.dtype == torch.bfloat16
    assert torch.equal(x0b, (xb.double() - 0.9375 * nb.double()).bfloat16())
