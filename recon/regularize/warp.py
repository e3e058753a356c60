"""Multi-view photometric consistency of rendered depth (the stereo matching loss of self-supervised
depth, as sparse-view splatting methods use it): lift every object pixel of training view i to
3D with the depth the splat renders there, look it up in training view j, and compare colours.

Three photos can be fitted with wrong depth (each view sees its own Gaussians), but only the right
depth makes view j's photo agree with view i's at the reprojected pixel. The photos are constants,
so the gradient reaches the geometry only, through the lookup position.
"""

from __future__ import annotations

import torch
from torch import Tensor

from recon.reproject import pixel_rays, project_rays, relative_pose, sample_image
from recon.scene import Camera


def reproject(depth: Tensor, cam_i: Camera, cam_j: Camera) -> tuple[Tensor, Tensor]:
    """Pixel coordinates in view j [H,W,2] (x, y; pixel centres at +0.5) of view i's pixels lifted
    with `depth` [H,W] (camera z), and whether they land in front of camera j [H,W]."""
    dt = depth.dtype
    R, t = relative_pose(cam_i, cam_j, dt)
    K = torch.from_numpy(cam_j.K).to(dt)
    uv, ahead = project_rays(pixel_rays(cam_i, dt), depth[None], R.to(depth.device), t.to(depth.device),
                             K.to(depth.device))
    return uv[0], ahead[0]


def warp_loss(depth: Tensor, image_i: Tensor, image_j: Tensor, cam_i: Camera, cam_j: Camera,
              valid: Tensor) -> Tensor:
    """Mean L1 [] between view i's photo and view j's photo sampled where view i's rendered depth
    [H,W] sends each pixel. image_* [H,W,3]; `valid` [H,W] picks the pixels to use (e.g. object
    pixels the splat covers); pixels that leave view j are ignored."""
    uv, ahead = reproject(depth, cam_i, cam_j)
    sampled, inside = sample_image(image_j.permute(2, 0, 1), uv[None], padding="border")
    use = valid & ahead & inside[0]
    if not use.any():
        return depth.new_zeros(())
    return (sampled[0].permute(1, 2, 0) - image_i).abs()[use].mean()
