"""Robust per-pixel weights from a render's residual, built for few views (the maths of
recon/train/parts/robust.py; no training state here).

A pixel whose photo the splat cannot explain is either something only that photo shows (a person,
a car, a lens drop) or detail the splat has not fitted yet. Few views leave little redundancy, so
the weights must not eat detail. What separates the two here:

- scale: residuals are compared with a robust scale of the view's own residuals (its median), so
  the threshold follows the fit as it improves instead of a fixed number;
- shape: the residual is box-smoothed before the test, and a pixel only loses weight inside a patch
  where most pixels are outliers (patch voting), so scattered misfit in fine texture keeps its
  weight while a compact blob (an occluder, a drop) loses it;
- consensus: with depth, a pixel is only called an outlier where another view sees the same
  surface point and explains it (`confirm_by_other_views`): that view agrees with the splat, and
  this photo alone disagrees. Pixels no other view sees keep their weight: there is no evidence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from recon.reproject import pixel_rays, relative_pose, sample_image
from recon.scene import Camera


def residual(rgb: Tensor, target: Tensor) -> Tensor:
    """[H,W] mean absolute colour difference of a render [H,W,3] and its photo [H,W,3]."""
    return (rgb - target).abs().mean(-1)


def box_smooth(x: Tensor, size: int) -> Tensor:
    """[H,W] mean over a size×size window (odd), borders averaging only the pixels inside."""
    if size <= 1:
        return x
    return F.avg_pool2d(x[None, None], size, stride=1, padding=size // 2, count_include_pad=False)[0, 0]


def smoothstep(x: Tensor, lo: float, hi: float) -> Tensor:
    """0 below lo, 1 above hi, a cubic ramp between (C1, so weights change gradually)."""
    t = ((x - lo) / max(hi - lo, 1e-8)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def outlier_score(res: Tensor, smooth: int, k: float, floor: float) -> Tensor:
    """[H,W] in [0,1]: how far the smoothed residual lies above τ = max(k × its median, floor),
    0 at τ and below, 1 at 2τ and above. res [H,W] from `residual`."""
    r = box_smooth(res, smooth)
    tau = max(float(k * r.median()), floor)
    return smoothstep(r, tau, 2 * tau)


def patch_vote(score: Tensor, patch: int, share: float) -> Tensor:
    """[H,W] in {0,1}: 1 on pixels of patch×patch tiles in which more than `share` of the pixels
    score above 0.5, and on the tiles next to such a tile that hold any such pixel (an occluder's
    edge spills into the next tile)."""
    H, W = score.shape
    hot = (score > 0.5).float()[None, None]
    frac = F.avg_pool2d(hot, patch, stride=patch, ceil_mode=True)  # [1,1,h,w] share per tile
    voted = (frac > share).float()
    near = F.max_pool2d(voted, 3, stride=1, padding=1) * (frac > 0).float()
    tiles = torch.maximum(voted, near)
    return tiles.repeat_interleave(patch, 2).repeat_interleave(patch, 3)[0, 0, :H, :W]


def view_weights(score: Tensor, patch: int, share: float) -> Tensor:
    """[H,W] weights in [0,1] from an outlier score: 1 − score inside voted patches, 1 elsewhere
    (a lone outlier pixel is more likely unfitted detail than a transient)."""
    if patch <= 1:
        return 1 - score
    return 1 - score * patch_vote(score, patch, share)


def expected_depth(render: Tensor, alpha: Tensor) -> Tensor:
    """[H,W] depth of an "RGB+D" render [H,W,4] (Σ w·z over Σ w; 0 where nothing is drawn)."""
    a = alpha.reshape(render.shape[:2])
    return torch.where(a > 1e-3, render[..., -1] / a.clamp_min(1e-3), torch.zeros_like(a))


@torch.no_grad()
def confirm_by_other_views(cam: Camera, depth: Tensor, others: list[tuple[Camera, Tensor, Tensor]],
                           depth_tol: float = 0.05, rays: Tensor | None = None) -> Tensor:
    """[H,W] in [0,1]: how well the other views explain the surface this view renders at each
    pixel (the best over them of 1 − their outlier score there), 0 where no other view sees it.

    cam, depth [H,W]: this view and its rendered depth (0 = nothing drawn). others: (camera, its
    rendered depth [h,w], its latest outlier score [h,w]) per other view. A point counts as seen
    by another view when it projects inside that image, in front of it, and within depth_tol
    (relative) of the depth that view renders there (not hidden behind something else). rays:
    `pixel_rays(cam)` when the caller keeps them (they cost more than the rest at 800 px)."""
    H, W = depth.shape
    dev = depth.device
    rays = (pixel_rays(cam) if rays is None else rays).to(dev)  # [H*W,3], z = 1: the rendered depth is camera z
    best = torch.zeros(H, W, device=dev)
    for other, o_depth, o_score in others:
        R, t = relative_pose(cam, other)
        X = (rays @ R.to(dev).T) * depth.reshape(-1, 1) + t.to(dev)  # [H*W,3] in the other camera
        z = X[:, 2].view(H, W)
        K = torch.from_numpy(other.K).float().to(dev)
        pix = ((X[:, :2] / X[:, 2:].clamp_min(1e-6)) @ K[:2, :2].T + K[:2, 2]).view(1, H, W, 2)
        samples, inside = sample_image(torch.stack([o_depth, o_score]), pix)
        seen_depth, seen_score = samples[0, 0], samples[0, 1]
        visible = inside[0] & (z > 1e-6) & (depth > 0) & (seen_depth > 0) \
            & ((z - seen_depth).abs() <= depth_tol * seen_depth)
        best = torch.maximum(best, torch.where(visible, 1 - seen_score, torch.zeros_like(best)))
    return best


def fixed_defects(scores: list[Tensor], min_views: int) -> Tensor:
    """[H,W] in [0,1]: the image-space defect map of views that share one image size: at each
    pixel, the `min_views`-th largest outlier score over the views. A lens drop or dirt sits at
    the same pixel of every photo while the scene behind it moves, so where enough views are
    outliers at the same place, every view is (the splat may have fitted it in the others)."""
    stack = torch.stack(scores)  # [V,H,W]
    k = min(max(min_views, 1), stack.shape[0])
    return torch.topk(stack, k, dim=0).values[-1]
