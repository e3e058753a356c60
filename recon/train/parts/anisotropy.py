"""Needles: few views leave Gaussians free to stretch along the training cameras' rays, where each
training photo sees them end-on as a dot, so the training PSNR does not mind; from anywhere else
they are long spikes (the bundled sample's splat sprays them out of the door). PhysGaussian's
anisotropy term (Xie et al., CVPR 2024) holds each Gaussian's longest axis to at most `max_ratio`
times its shortest; here it is held to `max_ratio` times its *middle* axis, so that flat discs,
which are how a splat draws a surface, feel nothing and only needles are pulled in:
weight × mean(relu(log(s_max / s_mid) − log(max_ratio))), on the log scales, so a spike is pulled
in however long it is."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from recon.train.part import Part, TrainerView


@dataclass
class AnisotropyConfig:
    weight: float = 0.0
    """Weight of the term (0 = off)."""
    max_ratio: float = 10.0
    """Longest over middle axis allowed before the term pulls (PhysGaussian's r, on the shortest)."""

    @property
    def enabled(self) -> bool:
        return self.weight > 0


def axis_ratio(log_scales: Tensor, over: str = "mid") -> Tensor:
    """[N] longest axis of each Gaussian over its middle (`over="mid"`: needles) or shortest
    (`"min"`: needles and flat discs) axis, from its log scales [N,3]."""
    s = torch.sort(log_scales, -1).values
    return torch.exp(s[:, 2] - s[:, 1 if over == "mid" else 0])


def needle_share(log_scales: Tensor, max_ratio: float = 10.0, over: str = "mid") -> float:
    """The share of Gaussians whose longest axis is over `max_ratio` times the other (`axis_ratio`)."""
    if len(log_scales) == 0:
        return 0.0
    return float((axis_ratio(log_scales, over) > max_ratio).float().mean())


class Anisotropy(Part):
    name = "anisotropy"

    def __init__(self, cfg: AnisotropyConfig) -> None:
        if cfg.max_ratio <= 1:
            raise ValueError("regularize.anisotropy.max_ratio must be > 1")
        self.cfg = cfg

    def extra_loss(self, trainer: TrainerView) -> Tensor | None:
        s = torch.sort(trainer.splat.params["scales"], -1).values
        excess = torch.relu(s[:, 2] - s[:, 1] - math.log(self.cfg.max_ratio))
        return self.cfg.weight * excess.mean()
