"""recon.l1_ssim's fused CPU loss against the torch definition in recon.losses."""

from __future__ import annotations

import pytest
import torch

from recon import l1_ssim, losses


def _torch_loss(x: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    l1 = (x - y).abs().mean()
    return (1 - lam) * l1 + lam * (1 - losses.ssim(x, y))


@pytest.mark.parametrize("shape", [(1, 40, 27, 3), (1, 23, 17, 4), (1, 11, 11, 1)])
def test_matches_torch_loss_and_gradient(shape):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.rand(shape, generator=g, requires_grad=True)
    y = torch.rand(shape, generator=g)
    y[0, :3] = x.detach()[0, :3]  # ties: the L1's gradient is 0 there, as torch's abs
    ref = _torch_loss(x, y, 0.2)
    (g_ref,) = torch.autograd.grad(ref, x)
    out = l1_ssim.l1_ssim_loss(x, y, 0.2)
    (g_out,) = torch.autograd.grad(out * 3.0, x)  # the incoming gradient scales it
    assert abs(out.item() - ref.item()) < 1e-6
    assert ((g_out - 3.0 * g_ref).norm() / (3.0 * g_ref).norm()).item() < 1e-5


def test_photometric_loss_takes_the_fused_path_only_for_training():
    x = torch.rand(1, 30, 20, 3, requires_grad=True)
    y = torch.rand(1, 30, 20, 3)
    fused = losses.photometric_loss(x, y, 0.2)
    assert fused.grad_fn is not None and "L1SSIM" in type(fused.grad_fn).__name__
    with torch.no_grad():
        plain = losses.photometric_loss(x, y, 0.2)
    assert abs(plain.item() - fused.item()) < 1e-6
    weighted = losses.photometric_loss(x, y, 0.2, torch.ones(30, 20))
    assert "L1SSIM" not in type(weighted.grad_fn).__name__
    assert abs(weighted.item() - fused.item()) < 1e-6


def test_float64_gradcheck():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 12, 13, 2, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 12, 13, 2, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: l1_ssim.l1_ssim_loss(a, y, 0.3), (x,), eps=1e-6, atol=1e-6)
