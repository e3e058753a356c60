"""What the filters stage asks of the optimisation: the parts it switches on and what they start
from. The stage puts a `FilterPlan` in the scene it hands on (scene.meta["filters"]), so the
optimise stage's cache key follows the filters' settings through its input's key, and
recon/train/registry.py builds the parts from it with `plan_parts`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon.train.part import Part
from recon.train.parts.appearance import Appearance, AppearanceConfig
from recon.train.parts.haze import Haze, HazeConfig, HazeStart
from recon.train.parts.robust import RobustConfig, RobustWeights

META_KEY = "filters"


@dataclass
class FilterPlan:
    trust: list[np.ndarray | None]
    """Each training view's prior trust map [H,W] in [0,1] (weather, a segmenter), None = 1."""
    robust: RobustConfig | None = None
    """Robust weights from the residuals (transients, fixed defects); None = off."""
    haze: tuple[HazeConfig, HazeStart] | None = None
    """The atmosphere's settings and start; None = no haze model."""
    appearance: AppearanceConfig | None = None
    """Per-photo colour maps; None = off."""


def plan_parts(plan: FilterPlan | None) -> list[Part]:
    """The parts a plan switches on, in the order their photo models apply: the air first, then
    the camera's colour response; the weights last see the full photo model's residual."""
    if plan is None:
        return []
    parts: list[Part] = []
    if plan.haze is not None:
        parts.append(Haze(*plan.haze))
    if plan.appearance is not None:
        parts.append(Appearance(plan.appearance))
    if plan.robust is not None or any(t is not None for t in plan.trust):
        parts.append(RobustWeights(plan.robust, plan.trust))
    return parts
