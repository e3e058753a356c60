"""Losses for optimisation (metrics for evaluation live in recon.eval.metrics): the photometric
loss, and the few-view regularisers, each a function of what the renderer or the parameters give."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _gaussian_window(size: int = 11, sigma: float = 1.5, device: torch.device | None = None) -> Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim_map(a: Tensor, b: Tensor, window: int = 11) -> Tensor:
    """Per-pixel SSIM [B,C,H-10,W-10] of two image batches [B,H,W,C] in [0,1] (Gaussian window
    11, σ 1.5, valid region; 3DGS's training loss). A separable blur keeps it cheap on CPU."""
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
    return ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))


def ssim(a: Tensor, b: Tensor, window: int = 11) -> Tensor:
    """Mean SSIM of two image batches [B,H,W,C] in [0,1] (see `ssim_map`)."""
    return ssim_map(a, b, window).mean()


def photometric_loss(render: Tensor, target: Tensor, ssim_lambda: float, weight: Tensor | None = None) -> Tensor:
    """(1-λ)·L1 + λ·(1-SSIM), 3DGS's loss. render/target: [B,H,W,3]. weight [H,W] (≥ 0, optional):
    per-pixel loss weights (a filter's trust map, a repaired view's confidence); both terms become
    weighted means, so a weight map of ones gives the plain loss.

    Training on the CPU without weights takes recon.l1_ssim's fused numba pass (loss and
    gradient at once, ~4× faster than these torch ops on 2 cores; the same values to float
    rounding, tests/test_l1_ssim.py)."""
    if weight is None and ssim_lambda > 0 and render.requires_grad and torch.is_grad_enabled():
        from recon import l1_ssim

        if l1_ssim.fits(render, target):
            return l1_ssim.l1_ssim_loss(render, target, ssim_lambda)
    if weight is None:
        l1 = (render - target).abs().mean()
    else:
        w = weight.reshape(1, *render.shape[1:3], 1)
        l1 = (w * (render - target).abs()).sum() / (w.sum() * render.shape[-1]).clamp_min(1e-8)
    if ssim_lambda <= 0:
        return l1
    if weight is None:
        s = ssim(render, target)
    else:
        m, half = ssim_map(render, target), 5  # the valid region of the 11-px window
        w = weight[half:weight.shape[0] - half, half:weight.shape[1] - half][None, None]
        s = (w * m).sum() / (w.sum() * m.shape[1]).clamp_min(1e-8)
    return (1 - ssim_lambda) * l1 + ssim_lambda * (1 - s)


def psnr(a: Tensor, b: Tensor) -> Tensor:
    mse = ((a - b) ** 2).mean().clamp_min(1e-10)
    return -10 * torch.log10(mse)


def depth_smoothness(depth: Tensor, image: Tensor | None = None, alpha: Tensor | None = None) -> Tensor:
    """Edge-aware smoothness of a rendered depth map (Monodepth / RegNeRF style): the mean
    |∂depth| between neighbouring pixels, down-weighted by exp(-mean |∂image|·10) across image
    edges, and only between pixels that are both covered (alpha > 0.5) when alpha is given.
    Depth is divided by its mean first, so the weight does not depend on the scene's units.
    depth/alpha [B,H,W,1], image [B,H,W,3]."""
    d = depth / depth.detach().mean().clamp_min(1e-8)
    total = depth.new_zeros(())
    for dim in (1, 2):
        n = d.shape[dim] - 1
        dd = (d.narrow(dim, 1, n) - d.narrow(dim, 0, n)).abs()
        w = torch.ones_like(dd)
        if image is not None:
            di = (image.narrow(dim, 1, n) - image.narrow(dim, 0, n)).abs().mean(-1, keepdim=True)
            w = torch.exp(-10 * di)
        if alpha is not None:
            a = alpha.detach()
            w = w * ((a.narrow(dim, 1, n) > 0.5) & (a.narrow(dim, 0, n) > 0.5)).float()
        total = total + (w * dd).sum() / w.sum().clamp_min(1.0)
    return total


def pearson_depth_loss(depth: Tensor, prior: Tensor, mask: Tensor | None = None) -> Tensor:
    """1 − |Pearson correlation| between a rendered depth [H,W] and a monocular prior [H,W]
    (relative inverse depth, so the sign is free and scale and shift do not matter: FSGS, SparseGS)."""
    d, p = depth.reshape(-1), prior.reshape(-1)
    if mask is not None:
        m = mask.reshape(-1)
        d, p = d[m], p[m]
    if d.numel() < 2:
        return depth.new_zeros(())
    d = d - d.mean()
    p = p - p.mean()
    corr = (d * p).sum() / (d.norm() * p.norm()).clamp_min(1e-8)
    return 1 - corr.abs()
