"""Robust weights: training views lose weight where their photo shows what the other views do not
(people, cars, a branch in one photo, a lens drop), learned from the residuals as training goes.

The filters stage (recon/stages/filters.py) switches this part on and hands it each view's prior
trust map (rain and snow streaks, a segmenter's people). Each time a view is trained its residual
is scored against the view's own robust scale, box-smoothed, confirmed by the other views' renders
of the same surface, averaged over the view's visits and voted over patches
(recon/filters/robust.py). The schedule starts permissive: no weighting for the first `start` of
the steps (the splat first learns what every view agrees on), then a threshold that tightens
from `k_start` to `k` medians over `warmup`. Where at least `defect_share` of the views are
outliers at the same pixel, every view is (a fixed-in-image defect: a lens drop, dirt, a mark).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from recon.filters import robust as rb
from recon.reproject import pixel_rays
from recon.train.part import Part, TrainerView


@dataclass
class RobustConfig:
    start: float = 0.05
    """Fraction of the steps before any pixel loses weight."""
    warmup: float = 0.25
    """Fraction of the steps over which the threshold tightens from k_start to k medians."""
    k: float = 3.0
    """A pixel is an outlier where its smoothed residual exceeds k × the view's median (fully at 2×)."""
    k_start: float = 6.0
    """The threshold when weighting starts (permissive: the early splat misfits everywhere)."""
    floor: float = 0.04
    """Smallest threshold (mean absolute colour error in [0,1]): a well fitted view keeps its noise."""
    smooth: int = 5
    """Box filter (pixels, odd) over the residual before the test."""
    patch: int = 16
    """Patch voting: a pixel loses weight only inside a patch×patch tile where more than `vote`
    of the pixels are outliers (or next to one); 1 = per pixel."""
    vote: float = 0.3
    """Share of a tile's pixels that must be outliers for the tile to count."""
    momentum: float = 0.5
    """How much of a view's previous outlier score each visit keeps (smooths the schedule)."""
    cross_view: bool = True
    """Call a pixel an outlier only where another training view sees the same surface (rendered
    depth) and explains it: the evidence is what the other views agree on."""
    defect_share: float = 0.6
    """Fixed-in-image defects: where at least this share of the views (and at least 2) are
    outliers at the same pixel, every view loses weight there (0 = off)."""


class RobustWeights(Part):
    """Per-pixel weights of the training views: a fixed prior times robust weights from residuals."""

    name = "robust weights"

    def __init__(self, cfg: RobustConfig | None, prior: list[np.ndarray | None] | None = None) -> None:
        self.cfg = cfg
        self.prior_maps = prior
        self.needs_depth = cfg is not None and cfg.cross_view
        self.scores: dict[int, Tensor] = {}
        self.depths: dict[int, Tensor] = {}
        self.weights: dict[int, Tensor] = {}
        self.rays: dict[int, Tensor] = {}  # each view's pixel rays, made once: the cameras do not move

    def setup(self, trainer: TrainerView) -> None:
        n, self.dev = len(trainer.scene.views), trainer.dev
        if self.prior_maps is not None and len(self.prior_maps) != n:
            raise ValueError(f"{len(self.prior_maps)} trust maps for {n} views")
        self.prior = [None if m is None else torch.as_tensor(m, dtype=torch.float32).to(trainer.dev)
                      for m in (self.prior_maps or [None] * n)]

    def _k(self, trainer: TrainerView) -> float | None:
        """The threshold in medians at this step, None before weighting starts."""
        c, total = self.cfg, max(getattr(trainer, "total", 1), 1)
        t = trainer.step / total
        if t < c.start:
            return None
        ramp = min(1.0, (t - c.start) / c.warmup) if c.warmup > 0 else 1.0
        return c.k_start + (c.k - c.k_start) * ramp

    def pixel_weight(self, trainer: TrainerView, view: int, rgb: Tensor, target: Tensor, render: Tensor,
                     alpha: Tensor) -> Tensor | None:
        prior = self.prior[view]
        if self.cfg is None:
            return prior
        c = self.cfg
        if c.cross_view:
            self.depths[view] = rb.expected_depth(render[0], alpha[0])
        k = self._k(trainer)
        if k is None:
            return prior
        score = rb.outlier_score(rb.residual(rgb[0], target), c.smooth, k, c.floor)
        if prior is not None:
            score = score * (prior > 0.5)  # already distrusted pixels are not evidence of more
        if c.cross_view:
            score = score * self._confirmed(trainer, view)
        old = self.scores.get(view)
        self.scores[view] = score if old is None else c.momentum * old + (1 - c.momentum) * score
        w = rb.view_weights(self.scores[view], c.patch, c.vote)
        defects = self._defects(trainer, view)
        if defects is not None:
            w = w * (1 - defects)
        self.weights[view] = w
        return w if prior is None else w * prior

    def _confirmed(self, trainer: TrainerView, view: int) -> Tensor:
        views = trainer.scene.views
        others = [(views[j].camera, self.depths[j], self.scores.get(j, torch.zeros_like(self.depths[j])))
                  for j in self.depths if j != view]
        if not others:  # no other view rendered yet: nothing to confirm with
            return torch.zeros_like(self.depths[view])
        if view not in self.rays:
            self.rays[view] = pixel_rays(views[view].camera).to(self.dev)
        return rb.confirm_by_other_views(views[view].camera, self.depths[view], others, rays=self.rays[view])

    def _defects(self, trainer: TrainerView, view: int) -> Tensor | None:
        """The fixed-defect map for `view`'s image size, from every view of that size seen so far."""
        share = self.cfg.defect_share
        if share <= 0:
            return None
        shape = self.scores[view].shape
        same = [s for s in self.scores.values() if s.shape == shape]
        need = max(2, math.ceil(share * sum(1 for v in trainer.scene.views if v.image.shape[:2] == shape)))
        if len(same) < need:
            return None
        return rb.smoothstep(rb.fixed_defects(same, need), 0.25, 0.75)

    def trust(self, view: int) -> Tensor | None:
        """[H,W] the weight view `view` trains with now (robust × prior), None = 1 everywhere."""
        w, prior = self.weights.get(view), self.prior[view]
        if w is None:
            return prior
        return w if prior is None else w * prior

    def state(self) -> dict:
        return {"scores": {k: v.cpu() for k, v in self.scores.items()},
                "depths": {k: v.cpu() for k, v in self.depths.items()},
                "weights": {k: v.cpu() for k, v in self.weights.items()}}

    def load_state(self, state: dict) -> None:
        for name in ("scores", "depths", "weights"):
            setattr(self, name, {k: v.to(self.dev) for k, v in state.get(name, {}).items()})
