"""Settings of the optimisation (the `optimize` section of a run's config): the 3DGS schedule, its
densification, and one section per few-view part (recon/train/parts/, switched on by
recon/train/registry.py). The dataclass defaults are vanilla 3DGS; the presets switch parts on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from recon.train.parts.anisotropy import AnisotropyConfig
from recon.train.parts.camera_refine import CameraRefineConfig
from recon.train.parts.depth_prior import DepthPriorConfig
from recon.train.parts.opacity_decay import OpacityDecayConfig
from recon.train.parts.pseudo import PseudoConfig

Background = Literal["black", "white", "random"]


@dataclass
class DensifyConfig:
    enabled: bool = True
    """Grow (clone/split) and prune Gaussians with gsplat's DefaultStrategy."""
    start: int = 500
    """First step that densifies."""
    stop: int = 15_000
    """Last step that densifies."""
    every: int = 100
    """Densify every this many steps."""
    grow_grad2d: float = 0.0002
    """Grow Gaussians whose mean screen-space gradient exceeds this."""
    reset_opacity_every: int = 3000
    """Reset opacities to a small value this often (3DGS's floater control)."""
    prune_opacity: float = 0.005
    """Prune Gaussians below this opacity."""
    max_gaussians: int = 1_000_000
    """Stop growing beyond this many Gaussians (keeps CPU runs bounded)."""


@dataclass
class RegularizeConfig:
    """The few-view parts that need settings (masked training is `optimize.use_masks`)."""

    filter_3d: float = 0.0
    """Mip-Splatting's 3D smoothing filter: every Gaussian is at least this many pixels wide (standard
    deviation) in the training camera that sees it sharpest, baked into the saved splat (0 = off;
    Mip-Splatting uses sqrt(0.2) ≈ 0.45)."""
    pseudo: PseudoConfig = field(default_factory=PseudoConfig)
    depth_prior: DepthPriorConfig = field(default_factory=DepthPriorConfig)
    opacity_decay: OpacityDecayConfig = field(default_factory=OpacityDecayConfig)
    anisotropy: AnisotropyConfig = field(default_factory=AnisotropyConfig)


@dataclass
class OptimizeConfig:
    steps: int = 7000
    """Optimisation steps (one training view per step)."""
    ssim_lambda: float = 0.2
    """Weight of (1 - SSIM) in the photometric loss."""
    sh_degree_interval: int = 1000
    """Raise the active SH degree by one every this many steps, up to the init's degree."""
    lr_means: float = 1.6e-4
    """Learning rate of the means, times the scene radius; decays exponentially to 1% at the end."""
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacities: float = 5e-2
    lr_sh0: float = 2.5e-3
    lr_shN: float = 2.5e-3 / 20
    use_masks: bool = False
    """Train on the object only when the views have masks: outside the mask the target is the
    background, so the splat learns the silhouette too."""
    background: Background = "black"
    """Background behind the splat in training: black, white, or random per step (random makes
    the object opaque and everything else transparent, whatever colour the test renders use)."""
    densify: DensifyConfig = field(default_factory=DensifyConfig)
    regularize: RegularizeConfig = field(default_factory=RegularizeConfig)
    camera_refine: CameraRefineConfig = field(default_factory=CameraRefineConfig)
    """Refine the training cameras with the splat (off; auto = only cameras the poses stage estimated)."""
    backend: str = "auto"
    """Rasterizer: auto (from where the tensors are: gsplat for CUDA tensors, else cpu), gsplat,
    cpu, reference."""
    stream_every_s: float = 0.3
    """Send the current splat to observers (the viewer) at most this often, in seconds."""
    checkpoint_every_s: float = 60.0
    """Save the optimisation's state to the run folder this often (and on Ctrl-C or SIGTERM), so
    a rerun of the same command resumes where it stopped. 0 = only on an interrupt."""
    seed: int = 0
