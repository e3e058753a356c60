"""Per-photo appearance: a colour transform per training view, learned in training and kept out of
the splat (exposure and white balance of tourist photos; splatfacto-w, NeRF-W).

Each view v has an affine map of the render's premultiplied colour, photo = (I + D_v)·fg + α·b_v
(+ the background where nothing is drawn), with D_v [3,3] and b_v [3] starting at 0. An L2 pull of
D and b towards 0 (`prior`) picks, among the equal fits (a brighter splat and darker maps, or the
reverse), the splat that looks like the views' average; the saved splat and every test render
use no map at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from recon.train.part import Part, TrainerView


@dataclass
class AppearanceConfig:
    lr: float = 0.002
    """Adam learning rate of the per-view maps."""
    prior: float = 0.01
    """Weight of the mean squared size of the maps (D_v, b_v) per step."""


class Appearance(Part):
    name = "appearance"

    def __init__(self, cfg: AppearanceConfig) -> None:
        self.cfg = cfg

    def setup(self, trainer: TrainerView) -> None:
        n, dev = len(trainer.scene.views), trainer.dev
        self.D = torch.zeros(n, 3, 3, device=dev, requires_grad=True)
        self.b = torch.zeros(n, 3, device=dev, requires_grad=True)
        self.opt = torch.optim.Adam([self.D, self.b], lr=self.cfg.lr)
        self.eye = torch.eye(3, device=dev)

    def photo_render(self, trainer: TrainerView, view: int, rgb: Tensor, render: Tensor, alpha: Tensor,
                     background: Tensor) -> Tensor:
        bg = (1 - alpha) * background.view(1, 1, 1, 3)
        fg = rgb - bg
        return fg @ (self.eye + self.D[view]).T + alpha * self.b[view] + bg

    def extra_loss(self, trainer: TrainerView) -> Tensor | None:
        if self.cfg.prior <= 0:
            return None
        return self.cfg.prior * (self.D.pow(2).sum((1, 2)) + self.b.pow(2).sum(1)).mean()

    def after_step(self, trainer: TrainerView) -> None:
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def maps(self) -> list[tuple[list[list[float]], list[float]]]:
        """Each view's (I + D_v, b_v) as learned."""
        return [((self.eye + d).tolist(), b.tolist()) for d, b in zip(self.D.detach(), self.b.detach())]

    def finish(self, trainer: TrainerView) -> None:
        gains = [(self.eye + d).diagonal().mean().item() for d in self.D.detach()]
        trainer.obs.log("filters: per-photo appearance learned (gains " + ", ".join(f"{g:.2f}" for g in gains)
                        + "); left out of the splat")

    def state(self) -> dict:
        return {"D": self.D.detach().cpu(), "b": self.b.detach().cpu(), "opt": self.opt.state_dict()}

    def load_state(self, state: dict) -> None:
        if not state:
            return
        with torch.no_grad():
            self.D.copy_(state["D"])
            self.b.copy_(state["b"])
        self.opt.load_state_dict(state["opt"])
