"""The few-view parts of the optimisation, registered in one place: which ones a config switches on,
in the order the Trainer calls them each step."""

from __future__ import annotations

from recon.scene import Scene
from recon.train.config import OptimizeConfig
from recon.train.part import Part
from recon.train.parts.anisotropy import Anisotropy
from recon.train.parts.camera_refine import CameraRefine, refines
from recon.train.parts.depth_prior import DepthPrior
from recon.train.parts.filter3d import Filter3D
from recon.train.parts.filter_plan import META_KEY as FILTERS, plan_parts
from recon.train.parts.masked import MaskedTraining
from recon.train.parts.opacity_decay import OpacityDecay
from recon.train.parts.pseudo import PseudoViews


def build_parts(cfg: OptimizeConfig, scene: Scene) -> list[Part]:
    """The parts `cfg` switches on for `scene` (masked training needs every view's mask; camera
    refinement under `auto` needs cameras the poses stage estimated)."""
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
    if reg.opacity_decay.enabled:
        parts.append(OpacityDecay(reg.opacity_decay))
    if reg.anisotropy.enabled:
        parts.append(Anisotropy(reg.anisotropy))
    if refines(cfg.camera_refine, scene):
        parts.append(CameraRefine(cfg.camera_refine, cfg.steps))
    parts += plan_parts(scene.meta.get(FILTERS))  # the filters stage's trust maps, haze, appearance
    return parts
