"""Multi-view photometric consistency of rendered depth (the stereo matching loss of self-supervised
depth, as sparse-view splatting methods use it): lift every object pixel of training view i to
3D with the depth the splat renders there, look it up in training view j, and compare colours.

Three photos can be fitted with wrong depth (each view sees its own Gaussians), but only the right
depth makes view j's photo agree with view i's at the reprojected pixel. The photos are constants,
so the gradient reaches the geometry only, through the lookup position.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from recon.scene import Camera


def reproject(depth: Tensor, cam_i: Camera, cam_j: Camera) -> tuple[Tensor, Tensor]:
    """Pixel coordinates in view j [H,W,2] (x, y; pixel centres at +0.5) of view i's pixels lifted
    with `depth` [H,W] (camera z), and whether they land in front of camera j [H,W]."""
    H, W = depth.shape
    dev, dt = depth.device, depth.dtype
    ys, xs = torch.meshgrid(torch.arange(H, device=dev, dtype=dt) + 0.5,
                            torch.arange(W, device=dev, dtype=dt) + 0.5, indexing="ij")
    Ki = torch.as_tensor(cam_i.K, dtype=dt, device=dev)
    Kj = torch.as_tensor(cam_j.K, dtype=dt, device=dev)
    rel = torch.as_tensor(cam_j.world_to_cam @ cam_i.cam_to_world, dtype=dt, device=dev)  # i → j
    x = (xs - Ki[0, 2]) / Ki[0, 0] * depth
    y = (ys - Ki[1, 2]) / Ki[1, 1] * depth
    p = torch.stack([x, y, depth], -1) @ rel[:3, :3].T + rel[:3, 3]
    z = p[..., 2]
    zs = z.clamp_min(1e-6)
    uv = torch.stack([Kj[0, 0] * p[..., 0] / zs + Kj[0, 2], Kj[1, 1] * p[..., 1] / zs + Kj[1, 2]], -1)
    return uv, z > 1e-6


def warp_loss(depth: Tensor, image_i: Tensor, image_j: Tensor, cam_i: Camera, cam_j: Camera,
              valid: Tensor) -> Tensor:
    """Mean L1 [] between view i's photo and view j's photo sampled where view i's rendered depth
    [H,W] sends each pixel. image_* [H,W,3]; `valid` [H,W] picks the pixels to use (e.g. object
    pixels the splat covers); pixels that leave view j are ignored."""
    uv, ahead = reproject(depth, cam_i, cam_j)
    Hj, Wj = image_j.shape[:2]
    grid = torch.stack([uv[..., 0] / Wj * 2 - 1, uv[..., 1] / Hj * 2 - 1], -1)
    inside = ahead & (grid.abs() < 1).all(-1)
    sampled = F.grid_sample(image_j.permute(2, 0, 1)[None], grid[None], mode="bilinear",
                            padding_mode="border", align_corners=False)[0].permute(1, 2, 0)
    use = valid & inside
    if not use.any():
        return depth.new_zeros(())
    return (sampled - image_i).abs()[use].mean()
