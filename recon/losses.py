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


def opacity_entropy(opacities: Tensor) -> Tensor:
    """Mean binary entropy of opacities [N] in (0,1): lowest at 0 and 1. Few views leave many
    half-transparent Gaussians that fit the training views together but show as haze elsewhere;
    this pushes each to be either solid or gone."""
    o = opacities.clamp(1e-6, 1 - 1e-6)
    return -(o * torch.log(o) + (1 - o) * torch.log(1 - o)).mean()


def scale_penalty(log_scales: Tensor, max_scale: float, max_ratio: float) -> Tensor:
    """Penalty on Gaussians larger than `max_scale` (world units) or more needle-like than
    `max_ratio` (largest / middle axis). log_scales [N,3]. Large Gaussians and needles fit three
    views (a needle along a training ray looks like a dot) but streak across novel ones. Flat
    discs (two long axes, one short) are what surfaces are made of, so the shortest axis is free."""
    s = torch.exp(log_scales).sort(-1).values  # [N,3] ascending
    big = F.relu(s[:, 2] - max_scale) / max_scale
    ratio = F.relu(s[:, 2] / s[:, 1].clamp_min(1e-12) - max_ratio)
    return big.mean() + ratio.mean() / max_ratio


def flatness(log_scales: Tensor) -> Tensor:
    """Mean ratio of the shortest to the middle axis, log_scales [N,3] (0 = flat discs, 1 = balls).
    A surface is best made of discs lying in it (2DGS, Gaussian surfels): a ball that fits the
    training views from its front sticks out of the surface and lands in the wrong pixels from
    other angles."""
    s = torch.exp(log_scales).sort(-1).values
    return (s[:, 0] / s[:, 1].clamp_min(1e-12)).mean()


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
