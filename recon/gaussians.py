"""The 3D Gaussian splat: parameters stored pre-activation, as 3DGS, gsplat and the .ply layout do.

Names follow gsplat's simple_trainer so `gsplat.strategy` can densify a dict of them directly:
  means [N,3]       world positions
  quats [N,4]       rotation, wxyz, unnormalised
  scales [N,3]      log of the standard deviations
  opacities [N]     logit of opacity
  sh0 [N,1,3]       degree-0 SH coefficient (the "f_dc" of a .ply)
  shN [N,K-1,3]     higher SH coefficients, K = (degree+1)^2 (the "f_rest" of a .ply)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

SH_C0 = 0.28209479177387814  # Y_0^0: colour = SH_C0 * sh0 + 0.5


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    """[...,3] colour in [0,1] → degree-0 SH coefficient."""
    return (rgb - 0.5) / SH_C0


def sh0_to_rgb(sh0: Tensor) -> Tensor:
    return sh0 * SH_C0 + 0.5


def num_sh_bases(degree: int) -> int:
    return (degree + 1) ** 2


def sh_degree_from_bases(k: int) -> int:
    degree = int(round(np.sqrt(k))) - 1
    if num_sh_bases(degree) != k:
        raise ValueError(f"{k} SH coefficients is not (degree+1)^2 for any degree")
    return degree


@dataclass
class Gaussians:
    """A splat as plain tensors (pre-activation). Use `.params()` to get trainable Parameters."""

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    sh0: Tensor
    shN: Tensor

    KEYS = ("means", "quats", "scales", "opacities", "sh0", "shN")

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        return sh_degree_from_bases(1 + self.shN.shape[1])

    @property
    def colors_sh(self) -> Tensor:
        """[N,K,3] all SH coefficients."""
        return torch.cat([self.sh0, self.shN], dim=1)

    @property
    def rgb(self) -> Tensor:
        """[N,3] base (view-independent) colour."""
        return sh0_to_rgb(self.sh0[:, 0]).clamp(0, 1)

    def activated(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(quats normalised [N,4], scales [N,3], opacities [N]) after activation, plus means."""
        return (
            self.means,
            torch.nn.functional.normalize(self.quats, dim=-1),
            torch.exp(self.scales),
            torch.sigmoid(self.opacities),
        )

    def params(self, device: str | torch.device = "cpu") -> torch.nn.ParameterDict:
        return torch.nn.ParameterDict(
            {k: torch.nn.Parameter(getattr(self, k).detach().to(device).float().clone()) for k in self.KEYS}
        )

    @classmethod
    def from_params(cls, params: dict[str, Tensor]) -> "Gaussians":
        return cls(**{k: params[k].detach().cpu().clone() for k in cls.KEYS})

    def detach(self) -> "Gaussians":
        return Gaussians(**{k: getattr(self, k).detach().cpu() for k in self.KEYS})

    def select(self, keep: Tensor) -> "Gaussians":
        """The Gaussians where the bool mask / index tensor `keep` selects."""
        return Gaussians(**{k: getattr(self, k)[keep] for k in self.KEYS})

    @classmethod
    def from_points(
        cls,
        points: np.ndarray | Tensor,
        colors: np.ndarray | Tensor | None,
        *,
        sh_degree: int = 3,
        opacity: float = 0.1,
        scale: float | np.ndarray | Tensor | None = None,
    ) -> "Gaussians":
        """Isotropic Gaussians at `points` [N,3] with `colors` [N,3] (grey when None).

        scale: the standard deviation, a scalar or [N]; default = mean distance to the 3
        nearest neighbours (3DGS's init rule).
        """
        pts = torch.as_tensor(np.asarray(points), dtype=torch.float32)
        n = pts.shape[0]
        rgb = torch.full((n, 3), 0.5) if colors is None else torch.as_tensor(np.asarray(colors), dtype=torch.float32)
        if scale is None:
            scale = knn_mean_distance(pts.numpy(), k=3)
        s = torch.as_tensor(np.broadcast_to(np.asarray(scale, dtype=np.float32), (n,)).copy())
        s = s.clamp_min(1e-7)
        return cls(
            means=pts.clone(),
            quats=torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(n, 1),
            scales=torch.log(s)[:, None].repeat(1, 3),
            opacities=torch.logit(torch.full((n,), float(opacity))),
            sh0=rgb_to_sh0(rgb)[:, None, :],
            shN=torch.zeros(n, num_sh_bases(sh_degree) - 1, 3),
        )


def knn_mean_distance(points: np.ndarray, k: int = 3) -> np.ndarray:
    """[N] mean distance of each point to its k nearest neighbours (scipy KD-tree)."""
    from scipy.spatial import cKDTree

    if len(points) <= 1:
        return np.full(len(points), 0.01, dtype=np.float32)
    k_eff = min(k, len(points) - 1)
    dist, _ = cKDTree(points).query(points, k=k_eff + 1)
    d = dist[:, 1:].mean(axis=1)
    positive = d[d > 0]
    floor = positive.min() if len(positive) else 1e-3
    return np.maximum(d, floor).astype(np.float32)
