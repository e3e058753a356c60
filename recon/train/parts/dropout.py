"""DropGaussian (Park et al., CVPR 2025): in training renders, each Gaussian is dropped with
probability p and the survivors' opacities are scaled by 1/(1 − p), which is `nn.Dropout` on a
vector of ones. With few views every Gaussian is seen by all of them, so the splat can fit the
photos with Gaussians that only work together; dropping some each step makes each one carry the
image on its own, and the splat generalises to new views. The rate ramps linearly from 0 to
`rate` over the first `ramp` share of the steps (the paper: γ = 0.2 over 10k steps; LLFF 3-view
19.22 → 20.76 dB)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from recon.train.part import Part, TrainerView


@dataclass
class DropoutConfig:
    rate: float = 0.0
    """Final drop probability γ of each Gaussian in a training render (0 = off; the paper: 0.2)."""
    ramp: float = 1.0
    """Share of the optimisation over which the rate ramps linearly from 0 to `rate`."""

    @property
    def enabled(self) -> bool:
        return self.rate > 0


class DropGaussian(Part):
    name = "DropGaussian"

    def __init__(self, cfg: DropoutConfig) -> None:
        if not 0 <= cfg.rate < 1:
            raise ValueError("regularize.dropout.rate must be in [0, 1)")
        self.cfg = cfg

    def rate(self, trainer: TrainerView) -> float:
        total = max(trainer.total * self.cfg.ramp, 1.0)
        return self.cfg.rate * min(1.0, trainer.step / total)

    def training_opacities(self, trainer: TrainerView, opacities: Tensor) -> Tensor:
        p = self.rate(trainer)
        if p <= 0:
            return opacities
        keep = torch.rand(opacities.shape, generator=trainer.gen).to(opacities.device) >= p
        return opacities * keep / (1.0 - p)
