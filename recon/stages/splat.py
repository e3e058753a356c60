"""`Splat`: the splat the optimise stage trains: its parameters, one Adam optimiser per parameter,
gsplat's densification state and, when on, Mip-Splatting's 3D filter (recon/regularize/filter3d.py)
applied in every render and baked into the saved Gaussians."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from gsplat.strategy import DefaultStrategy
from gsplat.strategy.ops import remove

from recon.gaussians import Gaussians
from recon.regularize import filter3d
from recon.render import rasterize
from recon.scene import Camera

if TYPE_CHECKING:
    from recon.stages.optimize import OptimizeConfig

FILTER_REFRESH_EVERY = 100
"""Steps between recomputing the 3D filter's footprints (Gaussians move; Mip-Splatting: 100)."""


class Splat:
    """One trainable splat: parameters, their Adam optimisers and the densification state."""

    def __init__(self, init: Gaussians, cfg: OptimizeConfig, radius: float, dev: torch.device,
                 cameras: list[Camera] = ()) -> None:
        self.params = init.params(dev)
        self.filter_k, self.cameras = cfg.regularize.filter_3d, list(cameras)
        self.filter_var: torch.Tensor | None = None
        self._filter_means: torch.Tensor | None = None  # the means Parameter filter_var was made for
        lrs = {"means": cfg.lr_means * radius, "scales": cfg.lr_scales, "quats": cfg.lr_quats,
               "opacities": cfg.lr_opacities, "sh0": cfg.lr_sh0, "shN": cfg.lr_shN}
        # eps=1e-15 as in 3DGS: gradients of far Gaussians are tiny and must still move them.
        self.optimizers = {k: torch.optim.Adam([{"params": self.params[k], "lr": lr, "name": k}], eps=1e-15)
                           for k, lr in lrs.items()}
        d = cfg.densify
        self.strategy = DefaultStrategy(
            refine_start_iter=d.start, refine_stop_iter=d.stop if d.enabled else 0, refine_every=d.every,
            grow_grad2d=d.grow_grad2d, reset_every=d.reset_opacity_every, prune_opa=d.prune_opacity,
        )
        self.strategy.check_sanity(self.params, self.optimizers)
        self.state = self.strategy.initialize_state(scene_scale=radius)
        self.backend = cfg.backend

    def __len__(self) -> int:
        return len(self.params["means"])

    def refresh_filter(self, force: bool = False) -> None:
        """Recompute the 3D filter's per-Gaussian variance (when on) if forced or the Gaussians were
        added or removed since (densification replaces the means Parameter, so identity tells)."""
        means = self.params["means"]
        if self.filter_k > 0 and (force or self._filter_means is not means):
            self.filter_var = filter3d.filter_variance(means.detach(), self.cameras, self.filter_k)
            self._filter_means = means

    def activated_scales_opacities(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scales [N,3], opacities [N]) as rendered: through the 3D filter when it is on."""
        p = self.params
        if self.filter_k > 0:
            self.refresh_filter()
            return filter3d.apply_filter(p["scales"], p["opacities"], self.filter_var)
        return torch.exp(p["scales"]), torch.sigmoid(p["opacities"])

    def render(self, viewmat: torch.Tensor, K: torch.Tensor, width: int, height: int, degree: int,
               mode: str = "RGB", background: torch.Tensor | None = None):
        """(render [1,H,W,ch], alpha [1,H,W,1], meta) of one camera (viewmat [1,4,4], K [1,3,3])."""
        p = self.params
        colors = torch.cat([p["sh0"], p["shN"]], 1)
        bg = None if background is None else background[None]
        scales, opacities = self.activated_scales_opacities()
        return rasterize(p["means"], p["quats"], scales, opacities, colors, viewmat, K, width, height,
                         sh_degree=degree, backgrounds=bg, render_mode=mode, backend=self.backend)

    def step(self, means_decay: float) -> None:
        for opt in self.optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        for group in self.optimizers["means"].param_groups:
            group["lr"] *= means_decay

    def remove(self, mask: torch.Tensor) -> int:
        """Remove the Gaussians where `mask` [N] is True; returns how many."""
        n = int(mask.sum())
        if n and n < len(self):
            remove(self.params, self.optimizers, self.state, mask)
        return n if n < len(self) else 0

    def gaussians(self) -> Gaussians:
        """The splat as saved: with the 3D filter baked in when it is on, so it renders as trained."""
        if self.filter_k <= 0:
            return Gaussians.from_params(self.params)
        self.refresh_filter()
        params = {k: v.detach().clone() for k, v in self.params.items()}
        filter3d.bake(params, self.filter_var)
        return Gaussians.from_params(params)
