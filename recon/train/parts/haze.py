"""Haze: a per-scene atmosphere learned with the splat and left out of it (DehazeGS, NimbusGS).

Each training photo is taken to show the clean splat through air that lets t = exp(−β·depth) of
a surface's light through and scatters airlight A into the rest:
    photo = fg·t + A·α·(1 − t) + (1 − α)·background
where fg is the render's premultiplied colour (the render less its background), α its alpha and
depth its expected depth. β and A are the part's own parameters (Adam, stepped after each
training step); the Gaussians keep the haze-free colours, so every render of the saved splat is
clear. Few views rarely see one surface from very different distances, so a splat could also
explain haze by paler colours; the filters stage therefore starts β and A from the dark-channel
estimate of the photos (recon/filters/haze.py), and an optional dark-channel prior on the clean
render (`dark_channel`) pushes the explanation towards the air, as He et al.'s prior says haze-free
outdoor colours have a dark channel near 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from recon.train.part import Part, TrainerView


@dataclass
class HazeConfig:
    lr: float = 0.0005
    """Adam learning rate of log β and of the airlight's logits. Slow on purpose: at 0.02 the splat
    soaked the haze up into paler colours while β fell to a quarter of its (right) start (fern
    with haze 14.23 dB; held at the start, lr 0: 16.72; 0.0005: 18.29, DTU 9.12 → 9.56)."""
    dark_channel: float = 0.0
    """Weight of the mean dark channel (min over colours and a patch) of the clean render."""
    patch: int = 9
    """Patch of that dark channel (pixels, odd)."""


@dataclass
class HazeStart:
    """Where the atmosphere starts: β [1/scene units], airlight A [3] in (0,1)."""

    beta: float
    airlight: tuple[float, float, float]


def _logit(x: float) -> float:
    x = min(max(x, 1e-4), 1 - 1e-4)
    return math.log(x / (1 - x))


class Haze(Part):
    name = "haze"
    needs_depth = True

    def __init__(self, cfg: HazeConfig, start: HazeStart) -> None:
        self.cfg, self.start = cfg, start

    def setup(self, trainer: TrainerView) -> None:
        dev = trainer.dev
        self.log_beta = torch.tensor(math.log(max(self.start.beta, 1e-8)), device=dev, requires_grad=True)
        self.air_logit = torch.tensor([_logit(a) for a in self.start.airlight], device=dev, requires_grad=True)
        self.opt = torch.optim.Adam([self.log_beta, self.air_logit], lr=self.cfg.lr)

    @property
    def beta(self) -> float:
        return float(self.log_beta.detach().exp())

    @property
    def airlight(self) -> tuple[float, float, float]:
        a = torch.sigmoid(self.air_logit.detach()).tolist()
        return (a[0], a[1], a[2])

    def photo_render(self, trainer: TrainerView, view: int, rgb: Tensor, render: Tensor, alpha: Tensor,
                     background: Tensor) -> Tensor:
        a = alpha
        depth = render[..., -1:] / a.clamp_min(1e-3)
        t = torch.exp(-self.log_beta.exp() * depth)
        bg = (1 - a) * background.view(1, 1, 1, 3)
        air = torch.sigmoid(self.air_logit).view(1, 1, 1, 3)
        return (rgb - bg) * t + air * a * (1 - t) + bg

    def view_loss(self, trainer: TrainerView, view: int, render: Tensor, alpha: Tensor) -> Tensor | None:
        if self.cfg.dark_channel <= 0:
            return None
        covered = (alpha[..., 0].detach() > 0.5).float()  # the background is no surface
        dark = (render[..., :3].min(-1).values * covered)[:, None]  # [1,1,H,W]
        dark = -F.max_pool2d(-dark, self.cfg.patch, stride=1, padding=self.cfg.patch // 2)
        return self.cfg.dark_channel * dark.mean()

    def after_step(self, trainer: TrainerView) -> None:
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def finish(self, trainer: TrainerView) -> None:
        a = ", ".join(f"{x:.2f}" for x in self.airlight)
        trainer.obs.log(f"filters: haze learned β = {self.beta:.4g} per scene unit, airlight ({a}); "
                        "left out of the splat")

    def state(self) -> dict:
        return {"log_beta": self.log_beta.detach().cpu(), "air_logit": self.air_logit.detach().cpu(),
                "opt": self.opt.state_dict()}

    def load_state(self, state: dict) -> None:
        if not state:
            return
        with torch.no_grad():
            self.log_beta.copy_(state["log_beta"])
            self.air_logit.copy_(state["air_logit"])
        self.opt.load_state_dict(state["opt"])
