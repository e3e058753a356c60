"""optimize: fit the Gaussians to the training views (3DGS: Adam, L1 + SSIM, densify and prune with
gsplat's DefaultStrategy, which is pure PyTorch and so runs on the CPU too)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from gsplat.strategy import DefaultStrategy

from recon.errors import ReconError
from recon.events import Observer
from recon.gaussians import Gaussians
from recon.losses import photometric_loss, psnr
from recon.render import rasterize
from recon.scene import Scene


@dataclass
class DensifyConfig:
    enabled: bool = True
    """Grow (clone/split) and prune Gaussians with gsplat's DefaultStrategy."""
    start: int = 500
    """First step that densifies."""
    stop: int = 15_000
    """Last step that densifies."""
    every: int = 100
    """Densify every this many steps."""
    grow_grad2d: float = 0.0002
    """Grow Gaussians whose mean screen-space gradient exceeds this."""
    reset_opacity_every: int = 3000
    """Reset opacities to a small value this often (3DGS's floater control)."""
    prune_opacity: float = 0.005
    """Prune Gaussians below this opacity."""
    max_gaussians: int = 1_000_000
    """Stop growing beyond this many Gaussians (keeps CPU runs bounded)."""


@dataclass
class OptimizeConfig:
    steps: int = 7000
    """Optimisation steps (one training view per step)."""
    ssim_lambda: float = 0.2
    """Weight of (1 - SSIM) in the photometric loss."""
    sh_degree_interval: int = 1000
    """Raise the active SH degree by one every this many steps, up to the init's degree."""
    lr_means: float = 1.6e-4
    """Learning rate of the means, times the scene radius; decays exponentially to 1% at the end."""
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacities: float = 5e-2
    lr_sh0: float = 2.5e-3
    lr_shN: float = 2.5e-3 / 20
    use_masks: bool = False
    """Train on masked images (object on a black background) when the views have masks."""
    densify: DensifyConfig = field(default_factory=DensifyConfig)
    backend: str = "auto"
    """Rasterizer: auto (gsplat on CUDA, else cpu), gsplat, cpu, reference."""
    stream_every_s: float = 0.3
    """Send the current splat to observers (the viewer) at most this often, in seconds."""
    seed: int = 0


@dataclass
class TrainLog:
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    num_gaussians: list[int] = field(default_factory=list)
    seconds: float = 0.0


def _targets(scene: Scene, use_masks: bool, device: torch.device) -> list[torch.Tensor]:
    out = []
    for v in scene.views:
        img = v.image
        if use_masks and v.mask is not None:
            img = img * v.mask[..., None]
        out.append(torch.from_numpy(np.ascontiguousarray(img)).float().to(device))
    return out


def _optimizers(params: torch.nn.ParameterDict, cfg: OptimizeConfig, scene_radius: float) -> dict:
    lrs = {"means": cfg.lr_means * scene_radius, "scales": cfg.lr_scales, "quats": cfg.lr_quats,
           "opacities": cfg.lr_opacities, "sh0": cfg.lr_sh0, "shN": cfg.lr_shN}
    # eps=1e-15 as in 3DGS: gradients of far Gaussians are tiny and must still move them.
    return {k: torch.optim.Adam([{"params": params[k], "lr": lr, "name": k}], eps=1e-15) for k, lr in lrs.items()}


def _check_finite(params: torch.nn.ParameterDict, step: int) -> None:
    # NaN Gaussians are culled by the rasterizer, so a finite loss alone does not prove health.
    for name, p in params.items():
        if not torch.isfinite(p).all():
            raise ReconError(f"optimisation diverged at step {step}: non-finite {name}; "
                             "try lower learning rates or fewer densification steps")


def run_optimize(
    cfg: OptimizeConfig, scene: Scene, init: Gaussians, obs: Observer, device: str = "cpu"
) -> tuple[Gaussians, TrainLog]:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    dev = torch.device(device)
    _, radius = scene.bounds()
    params = init.params(dev)
    optimizers = _optimizers(params, cfg, radius)
    means_decay = 0.01 ** (1 / max(cfg.steps, 1))
    d = cfg.densify
    strategy = DefaultStrategy(
        refine_start_iter=d.start, refine_stop_iter=d.stop if d.enabled else 0, refine_every=d.every,
        grow_grad2d=d.grow_grad2d, reset_every=d.reset_opacity_every, prune_opa=d.prune_opacity,
    )
    strategy.check_sanity(params, optimizers)
    state = strategy.initialize_state(scene_scale=radius)
    targets = _targets(scene, cfg.use_masks, dev)
    viewmats = [torch.tensor(v.camera.world_to_cam, dtype=torch.float32, device=dev)[None] for v in scene.views]
    Ks = [torch.tensor(v.camera.K, dtype=torch.float32, device=dev)[None] for v in scene.views]
    max_degree = init.sh_degree
    log = TrainLog()
    t0 = last_stream = time.perf_counter()
    order: list[int] = []
    obs.gaussians_updated(init, 0)
    for step in range(cfg.steps):
        while obs.should_pause():
            time.sleep(0.1)
        if not order:
            order = list(rng.permutation(len(scene.views)))
        i = order.pop()
        cam = scene.views[i].camera
        degree = min(step // cfg.sh_degree_interval, max_degree)
        colors = torch.cat([params["sh0"], params["shN"]], 1)
        renders, _, info = rasterize(
            params["means"], params["quats"], torch.exp(params["scales"]), torch.sigmoid(params["opacities"]),
            colors, viewmats[i], Ks[i], cam.width, cam.height, sh_degree=degree, backend=cfg.backend,
        )
        strategy.step_pre_backward(params, optimizers, state, step, info)
        loss = photometric_loss(renders, targets[i][None], cfg.ssim_lambda)
        if not torch.isfinite(loss):
            raise ReconError(f"optimisation diverged at step {step} (loss is {loss.item()}); "
                             "try lower learning rates or fewer densification steps")
        loss.backward()
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        _check_finite(params, step)
        for group in optimizers["means"].param_groups:
            group["lr"] *= means_decay
        # At the cap densification stops altogether (growing and pruning), keeping runs bounded.
        if d.enabled and len(params["means"]) < d.max_gaussians:
            strategy.step_post_backward(params, optimizers, state, step, info, packed=False)
        if step % 10 == 0 or step == cfg.steps - 1:
            p = psnr(renders.detach(), targets[i][None]).item()
            metrics = {"loss": loss.item(), "psnr": p, "gaussians": len(params["means"]), "total": cfg.steps}
            log.steps.append(step)
            log.loss.append(metrics["loss"])
            log.psnr.append(p)
            log.num_gaussians.append(len(params["means"]))
            obs.step_metrics(step, metrics)
        now = time.perf_counter()
        if now - last_stream >= cfg.stream_every_s:
            obs.gaussians_updated(Gaussians.from_params(params), step)
            last_stream = now
    result = Gaussians.from_params(params)
    log.seconds = time.perf_counter() - t0
    obs.gaussians_updated(result, cfg.steps)
    return result, log
