"""`Splat`: the trainable splat: its parameters, one Adam optimiser per parameter (the layout gsplat's
densification strategy edits), gsplat's DefaultStrategy and its state, and, when switched on,
Mip-Splatting's 3D filter (recon/train/parts/filter3d.py) applied in every render and baked into
the saved Gaussians."""

from __future__ import annotations

import torch
from gsplat.strategy import DefaultStrategy
from gsplat.strategy.ops import remove

from recon.gaussians import Gaussians
from recon.render import rasterize
from recon.scene import Camera
from recon.train.config import OptimizeConfig
from recon.train.parts import filter3d


class Splat:
    """One trainable splat: parameters, their Adam optimisers and the densification state."""

    def __init__(self, init: Gaussians, cfg: OptimizeConfig, radius: float, dev: torch.device,
                 cameras: list[Camera] = ()) -> None:
        self.params = init.params(dev)
        self.cameras = list(cameras)
        self.filter_k = 0.0
        self.filter_var: torch.Tensor | None = None
        self._filter_means: torch.Tensor | None = None  # the means Parameter filter_var was made for
        self.lrs = {"means": cfg.lr_means * radius, "scales": cfg.lr_scales, "quats": cfg.lr_quats,
                    "opacities": cfg.lr_opacities, "sh0": cfg.lr_sh0, "shN": cfg.lr_shN}
        # eps=1e-15 as in 3DGS: gradients of far Gaussians are tiny and must still move them.
        # fused: one kernel per parameter instead of a dozen elementwise ops (5.2 → 0.7 ms a step
        # on the fast preset's 20k Gaussians, 2 cores).
        self.optimizers = {k: torch.optim.Adam([{"params": self.params[k], "lr": lr, "name": k}], eps=1e-15,
                                               fused=True)
                           for k, lr in self.lrs.items()}
        d = cfg.densify
        self.strategy = DefaultStrategy(
            refine_start_iter=d.start, refine_stop_iter=d.stop if d.enabled else 0, refine_every=d.every,
            grow_grad2d=d.grow_grad2d, reset_every=d.reset_opacity_every, prune_opa=d.prune_opacity,
        )
        self.strategy.check_sanity(self.params, self.optimizers)
        self.state = self.strategy.initialize_state(scene_scale=radius)
        self.backend = cfg.backend
        self.frozen: set[str] = set()

    def __len__(self) -> int:
        return len(self.params["means"])

    def enable_filter(self, k: float) -> None:
        """Mip-Splatting's 3D filter: every Gaussian at least k pixels wide in its sharpest camera."""
        self.filter_k = float(k)
        self.refresh_filter(force=True)

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
        """One Adam step of every parameter that is not frozen; the means' learning rate decays."""
        for name, opt in self.optimizers.items():
            if name not in self.frozen:
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

    def state_dict(self) -> dict:
        """Everything that decides the next step: parameters, Adam moments and learning rates, the
        densification statistics and the 3D filter's current footprints."""
        return {
            "params": {k: v.detach().cpu().clone() for k, v in self.params.items()},
            "optimizers": {k: cpu_copy(o.state_dict()) for k, o in self.optimizers.items()},
            "strategy": cpu_copy(self.state),
            "filter_k": self.filter_k,
            "filter_var": None if self.filter_var is None else self.filter_var.cpu(),
            "frozen": sorted(self.frozen),
        }

    def load_state_dict(self, state: dict) -> None:
        dev = self.params["means"].device
        self.params = torch.nn.ParameterDict(
            {k: torch.nn.Parameter(v.to(dev).clone()) for k, v in state["params"].items()})
        self.optimizers = {k: torch.optim.Adam([{"params": self.params[k], "lr": self.lrs[k], "name": k}],
                                               eps=1e-15, fused=True) for k in self.lrs}
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.state = {k: v.to(dev) if isinstance(v, torch.Tensor) else v for k, v in state["strategy"].items()}
        self.filter_k = state["filter_k"]
        self.filter_var = None if state["filter_var"] is None else state["filter_var"].to(dev)
        self._filter_means = self.params["means"] if self.filter_var is not None else None
        self.frozen = set(state["frozen"])


def cpu_copy(obj):
    """A CPU copy of every tensor in `obj` (nested dicts and lists): a checkpoint must not share
    storage with tensors that later steps change in place (`.cpu()` of a CPU tensor is itself)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [cpu_copy(v) for v in obj]
    return obj
