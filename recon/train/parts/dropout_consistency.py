"""DropoutGS's consistency term (Xu et al., CVPR 2025): each step the training view is rendered a
second time with a random share `rate` of the Gaussians dropped (the survivors' opacities scaled
by 1/(1 − rate), as DropGaussian), and that render is held to the full one by L1 + SSIM with the
full render as the target (no gradient through it). A splat whose image depends on a few
Gaussians working together fails this, which is how few views overfit. One extra render a step.
Their scripts: DTU rate 0.3, weight 0.5; LLFF rate 0.4, weight 0.2."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from recon import losses
from recon.train.part import Part, TrainerView


@dataclass
class DropoutConsistencyConfig:
    weight: float = 0.0
    """Weight of the consistency term (0 = off)."""
    rate: float = 0.3
    """Share of the Gaussians dropped in the second render."""
    ssim_lambda: float = 0.2
    """SSIM's share of the term, as 3DGS's photometric loss."""

    @property
    def enabled(self) -> bool:
        return self.weight > 0


def dropped(opacities: Tensor, rate: float, gen: torch.Generator) -> Tensor:
    """[N] opacities with a random `rate` of them zeroed and the rest scaled by 1/(1 − rate)."""
    keep = torch.rand(opacities.shape, generator=gen).to(opacities.device) >= rate
    return opacities * keep / (1.0 - rate)


class DropoutConsistency(Part):
    name = "dropout consistency"

    def __init__(self, cfg: DropoutConsistencyConfig) -> None:
        if not 0 < cfg.rate < 1:
            raise ValueError("regularize.dropout_consistency.rate must be in (0, 1)")
        self.cfg = cfg
        self.background: Tensor | None = None

    def prepare_target(self, trainer: TrainerView, view: int, target: Tensor, background: Tensor) -> Tensor:
        self.background = background  # the second render must stand on this step's background
        return target

    def view_loss(self, trainer: TrainerView, view: int, render: Tensor, alpha: Tensor) -> Tensor | None:
        cam = trainer.scene.views[view].camera
        masked, _, _ = trainer.render_camera(cam, "RGB", self.background,
                                             lambda o: dropped(o, self.cfg.rate, trainer.gen))
        full = render[..., :3].detach()
        return self.cfg.weight * losses.photometric_loss(masked, full, self.cfg.ssim_lambda)
