"""Image losses for optimisation (metrics for evaluation live in recon.eval.metrics)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _gaussian_window(size: int = 11, sigma: float = 1.5, device: torch.device | None = None) -> Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(a: Tensor, b: Tensor, window: int = 11) -> Tensor:
    """Mean SSIM of two image batches [B,H,W,C] in [0,1] (Gaussian window 11, σ 1.5, valid
    region; the same definition as 3DGS's training loss). A separable blur keeps it cheap on CPU."""
    x, y = a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2)
    c = x.shape[1]
    g = _gaussian_window(window, device=x.device)
    kx = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    ky = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(F.conv2d(t, kx, groups=c), ky, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.mean()


def photometric_loss(render: Tensor, target: Tensor, ssim_lambda: float) -> Tensor:
    """(1-λ)·L1 + λ·(1-SSIM), 3DGS's loss. render/target: [B,H,W,3]."""
    l1 = (render - target).abs().mean()
    if ssim_lambda <= 0:
        return l1
    return (1 - ssim_lambda) * l1 + ssim_lambda * (1 - ssim(render, target))


def psnr(a: Tensor, b: Tensor) -> Tensor:
    mse = ((a - b) ** 2).mean().clamp_min(1e-10)
    return -10 * torch.log10(mse)
