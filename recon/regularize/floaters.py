"""Floater pruning: Gaussians the training views cannot rule out but that lie where there is
nothing — outside the silhouettes (with masks) or isolated from the rest of the splat."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from recon.init.outliers import statistical_outliers
from recon.scene import Scene


def outside_masks(means: Tensor, scene: Scene, dilate_px: int = 3) -> Tensor:
    """[N] bool: Gaussians whose centre [N,3] projects outside the (dilated) mask of at least
    one view that frames it — the space the visual hull carves away. False without masks."""
    out = torch.zeros(len(means), dtype=torch.bool)
    if not scene.has_masks or len(means) == 0:
        return out
    pts = means.detach().cpu().double().numpy()
    for view in scene.views:
        cam = view.camera
        m = ndimage.binary_dilation(view.mask, iterations=dilate_px) if dilate_px > 0 else view.mask
        pix, z = cam.project(pts)
        with np.errstate(invalid="ignore"):
            u, v = np.floor(pix[:, 0]), np.floor(pix[:, 1])
            frame = (z > 0) & (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)
        ui, vi = np.where(frame, u, 0).astype(int), np.where(frame, v, 0).astype(int)
        out |= torch.from_numpy(frame & ~m[vi, ui])
    return out.to(means.device)


def isolated(means: Tensor, k: int = 16, std_ratio: float = 3.0) -> Tensor:
    """[N] bool: statistical outliers among the Gaussians' centres [N,3] (GaussianObject's
    floater elimination uses the same rule)."""
    keep = statistical_outliers(means.detach().cpu().numpy(), k, std_ratio)
    return torch.from_numpy(~keep).to(means.device)
