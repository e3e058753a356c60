"""Mip-Splatting's 3D smoothing filter (Yu et al., CVPR 2024, §4.1).

A photo cannot show detail finer than one of its pixels, so nothing constrains a Gaussian narrower
than the footprint of one pixel at its depth in the training camera that sees it most sharply;
from few views such Gaussians become sharp texture in the wrong place. The filter convolves each
Gaussian with an isotropic Gaussian of standard deviation k × that footprint: the covariance gains
(k·footprint)² I, and the opacity shrinks by sqrt(det Σ / det Σ') so the Gaussian's integral is kept.
As Mip-Splatting, the footprint is recomputed now and then (Gaussians move) and the filter is baked
into the saved splat, so any 3DGS viewer shows what training saw.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from recon.scene import Camera
from recon.train.part import Part, TrainerView

REFRESH_EVERY = 100
"""Steps between recomputing the footprints (Gaussians move; Mip-Splatting: 100)."""


@torch.no_grad()
def pixel_footprint(means: Tensor, cameras: list[Camera], margin: float = 0.15) -> Tensor:
    """[N] world-space width of one pixel at each mean [N,3], in the training camera that sees it
    largest (depth / focal, smallest over the cameras whose image, grown by `margin`, holds it).
    Gaussians no camera sees get the largest footprint among those seen, as Mip-Splatting does."""
    pts = means.detach().cpu().double().numpy()
    best = np.full(len(pts), np.inf)
    for cam in cameras:
        pix, z = cam.project(pts)
        mw, mh = margin * cam.width, margin * cam.height
        with np.errstate(invalid="ignore"):
            seen = (z > 1e-6) & (pix[:, 0] >= -mw) & (pix[:, 0] <= cam.width + mw) \
                & (pix[:, 1] >= -mh) & (pix[:, 1] <= cam.height + mh)
        focal = 0.5 * (cam.K[0, 0] + cam.K[1, 1])
        best = np.where(seen, np.minimum(best, z / focal), best)
    finite = np.isfinite(best)
    best = np.where(finite, best, best[finite].max() if finite.any() else 0.0)
    return torch.from_numpy(best).to(device=means.device, dtype=means.dtype)


def apply_filter(log_scales: Tensor, logit_opacities: Tensor, variance: Tensor) -> tuple[Tensor, Tensor]:
    """(scales [N,3], opacities [N]) activated, after adding `variance` [N] to every axis of the
    covariance and rescaling opacity to keep each Gaussian's integral (differentiable)."""
    s2 = torch.exp(2 * log_scales)
    s2f = s2 + variance[:, None]
    ratio = torch.prod(s2 / s2f, dim=-1).clamp_min(1e-12)
    return torch.sqrt(s2f), torch.sigmoid(logit_opacities) * torch.sqrt(ratio)


def filter_variance(means: Tensor, cameras: list[Camera], k: float) -> Tensor:
    """[N] the variance the filter adds: (k × pixel footprint)²."""
    return (k * pixel_footprint(means, cameras)) ** 2


@torch.no_grad()
def bake(params: dict[str, Tensor], variance: Tensor) -> None:
    """Write the filtered scales and opacities into `params` (pre-activation, in place)."""
    scales, opac = apply_filter(params["scales"], params["opacities"], variance)
    params["scales"].data.copy_(torch.log(scales))
    opac = opac.clamp(1e-6, 1 - 1e-6)
    params["opacities"].data.copy_(torch.log(opac) - torch.log1p(-opac))


class Filter3D(Part):
    """The filter as a part of the Trainer: switched on in the splat at setup, its footprints
    recomputed every REFRESH_EVERY steps (and whenever densification replaced the Gaussians)."""

    name = "3D filter"

    def __init__(self, k: float) -> None:
        self.k = k

    def setup(self, trainer: TrainerView) -> None:
        trainer.splat.enable_filter(self.k)

    def after_step(self, trainer: TrainerView) -> None:
        if trainer.step % REFRESH_EVERY == 0:
            trainer.splat.refresh_filter(force=True)
