"""Settings of the few-view parts of the optimise stage (each off by setting its weight or
`every` to 0). Kept apart from recon/stages/optimize.py so the loop stays readable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class PseudoConfig:
    every: int = 0
    """Render a pseudo view between two training cameras every this many steps (0 = never)."""
    start: int = 0
    """First step with pseudo views."""
    scale: float = 0.5
    """Pseudo views are rendered at this fraction of the training resolution (cheap on CPU)."""
    jitter: float = 0.05
    """Random offset of the pseudo camera's centre, as a fraction of the two cameras' distance."""
    depth_smooth: float = 0.0
    """Weight of edge-aware depth smoothness in the pseudo view (RegNeRF's unobserved-view prior)."""
    orbit_deg: float = 0.0
    """Turn each pseudo camera about the scene's centre by up to this many degrees (random axis),
    so the regularisers also see the object from sides the photos do not (0 = between cameras only)."""
    hull_alpha: float = 0.0
    """With masks: weight of the L1 between the pseudo view's alpha and the visual hull's
    silhouette there. The object is solid wherever the hull is, so holes between Gaussians that
    the training views do not show get filled, and haze outside the hull goes."""
    hull_resolution: int = 96
    """Voxels along the longest side of that hull."""


@dataclass
class CoRegConfig:
    enabled: bool = False
    """Train two splats side by side (CoR-GS): prune where they disagree, and make their pseudo
    views agree. About twice the cost of one splat; the first is the result."""
    prune_every: int = 500
    """Co-prune every this many steps (during densification and once at the end)."""
    prune_distance: float = 0.01
    """A Gaussian with no Gaussian of the other splat within this distance (× scene radius) is
    pruned."""
    pseudo_weight: float = 1.0
    """Weight of the L1 between the two splats' renders of a pseudo view (needs pseudo.every)."""
    seed_offset: int = 1
    """The second splat's random seed is the first's plus this."""


@dataclass
class ProximityConfig:
    every: int = 0
    """FSGS proximity unpooling every this many steps during densification (0 = never)."""
    k: int = 3
    """Neighbours in the proximity graph."""
    factor: float = 3.0
    """Unpool Gaussians whose neighbour distance exceeds this × the median."""
    max_new: int = 3000
    """At most this many new Gaussians per unpooling."""


@dataclass
class PruneConfig:
    outside_masks_every: int = 0
    """With masks: remove Gaussians outside the silhouettes every this many steps (0 = never)."""
    mask_dilate_px: int = 3
    """Dilate masks by this much before testing (Gaussians on the edge stay)."""
    final_outside_masks: bool = False
    """With masks: remove Gaussians outside the silhouettes after training."""
    final_isolated_std: float = 0.0
    """After training, remove statistical outliers among the means beyond this many standard
    deviations (0 = off)."""
    final_min_opacity: float = 0.0
    """After training, remove Gaussians less opaque than this (0 = off)."""


@dataclass
class DepthPriorConfig:
    model: str = ""
    """Monocular depth model, a local folder or a hub id already in the local cache (e.g.
    depth-anything/Depth-Anything-V2-Small-hf); empty = off. Never downloaded."""
    weight: float = 0.0
    """Weight of 1 − |Pearson correlation| between rendered depth and the prior."""
    pseudo_weight: float = 0.0
    """The same loss in pseudo views (the prior is computed on the pseudo render itself)."""


@dataclass
class StereoDepthConfig:
    weight: float = 0.0
    """Weight of the L1 between rendered depth and confident plane-sweep depth in the training
    views (relative to that depth). Keeps the geometry that two views agree on while the
    photometric loss fits the colours. 0 = off."""
    window: int = 7
    """Plane-sweep settings; the same as init.stereo's reuse its depths instead of sweeping again."""
    coarse: int = 4
    min_score: float = 0.5
    rel_tol: float = 0.01


@dataclass
class RegularizeConfig:
    opacity_entropy: float = 0.0
    """Weight of the opacity entropy (pushes Gaussians to solid or gone)."""
    scale: float = 0.0
    """Weight of the scale penalty."""
    max_scale: float = 0.05
    """Scale penalty starts at this standard deviation (× scene radius)."""
    max_ratio: float = 10.0
    """... and at this ratio of the largest to the middle axis (needles; flat discs are free)."""
    flatten: float = 0.0
    """Weight of the flatness loss (shortest / middle axis): Gaussians become discs in the surface."""
    depth_smooth: float = 0.0
    """Weight of edge-aware depth smoothness in the training views."""
    warp: float = 0.0
    """Weight of multi-view photometric consistency: each step, view i's photo against another
    training photo sampled where view i's rendered depth reprojects it (trains the geometry)."""
    filter_3d: float = 0.0
    """Mip-Splatting's 3D smoothing filter: every Gaussian is at least this many pixels wide (standard
    deviation) in the training camera that sees it sharpest, baked into the saved splat (0 = off;
    Mip-Splatting uses sqrt(0.2) ≈ 0.45)."""
    stereo_depth: StereoDepthConfig = field(default_factory=StereoDepthConfig)
    pseudo: PseudoConfig = field(default_factory=PseudoConfig)
    coreg: CoRegConfig = field(default_factory=CoRegConfig)
    proximity: ProximityConfig = field(default_factory=ProximityConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    depth_prior: DepthPriorConfig = field(default_factory=DepthPriorConfig)


Background = Literal["black", "white", "random"]
