"""The weights-free repairer (`repair.method reproject`): a pseudo view's target made of the
training photos, reprojected through the splat's own depth (the geometry is recon/reproject.py).

Each pixel of the pseudo view is lifted to 3D with the splat's expected depth there and looked up
in the nearest training photos. A photo counts only if it sees that point: inside its frame, in
front of it, and where the splat's depth rendered from that photo's camera agrees with the point's
depth (the occlusion test). The photos that see a point vote: the colour most of them (weighted by
how close their ray is to the pseudo view's) agree on, within a tolerance, is the target, and the
confidence is the share of the weight that agrees, lower still when only one photo sees the point.
Where nothing reprojects (no surface rendered, every photo occluded or out of frame) the
confidence is 0 and the pixel is left unconstrained: the target only ever holds colours some photo
saw, never invented detail. With masks, a photo's pixel outside its mask says "nothing here", and
the target there is the background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from recon.repair.views import RenderedView, Repair, SourceView
from recon.reproject import pixel_rays, relative_pose, sample_image


@dataclass
class ReprojectConfig:
    sources: int = 3
    """How many training photos (nearest the pseudo view first) each target draws on."""
    depth_tolerance: float = 0.03
    """The occlusion test: a photo sees a point when the splat's depth from that photo's camera
    is within this fraction of the point's own depth from it."""
    colour_tolerance: float = 0.1
    """Two photos agree on a pixel when no channel differs by more than this (colours in [0,1])."""
    single_source: float = 0.5
    """Confidence of a pixel that only one photo sees (nothing to check its colour against)."""
    min_alpha: float = 0.5
    """Pseudo-view pixels where the splat is less opaque than this have no usable depth: left
    unconstrained (and so are photos' pixels below it in the occlusion test)."""
    angle_sigma_deg: float = 20.0
    """A photo's vote is weighted by exp(-(θ/σ)²), θ the angle between its ray to the point and
    the pseudo view's."""


@dataclass
class Reprojection:
    """Per source, at each pseudo-view pixel: colour (plus a mask channel with masks) [S,H,W,C],
    whether the photo sees the point [S,H,W] and its vote weight [S,H,W]."""

    colours: Tensor
    visible: Tensor
    weights: Tensor


def _cam_points(view: RenderedView) -> Tensor:
    """[H*W,3] the pseudo view's pixels lifted to the splat's expected depth, in its camera's frame."""
    rays = pixel_rays(view.camera, torch.float64)
    depth = torch.from_numpy(np.ascontiguousarray(view.depth, dtype=np.float64)).reshape(-1, 1)
    return rays * depth


def _vote_weight(world: Tensor, centre: np.ndarray, source: np.ndarray, sigma_deg: float) -> Tensor:
    """[H*W] exp(-(θ/σ)²), θ the angle at each point between the rays from the two centres."""
    a = world - torch.from_numpy(centre)
    b = world - torch.from_numpy(source)
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)
    return torch.exp(-(torch.arccos(cos.clamp(-1, 1)) / np.radians(sigma_deg)) ** 2).float()


def reproject(view: RenderedView, sources: list[SourceView], cfg: ReprojectConfig) -> Reprojection:
    """Look the pseudo view's pixels up in each source photo, with the occlusion test."""
    H, W = view.depth.shape
    local = _cam_points(view)
    c2w = torch.from_numpy(view.camera.cam_to_world)
    world = local @ c2w[:3, :3].T + c2w[:3, 3]
    masks = all(s.mask is not None for s in sources)
    colours, visible, weights = [], [], []
    for s in sources:
        R, t = relative_pose(view.camera, s.camera, torch.float64)
        X = local @ R.T + t  # [HW,3] in the source camera
        z = X[:, 2]
        K = torch.from_numpy(s.camera.K)
        pix = (X[:, :2] / z.clamp_min(1e-9)[:, None]) @ K[:2, :2].T + K[:2, 2]
        planes = [s.photo.transpose(2, 0, 1), s.depth[None], s.alpha[None]]
        if masks:
            planes.append(s.mask[None].astype(np.float32))
        stack = torch.from_numpy(np.ascontiguousarray(np.concatenate(planes), dtype=np.float32))
        sampled, inside = sample_image(stack, pix.float().view(1, H, W, 2), padding="border")
        sampled, inside = sampled[0].permute(1, 2, 0).reshape(H * W, -1), inside[0].reshape(-1)
        src_depth, src_alpha = sampled[:, 3].double(), sampled[:, 4]
        sees = inside & (z > 1e-6) & (src_alpha >= cfg.min_alpha) & (
            (z - src_depth).abs() <= cfg.depth_tolerance * z)
        colour = sampled[:, :3] if not masks else torch.cat([sampled[:, :3], sampled[:, 5:6]], 1)
        colours.append(colour.view(H, W, -1))
        visible.append(sees.view(H, W))
        weights.append(_vote_weight(world, view.camera.center, s.camera.center, cfg.angle_sigma_deg).view(H, W))
    return Reprojection(torch.stack(colours), torch.stack(visible), torch.stack(weights))


def combine(rep: Reprojection, cfg: ReprojectConfig) -> tuple[Tensor, Tensor, Tensor]:
    """(colour [H,W,C], confidence [H,W], agreeing photos [H,W]) by vote: the source whose colour
    the most weight agrees with wins, the colour is the weighted mean of those that agree, the
    confidence the squared share of the weight that agrees (×single_source with one photo)."""
    c, vis, w = rep.colours, rep.visible, rep.weights * rep.visible
    diff = (c[:, None] - c[None]).abs().amax(-1)  # [S,S,H,W]
    agree = (diff <= cfg.colour_tolerance) & vis[:, None] & vis[None]
    support = (agree * w[None]).sum(1)  # [S,H,W]: the weight agreeing with source i
    best = support.argmax(0)  # [H,W]
    members = torch.gather(agree, 0, best[None, None].expand(1, *agree.shape[1:]))[0]  # [S,H,W]
    mw = members * w
    total = w.sum(0)
    colour = (mw[..., None] * c).sum(0) / mw.sum(0).clamp_min(1e-12)[..., None]
    count = members.sum(0)
    share = mw.sum(0) / total.clamp_min(1e-12)
    conf = share ** 2 * torch.where(count >= 2, 1.0, cfg.single_source)
    conf = torch.where((count >= 1) & (total > 1e-6), conf, torch.zeros_like(conf))
    return colour, conf, count


class ReprojectionRepairer:
    """The weights-free repairer (see the module docstring)."""

    name = "reprojection (weights-free)"

    def __init__(self, cfg: ReprojectConfig) -> None:
        self.cfg = cfg

    def repair(self, view: RenderedView, sources: list[SourceView]) -> Repair:
        cfg = self.cfg
        colour, conf, _ = combine(reproject(view, sources[:cfg.sources], cfg), cfg)
        conf = conf * torch.from_numpy(view.alpha >= cfg.min_alpha)
        image = colour[..., :3].numpy()
        if colour.shape[-1] == 4:  # with masks: where the agreeing photos say "outside", the background
            image = np.where(colour[..., 3:].numpy() >= 0.5, image, 0.0)
        confidence = conf.numpy().astype(np.float32)
        image = np.where(confidence[..., None] > 0, image, view.render).astype(np.float32)
        return Repair(np.clip(image, 0, 1), confidence)
