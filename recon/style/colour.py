"""Colour transfer in CIE Lab, applied to a splat's colours.

The colours of the splat (pixels of its renders, or any samples) and of the style image are each
summarised by their Lab mean and covariance; an affine map x ↦ A x + b in Lab moves the first to
the second:
  reinhard      A diagonal: per-channel mean and standard deviation (Reinhard et al. 2001)
  covariance    the linear Monge–Kantorovich map, the optimal-transport map between two Gaussians:
                A = Σs^-½ (Σs^½ Σt Σs^½)^½ Σs^-½ (Pitié & Kokaram 2007); it matches the whole
                covariance, so correlations between lightness and hue move too
Lab is perceptual, so matching statistics there moves what a person sees; the map itself is then
non-linear in RGB, f(c) = rgb(A·lab(c) + b).

On the splat: the DC term (the view-independent colour) is mapped by f. The higher SH bands add a
small view-dependent offset δ to it; f(c + δ) ≈ f(c) + J_f(c)·δ, so every higher coefficient is
multiplied by the Jacobian J_f at the Gaussian's base colour. Applied to the Gaussians themselves,
the transfer is the same from every viewpoint by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from recon.errors import ReconError
from recon.gaussians import Gaussians, rgb_to_sh0, sh0_to_rgb
from recon.scene import Camera
from recon.render.views import render_rgbd, shrink

ColourMap = Literal["covariance", "reinhard"]

# sRGB (D65) → CIE XYZ, and the D65 white point.
_RGB_TO_XYZ = torch.tensor([[0.4124564, 0.3575761, 0.1804375],
                            [0.2126729, 0.7151522, 0.0721750],
                            [0.0193339, 0.1191920, 0.9503041]], dtype=torch.float64)
_WHITE = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)
_DELTA = 6.0 / 29.0


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """[...,3] sRGB in [0,1] → [...,3] CIE Lab (L in [0,100]); differentiable."""
    c = rgb.clamp(0.0, 1.0)
    lin = torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055).clamp_min(1e-12) ** 2.4)
    xyz = lin @ _RGB_TO_XYZ.to(rgb).T / _WHITE.to(rgb)
    f = torch.where(xyz > _DELTA**3, xyz.clamp_min(1e-12) ** (1 / 3), xyz / (3 * _DELTA**2) + 4 / 29)
    return torch.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def lab_to_rgb(lab: Tensor) -> Tensor:
    """[...,3] CIE Lab → [...,3] sRGB, clipped to [0,1] (colours outside the gamut go to its edge)."""
    fy = (lab[..., 0] + 16) / 116
    f = torch.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], -1)
    xyz = torch.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4 / 29)) * _WHITE.to(lab)
    lin = (xyz @ torch.linalg.inv(_RGB_TO_XYZ).to(lab).T).clamp(0.0, 1.0)
    srgb = torch.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin.clamp_min(1e-12) ** (1 / 2.4) - 0.055)
    return srgb.clamp(0.0, 1.0)


@dataclass
class LabStats:
    """Mean [3] and covariance [3,3] of a set of colours in Lab (float64)."""

    mean: np.ndarray
    cov: np.ndarray

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.cov), 0, None))


def lab_stats(rgb: np.ndarray | Tensor, weights: np.ndarray | Tensor | None = None) -> LabStats:
    """Statistics of colours rgb [...,3] in [0,1], optionally weighted by `weights` [...] ≥ 0."""
    lab = rgb_to_lab(torch.as_tensor(np.asarray(rgb), dtype=torch.float64).reshape(-1, 3))
    w = torch.ones(len(lab), dtype=torch.float64) if weights is None else \
        torch.as_tensor(np.asarray(weights), dtype=torch.float64).reshape(-1)
    if len(lab) == 0 or float(w.sum()) <= 0:
        raise ValueError("colour statistics of no pixels")
    w = w / w.sum()
    mean = (w[:, None] * lab).sum(0)
    d = lab - mean
    cov = (w[:, None] * d).T @ d
    return LabStats(mean.numpy(), cov.numpy())


def sqrtm_psd(m: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix."""
    vals, vecs = np.linalg.eigh((m + m.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def _regularised(cov: np.ndarray) -> np.ndarray:
    """cov plus a small ridge: a near-flat colour set (a grey object) would otherwise be stretched
    by an enormous factor along its thinnest axis, amplifying noise into colour."""
    return cov + np.eye(3) * max(1e-3 * np.trace(cov) / 3, 1e-2)


def transfer_map(source: LabStats, target: LabStats, kind: ColourMap = "covariance",
                 strength: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(A [3,3], b [3]) of the affine Lab map x ↦ A x + b taking `source` to `target`; strength in
    [0,1] blends it with the identity (0 = no change)."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    cs = _regularised(source.cov)
    if kind == "reinhard":
        A = np.diag(target.std / np.sqrt(np.diag(cs)))
    elif kind == "covariance":
        root = sqrtm_psd(cs)
        inv_root = np.linalg.inv(root)
        A = inv_root @ sqrtm_psd(root @ target.cov @ root) @ inv_root
    else:
        raise ValueError(f"unknown colour map {kind!r}")
    b = target.mean - A @ source.mean
    A = (1 - strength) * np.eye(3) + strength * A
    return A, strength * b


def apply_map(rgb: Tensor, A: np.ndarray, b: np.ndarray) -> Tensor:
    """f(rgb) = rgb(A·lab(rgb) + b) for colours [...,3] in [0,1]."""
    At, bt = torch.as_tensor(A, dtype=rgb.dtype), torch.as_tensor(b, dtype=rgb.dtype)
    return lab_to_rgb(rgb_to_lab(rgb) @ At.T + bt)


def map_gaussians(g: Gaussians, A: np.ndarray, b: np.ndarray) -> Gaussians:
    """The splat with its colours mapped by f (module docstring): sh0 → f of the base colour, each
    higher SH coefficient [3] → J_f(base colour) @ coefficient. Geometry is shared, not copied."""
    base = sh0_to_rgb(g.sh0[:, 0].double()).clamp(0, 1)  # [N,3]

    def f(c: Tensor) -> Tensor:
        return apply_map(c, A, b)

    mapped = f(base)
    out = Gaussians(g.means, g.quats, g.scales, g.opacities, rgb_to_sh0(mapped).float()[:, None, :],
                    g.shN.clone())
    if g.shN.shape[1] > 0 and len(g) > 0:
        jac = torch.func.vmap(torch.func.jacrev(f))(base)  # [N,3,3]
        out.shN = torch.einsum("nij,nkj->nki", jac, g.shN.double()).float()
    return out


STATS_MAX_SIDE = 400
"""A splat's colour statistics come from its views rendered at most this large."""


def splat_stats(g: Gaussians, cameras: list[Camera], device: str = "cpu") -> LabStats:
    """Lab statistics of what the splat shows in `cameras`: their renders (at most STATS_MAX_SIDE
    px), each pixel's colour un-premultiplied and weighted by its alpha."""
    colours, weights = [], []
    for cam in cameras:
        r = render_rgbd(g, shrink(cam, STATS_MAX_SIDE), device)
        keep = r.alpha > 0.05
        colours.append(r.rgb[keep] / r.alpha[keep][:, None])
        weights.append(r.alpha[keep])
    if not sum(len(w) for w in weights):
        raise ReconError("the splat covers no pixel of its views; there is nothing to stylise")
    return lab_stats(np.clip(np.concatenate(colours), 0, 1), np.concatenate(weights))
