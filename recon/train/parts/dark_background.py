"""Background alpha on dark pixels (Binocular3DGS, for DTU's black backdrop): pixels of the photo
whose brightest channel is below `level` are taken for background, and their rendered alpha is
penalised. Trained on a black background, a dark backdrop is then explained by transparency
instead of by Gaussians painted at some depth, which from new viewpoints land in front of the
object. It needs no masks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from recon.train.part import Part, TrainerView


@dataclass
class DarkBackgroundConfig:
    weight: float = 0.0
    """Weight of mean(alpha × dark) in the training views (0 = off)."""
    level: float = 30 / 255
    """A pixel is dark when its brightest channel is below this."""

    @property
    def enabled(self) -> bool:
        return self.weight > 0


class DarkBackground(Part):
    name = "dark background"

    def __init__(self, cfg: DarkBackgroundConfig) -> None:
        self.cfg = cfg

    def setup(self, trainer: TrainerView) -> None:
        self.dark = [torch.from_numpy(v.image.max(axis=-1) < self.cfg.level).float().to(trainer.dev)
                     for v in trainer.scene.views]

    def view_loss(self, trainer: TrainerView, view: int, render: Tensor, alpha: Tensor) -> Tensor | None:
        return self.cfg.weight * (alpha[0, ..., 0] * self.dark[view]).mean()
