"""The stylize stage's neural method: stylise views of the splat one by one, then re-fit the
splat's colours to all of them at once, geometry frozen, so one splat explains every stylised view.

Per-view 2D stylisation flickers: each view gets its own brush strokes. Re-fitting the colours of
fixed Gaussians to the stylised views averages those differences where the views overlap (as
ARF and StyleGaussian do with their own losses), so the result is multi-view consistent.

- The views: the splat's own renders at the training cameras and at pseudo cameras between them
  (recon/train/parts/pseudo.py), over white. Rendering rather than the photos keeps the targets
  in register with the geometry that will not move.
- The targets: stylised render S composited by the render's alpha α, α·S + (1-α)·white, with α as
  the per-pixel weight: the empty background is not fitted, and edges are as soft as the splat's.
- The start: the colour transfer of recon/style/colour.py (colour.map; ARF does the same), so
  the re-fit starts in the style's palette, and Gaussians no view shows still get it.
- The higher SH bands are zeroed and frozen: view-dependent colour is what would let the splat
  reproduce each view's own strokes instead of agreeing on one.
- The VGG feature loss of ARF is left out: torchvision and its weights are not available here.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from recon import interrupt
from recon.events import Observer
from recon.gaussians import Gaussians
from recon.scene import Camera, Scene, View
from recon.style.colour import lab_stats, map_gaussians, splat_stats, transfer_map
from recon.style.neural import StyleNet
from recon.render.views import render_rgbd as render, shrink
from recon.train import OptimizeConfig, Trainer, TrainLog
from recon.train.config import DensifyConfig
from recon.train.parts.pseudo import sample_pseudo_camera
from recon.train.trainer import GEOMETRY

WHITE = (1.0, 1.0, 1.0)


def fit_cameras(cameras: list[Camera], pseudo_views: int, max_size: int, seed: int = 0) -> list[Camera]:
    """The training cameras, then `pseudo_views` random cameras between pairs of them, all shrunk
    so that the longer side is at most max_size."""
    rng = np.random.default_rng(seed)
    cams = list(cameras) + [sample_pseudo_camera(cameras, rng, jitter=0.05) for _ in range(pseudo_views)]
    return [shrink(cam, max_size, min_side=32) for cam in cams]  # the style network needs 32 px


def stylised_views(net: StyleNet, g: Gaussians, cameras: list[Camera], style: np.ndarray, strength: float,
                   device: str = "cpu") -> tuple[list[View], list[np.ndarray]]:
    """(views, weights): per camera, the stylised render composited by its alpha over white (the
    image to fit), and that alpha [H,W] (the pixel weights of the fit)."""
    views, weights = [], []
    for i, cam in enumerate(cameras):
        r = render(g, cam, device, WHITE)
        styled = net.stylize(r.rgb, style, strength)
        a = r.alpha[..., None]
        views.append(View(f"stylised{i:03d}", i, cam, (a * styled + (1 - a) * 1.0).astype(np.float32)))
        weights.append(r.alpha)
    return views, weights


def refit_config(steps: int, lr: float) -> OptimizeConfig:
    """The Trainer's settings for the colour re-fit: no densification, no few-view parts, a white
    background (as the targets), colours learning fast (they move far from the photo's)."""
    return OptimizeConfig(steps=steps, ssim_lambda=0.0, sh_degree_interval=1, lr_sh0=lr, background="white",
                          densify=DensifyConfig(enabled=False), checkpoint_every_s=0.0)


def refit(g: Gaussians, views: list[View], weights: list[np.ndarray], steps: int, lr: float, scale_steps: int,
          obs: Observer, device: str = "cpu") -> tuple[Gaussians, TrainLog]:
    """Fit g's DC colours to `views` (pixel weights `weights` [H,W]) with the geometry frozen, then
    `scale_steps` steps that refine the scales too."""
    start = dataclasses.replace(g, shN=torch.zeros_like(g.shN))
    trainer = Trainer(refit_config(steps, lr), Scene(views, source="stylised views"), start, device, obs, parts=[])
    trainer.set_pixel_weights(weights)
    trainer.freeze(GEOMETRY + ("shN",))
    try:
        trainer.train()
        if scale_steps > 0:
            trainer.freeze(("means", "quats", "opacities", "shN"))
            trainer.train(scale_steps)
    except interrupt.Interrupted as e:  # the Trainer names an optimize step; this is stylize's re-fit
        raise interrupt.Interrupted(e.signum, f"during stylize (re-fit step {trainer.step}/{trainer.total})") from None
    return trainer.finish(), trainer.log


def neural_stylize(cfg, g: Gaussians, cameras: list[Camera], style: np.ndarray, obs: Observer,
                   device: str = "cpu") -> tuple[Gaussians, TrainLog]:
    """cfg: the stage's StylizeConfig. → (stylised splat, the re-fit's log)."""
    n = cfg.neural
    net = StyleNet()
    cams = fit_cameras(cameras, n.pseudo_views, n.max_size)
    obs.log(f"stylize: stylising {len(cams)} views ({len(cameras)} training, {n.pseudo_views} pseudo)")
    views, weights = stylised_views(net, g, cams, style, cfg.strength, device)
    A, b = transfer_map(splat_stats(g, cameras, device), lab_stats(style), cfg.colour.map, cfg.strength)
    return refit(map_gaussians(g, A, b), views, weights, n.steps, n.lr, n.scale_steps, obs, device)
