"""Binocular consistency (Binocular3DGS, Han et al., NeurIPS 2024): the training camera moved sideways
by d along its x axis sees the splat as the other eye of a stereo pair. Warping that render back
with the disparity fx·d / depth of the training view's own rendered depth must give the photo
again, which only holds where the depth is right: the photo now supervises the geometry, not only
the colour. Plus an edge-aware smoothness of the disparity. One extra render a step (at
`scale` of the training resolution). d is uniform in ±`baseline` × the cameras' mean distance to
the scene centre (the paper's ±0.4 in DTU's units, about a tenth of that distance)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from recon import losses
from recon.scene import Camera
from recon.train.part import Part, TrainerView


@dataclass
class BinocularConfig:
    weight: float = 0.0
    """Weight of the L1 between the warped shifted render and the photo (0 = off)."""
    baseline: float = 0.1
    """The largest sideways shift, × the cameras' mean distance to the scene centre."""
    smooth: float = 0.05
    """Weight of the edge-aware smoothness of the disparity."""
    every: int = 1
    """Apply it every this many steps."""
    start: int = 0
    """First step that applies it."""

    @property
    def enabled(self) -> bool:
        return self.weight > 0


def shifted(cam: Camera, d: float) -> Camera:
    """`cam` moved by d along its own x axis (same orientation and intrinsics)."""
    w2c = cam.world_to_cam.copy()
    w2c[0, 3] -= d  # centre c' = c + d·x_axis  ⇔  t' = t − d·e_x
    return Camera(cam.K.copy(), w2c, cam.width, cam.height)


def warp_from_shifted(image: Tensor, depth: Tensor, fx: float, d: float) -> tuple[Tensor, Tensor]:
    """(warped [H,W,3], valid [H,W] bool): `image` [H,W,3] of the camera moved by d along x, sampled
    where the training view's pixels land in it (u − fx·d/depth), depth [H,W] of the training view."""
    H, W = depth.shape
    u = torch.arange(W, device=depth.device, dtype=depth.dtype) + 0.5
    v = torch.arange(H, device=depth.device, dtype=depth.dtype) + 0.5
    uu = u[None, :] - fx * d / depth.clamp_min(1e-6)
    vv = v[:, None].expand(H, W)
    grid = torch.stack([2 * uu / W - 1, 2 * vv / H - 1], -1)[None]
    warped = F.grid_sample(image.permute(2, 0, 1)[None], grid, mode="bilinear", padding_mode="border",
                           align_corners=False)[0].permute(1, 2, 0)
    valid = (uu > 0) & (uu < W)
    return warped, valid


class Binocular(Part):
    name = "binocular consistency"
    needs_depth = True

    def __init__(self, cfg: BinocularConfig) -> None:
        self.cfg = cfg

    def setup(self, trainer: TrainerView) -> None:
        cams = trainer.scene.cameras
        self.scale = float(np.mean([np.linalg.norm(c.center - trainer.center) for c in cams]))
        self.photos = [torch.from_numpy(np.ascontiguousarray(v.image)).float().to(trainer.dev)
                       for v in trainer.scene.views]

    def view_loss(self, trainer: TrainerView, view: int, render: Tensor, alpha: Tensor) -> Tensor | None:
        c = self.cfg
        if trainer.step < c.start or trainer.step % c.every != 0:
            return None
        d = float(trainer.rng.uniform(-c.baseline, c.baseline)) * self.scale
        cam = trainer.scene.views[view].camera
        other, _, _ = trainer.render_camera(shifted(cam, d))
        depth = render[0, ..., 3] / alpha[0, ..., 0].clamp_min(1e-6)
        warped, valid = warp_from_shifted(other[0, ..., :3], depth, float(cam.K[0, 0]), d)
        valid = valid & (alpha[0, ..., 0].detach() > 0.5)
        photo = self.photos[view]
        l1 = ((warped - photo).abs().mean(-1) * valid).sum() / valid.sum().clamp_min(1)
        disparity = (float(cam.K[0, 0]) * abs(d) / depth.clamp_min(1e-6))[None, ..., None]
        smooth = losses.depth_smoothness(disparity, photo[None], alpha)
        return c.weight * l1 + c.smooth * smooth
