"""Dense pure-torch compositing: the test oracle and a fallback for tiny scenes.

Every pixel looks at every visible Gaussian (chunked over pixels, with activation checkpointing
so memory stays O(chunk · N) rather than O(pixels · N)); autograd gives the gradients. Slow by
design: it states the semantics plainly so the fast kernels can be checked against it.
Semantics (gsplat 1.5.3 rasterize_to_pixels): pixel centres at +0.5; alpha = min(0.999, o·e^−σ);
a Gaussian is skipped where σ < 0 or alpha < 1/255; front to back by depth (stable on ties, as
gsplat's radix sort over Gaussian index); compositing stops *before* the Gaussian that would bring
the transmittance to ≤ 1e-4.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from .projection import ALPHA_THRESHOLD

T_EPS = 1e-4
MAX_ALPHA = 0.999
CHUNK_ELEMENTS = 1 << 21  # pixels × Gaussians per chunk


def rasterize_to_pixels_dense(
    means2d: Tensor,  # [C,N,2]
    conics: Tensor,  # [C,N,3]
    colors: Tensor,  # [C,N,D]
    opacities: Tensor,  # [C,N]
    depths: Tensor,  # [C,N]
    radii: Tensor,  # [C,N,2] int32, 0 = culled
    width: int,
    height: int,
) -> tuple[Tensor, Tensor]:
    """→ renders [C,H,W,D] (no background), alphas [C,H,W,1]."""
    C, _, D = colors.shape
    renders, alphas = [], []
    for c in range(C):
        ids = torch.nonzero((radii[c] > 0).all(dim=-1)).squeeze(-1)
        order = torch.sort(depths[c, ids].detach(), stable=True).indices
        ids = ids[order]
        r, a = _render_camera(
            means2d[c, ids], conics[c, ids], colors[c, ids], opacities[c, ids], width, height
        )
        renders.append(r.reshape(height, width, D))
        alphas.append(a.reshape(height, width, 1))
    return torch.stack(renders), torch.stack(alphas)


def _render_camera(
    means2d: Tensor, conics: Tensor, colors: Tensor, opacities: Tensor, width: int, height: int
) -> tuple[Tensor, Tensor]:
    """Sorted visible Gaussians [M,...] → colour [H·W,D], alpha [H·W]."""
    dtype, device = means2d.dtype, means2d.device
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=dtype, device=device) + 0.5,
        torch.arange(width, dtype=dtype, device=device) + 0.5,
        indexing="ij",
    )
    pix = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)  # [P,2]
    M = means2d.shape[0]
    if M == 0:
        # Nothing visible: zeros, still attached to the graph so backward() works (and gives 0).
        zeros = torch.zeros(pix.shape[0], dtype=dtype, device=device)
        return zeros[:, None].expand(-1, colors.shape[-1]) + colors.sum() * 0, zeros
    chunk = max(1, CHUNK_ELEMENTS // M)
    use_ckpt = torch.is_grad_enabled() and any(
        t.requires_grad for t in (means2d, conics, colors, opacities)
    )
    outs_c, outs_a = [], []
    for start in range(0, pix.shape[0], chunk):
        args = (pix[start : start + chunk], means2d, conics, colors, opacities)
        if use_ckpt:
            col, alpha = checkpoint(_composite, *args, use_reentrant=False)
        else:
            col, alpha = _composite(*args)
        outs_c.append(col)
        outs_a.append(alpha)
    return torch.cat(outs_c), torch.cat(outs_a)


def _composite(
    pix: Tensor, means2d: Tensor, conics: Tensor, colors: Tensor, opacities: Tensor
) -> tuple[Tensor, Tensor]:
    """pix [P,2], sorted Gaussians [M,...] → colour [P,D], alpha [P]."""
    d = means2d[None, :, :] - pix[:, None, :]  # [P,M,2]
    dx, dy = d[..., 0], d[..., 1]
    a, b, c = conics.unbind(-1)
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha = torch.clamp_max(opacities * torch.exp(-sigma), MAX_ALPHA)
    hit = (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
    alpha = torch.where(hit, alpha, torch.zeros_like(alpha))
    with torch.no_grad():
        # T after each Gaussian if every earlier hit were composited; T only falls, so the first
        # Gaussian whose "next T" is ≤ 1e-4 and everything behind it are exactly the ones that
        # the sequential loop never composites.
        next_t = torch.cumprod(1 - alpha, dim=1)
        used = hit & (next_t > T_EPS)
    alpha = torch.where(used, alpha, torch.zeros_like(alpha))
    one_minus = 1 - alpha  # ≥ 0.001, so cumprod's backward never divides by zero
    trans = torch.cumprod(one_minus, dim=1)
    t_before = torch.cat([torch.ones_like(trans[:, :1]), trans[:, :-1]], dim=1)
    weights = alpha * t_before  # [P,M]
    return weights @ colors, 1 - trans[:, -1]
