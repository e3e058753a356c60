"""The few-view parts of the optimisation, registered in one place: which ones a config switches on,
in the order the Trainer calls them each step."""

from __future__ import annotations

from recon.scene import Scene
from recon.train.config import OptimizeConfig
from recon.train.part import Part
from recon.train.parts.depth_prior import DepthPrior
from recon.train.parts.filter3d import Filter3D
from recon.train.parts.masked import MaskedTraining
from recon.train.parts.pseudo import PseudoViews


def build_parts(cfg: OptimizeConfig, scene: Scene) -> list[Part]:
    """The parts `cfg` switches on for `scene` (masked training needs every view's mask)."""
    reg = cfg.regularize
    parts: list[Part] = []
    if cfg.use_masks and scene.has_masks:
        parts.append(MaskedTraining())
    if reg.filter_3d > 0:
        parts.append(Filter3D(reg.filter_3d))
    if reg.pseudo.enabled:
        parts.append(PseudoViews(reg.pseudo))
    if reg.depth_prior.enabled:
        parts.append(DepthPrior(reg.depth_prior))
    return parts
