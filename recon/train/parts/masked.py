"""Masked training: with object masks, fit the object only, composited over this step's background.

Outside the mask the target is the background itself, so the splat learns the silhouette: with a
random background per step (`optimize.background: random`) the only way to match every step is to
be opaque on the object and transparent elsewhere, whatever colour the test renders use.
"""

from __future__ import annotations

import torch
from torch import Tensor

from recon.train.part import Part, TrainerView


class MaskedTraining(Part):
    name = "masked training"

    def setup(self, trainer: TrainerView) -> None:
        self.masks = [torch.from_numpy(v.mask).to(trainer.dev)[..., None] for v in trainer.scene.views]

    def prepare_target(self, trainer: TrainerView, view: int, target: Tensor, background: Tensor) -> Tensor:
        return torch.where(self.masks[view], target, background)
