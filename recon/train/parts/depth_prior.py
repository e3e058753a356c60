"""A monocular depth prior in the training views (FSGS, SparseGS): 1 − |Pearson correlation| between
the rendered depth and the model's relative depth, where the render is opaque. The model comes
from a local folder or the local hub cache (recon/priors/depth.py), never from the network; this
part has run only with a tiny random model in the tests, so its effect is unmeasured."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from recon import losses
from recon.train.part import Part, TrainerView


@dataclass
class DepthPriorConfig:
    model: str = ""
    """Monocular depth model, a local folder or a hub id already in the local cache (e.g.
    depth-anything/Depth-Anything-V2-Small-hf); empty = off. Never downloaded."""
    weight: float = 0.0
    """Weight of 1 − |Pearson correlation| between rendered depth and the prior."""

    @property
    def enabled(self) -> bool:
        return bool(self.model) and self.weight > 0


class DepthPrior(Part):
    name = "depth prior"
    needs_depth = True

    def __init__(self, cfg: DepthPriorConfig) -> None:
        self.cfg = cfg

    def setup(self, trainer: TrainerView) -> None:
        from recon.priors.depth import load_depth_prior

        prior = load_depth_prior(self.cfg.model, device=str(trainer.dev))
        self.maps = [prior.predict(v.image).to(trainer.dev) for v in trainer.scene.views]
        trainer.obs.log(f"optimize: monocular depth prior {self.cfg.model}")

    def view_loss(self, trainer: TrainerView, view: int, render: Tensor, alpha: Tensor) -> Tensor | None:
        depth = render[0, ..., 3] / alpha[0, ..., 0].clamp_min(1e-6)
        return self.cfg.weight * losses.pearson_depth_loss(depth, self.maps[view], alpha[0, ..., 0].detach() > 0.5)
