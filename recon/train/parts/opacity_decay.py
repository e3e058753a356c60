"""Opacity decay (Binocular3DGS, Han et al., NeurIPS 2024): after `start`, every opacity is
multiplied by `factor` each step. A Gaussian the photos need is pulled back up by the photometric
gradient at once; a floater that only a few pixels of one view support fades until densification
prunes it. Binocular3DGS pairs it with densification to the end and no opacity reset."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recon.train.part import Part, TrainerView


@dataclass
class OpacityDecayConfig:
    factor: float = 1.0
    """Opacities are multiplied by this each step after `start` (1 = off; Binocular3DGS: 0.995)."""
    start: int = 200
    """First step that decays."""

    @property
    def enabled(self) -> bool:
        return self.factor < 1.0


class OpacityDecay(Part):
    name = "opacity decay"

    def __init__(self, cfg: OpacityDecayConfig) -> None:
        if not 0 < cfg.factor <= 1:
            raise ValueError("regularize.opacity_decay.factor must be in (0, 1]")
        self.cfg = cfg

    @torch.no_grad()
    def after_step(self, trainer: TrainerView) -> None:
        if trainer.step < self.cfg.start:
            return
        logit = trainer.splat.params["opacities"]
        o = torch.sigmoid(logit) * self.cfg.factor
        logit.copy_(torch.logit(o.clamp(1e-6, 1 - 1e-6)))
