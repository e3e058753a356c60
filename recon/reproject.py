"""Reprojection between views: lift one view's pixels to 3D with a depth, project them into another
view and sample that view's image there, and each view's nearest views. The multi-view geometry
the init stage's plane-sweep stereo, the filters (photo consistency; confirming a residual by the
other views' rendered depth), the robust-weights part, the repair stage's photo reprojection
(recon/repair/photo_reprojection.py) and the stylize metrics' warp consistency share.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from recon.scene import Camera


def pixel_rays(cam: Camera, dtype: torch.dtype = torch.float32) -> Tensor:
    """[H*W,3] camera-space rays (z = 1) through the pixel centres, row by row."""
    v, u = torch.meshgrid(torch.arange(cam.height) + 0.5, torch.arange(cam.width) + 0.5, indexing="ij")
    pix = torch.stack([u.flatten(), v.flatten(), torch.ones(u.numel())], 1).double()
    return (pix @ torch.linalg.inv(torch.from_numpy(cam.K)).T).to(dtype)


def nearest_views(cameras: Sequence[Camera], ref: int, k: int) -> list[int]:
    """Indices of the k cameras whose centres are nearest camera `ref`'s (itself excluded), nearest
    first; k <= 0 = all of them. Matching a view against its nearest few, not all, keeps the work
    views × k instead of views²."""
    dist = [float(np.linalg.norm(c.center - cameras[ref].center)) for c in cameras]
    others = sorted((o for o in range(len(cameras)) if o != ref), key=lambda o: dist[o])
    return others if k <= 0 else others[:k]


def relative_pose(ref: Camera, other: Camera, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """(R [3,3], t [3]) mapping ref-camera points into the other camera."""
    rel = torch.from_numpy(other.world_to_cam @ ref.cam_to_world).to(dtype)
    return rel[:3, :3], rel[:3, 3]


def project_rays(rays: Tensor, depth: Tensor, R: Tensor, t: Tensor, K: Tensor) -> tuple[Tensor, Tensor]:
    """Pixel coordinates (x, y; centres at +0.5) [D,h,w,2] in the other camera (intrinsics K
    [3,3]) of the rays [h*w,3] lifted to `depth` [D,h,w] (one depth map per slice), and whether
    each point is in front of that camera [D,h,w]."""
    D, h, w = depth.shape
    X = (rays.to(R.device) @ R.T)[None] * depth.reshape(D, -1, 1) + t  # [D,hw,3]
    z = X[..., 2:].clamp_min(1e-6)
    pix = (X[..., :2] / z) @ K[:2, :2].T + K[:2, 2]
    return pix.view(D, h, w, 2), (X[..., 2] > 1e-6).view(D, h, w)


def sample_image(img: Tensor, pix: Tensor, padding: str = "zeros") -> tuple[Tensor, Tensor]:
    """(samples [D,C,h,w], inside [D,h,w]) of an image [C,H,W] at pixel coordinates [D,h,w,2],
    bilinear; inside says which coordinates fall within the image."""
    C, H, W = img.shape
    D = pix.shape[0]
    grid = torch.stack([pix[..., 0] / W * 2 - 1, pix[..., 1] / H * 2 - 1], -1)
    out = F.grid_sample(img.expand(D, C, H, W), grid, align_corners=False, padding_mode=padding)
    return out, (grid.abs() <= 1).all(-1)
