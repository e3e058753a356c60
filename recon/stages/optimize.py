"""optimize: fit the Gaussians to the training views (3DGS: Adam, L1 + SSIM, densify and prune with
gsplat's DefaultStrategy, which is pure PyTorch and so runs on the CPU too), plus the few-view
parts of recon/regularize (masked training on a random background, regularisers, pseudo views,
proximity densification, co-regularisation, floater pruning), each behind its own switch."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from recon import losses
from recon.cpu_share import CpuShare
from recon.errors import ReconError
from recon.events import Observer
from recon.gaussians import Gaussians
from recon.regularize import coreg, floaters, proximity, warp
from recon.regularize.config import Background, RegularizeConfig
from recon.regularize.pseudo import sample_pseudo_camera
from recon.scene import Camera, Scene
from recon.stages.splat import FILTER_REFRESH_EVERY, Splat


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
    """Train on the object only when the views have masks: outside the mask the target is the
    background, so the splat learns the silhouette too."""
    background: Background = "black"
    """Background behind the splat in training: black, white, or random per step (random makes
    the object opaque and everything else transparent, whatever colour the test renders use)."""
    densify: DensifyConfig = field(default_factory=DensifyConfig)
    regularize: RegularizeConfig = field(default_factory=RegularizeConfig)
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


def _camera_tensors(cam: Camera, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.tensor(cam.world_to_cam, dtype=torch.float32, device=dev)[None],
            torch.tensor(cam.K, dtype=torch.float32, device=dev)[None])


def _check_finite(params: torch.nn.ParameterDict, step: int) -> None:
    # NaN Gaussians are culled by the rasterizer, so a finite loss alone does not prove health.
    for name, p in params.items():
        if not torch.isfinite(p).all():
            raise ReconError(f"optimisation diverged at step {step}: non-finite {name}; "
                             "try lower learning rates or fewer densification steps")


def _background(kind: str, gen: torch.Generator, dev: torch.device) -> torch.Tensor:
    if kind == "random":
        return torch.rand(3, generator=gen).to(dev)
    return torch.full((3,), 1.0 if kind == "white" else 0.0, device=dev)


def _param_regularizers(splat: Splat, reg: RegularizeConfig, radius: float) -> torch.Tensor:
    loss = splat.params["means"].new_zeros(())
    if reg.opacity_entropy > 0:
        loss = loss + reg.opacity_entropy * losses.opacity_entropy(torch.sigmoid(splat.params["opacities"]))
    if reg.scale > 0:
        loss = loss + reg.scale * losses.scale_penalty(splat.params["scales"], reg.max_scale * radius, reg.max_ratio)
    if reg.flatten > 0:
        loss = loss + reg.flatten * losses.flatness(splat.params["scales"])
    return loss


def run_optimize(
    cfg: OptimizeConfig, scene: Scene, init: Gaussians, obs: Observer, device: str = "cpu",
    share_cpu: bool = False,
) -> tuple[Gaussians, TrainLog]:
    """Train; with share_cpu (and on the CPU) use fewer threads while other processes are busy."""
    share = CpuShare() if share_cpu and device == "cpu" else None
    try:
        return _optimize(cfg, scene, init, obs, device, share)
    finally:
        if share is not None:
            share.close()
            if share.reduced_steps:
                obs.log(f"optimize: other processes were using the CPU; {share.reduced_steps} of "
                        f"{cfg.steps} steps ran on fewer than {share.max_threads} threads")


def _optimize(cfg: OptimizeConfig, scene: Scene, init: Gaussians, obs: Observer, device: str,
              share: CpuShare | None) -> tuple[Gaussians, TrainLog]:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    dev = torch.device(device)
    reg = cfg.regularize
    _, radius = scene.bounds()
    splats = [Splat(init, cfg, radius, dev, scene.cameras)]
    if reg.coreg.enabled:
        splats.append(Splat(coreg.perturbed(init, cfg.seed + reg.coreg.seed_offset, radius), cfg, radius, dev,
                            scene.cameras))
    means_decay = 0.01 ** (1 / max(cfg.steps, 1))
    masked = cfg.use_masks and scene.has_masks
    images = [torch.from_numpy(np.ascontiguousarray(v.image)).float().to(dev) for v in scene.views]
    masks = [torch.from_numpy(v.mask).to(dev)[..., None] if masked else None for v in scene.views]
    cams = [_camera_tensors(v.camera, dev) for v in scene.views]
    prior = None
    if reg.depth_prior.model and (reg.depth_prior.weight > 0 or reg.depth_prior.pseudo_weight > 0):
        from recon.priors.depth import load_depth_prior

        prior = load_depth_prior(reg.depth_prior.model, device=device)
        prior_maps = [prior.predict(v.image).to(dev) for v in scene.views]
        obs.log(f"optimize: monocular depth prior {reg.depth_prior.model}")
    stereo = _stereo_targets(scene, reg, dev) if reg.stereo_depth.weight > 0 else None
    pivot = scene.bounds()[0]  # the object's centre, for orbiting pseudo cameras
    hull = None
    if reg.pseudo.every > 0 and reg.pseudo.hull_alpha > 0 and scene.has_masks:
        from recon.init.visual_hull import visual_hull

        grid = visual_hull(scene, reg.pseudo.hull_resolution)
        hull = (grid, grid.centres(grid.surface()))
    need_depth = reg.depth_smooth > 0 or reg.warp > 0 or (prior is not None and reg.depth_prior.weight > 0) or stereo is not None
    max_degree = init.sh_degree
    log = TrainLog()
    t0 = last_stream = time.perf_counter()
    order: list[int] = []
    obs.gaussians_updated(init, 0)
    for step in range(cfg.steps):
        while obs.should_pause():
            time.sleep(0.1)
        if share is not None:
            share.apply()
        if not order:
            order = list(rng.permutation(len(scene.views)))
        i = order.pop()
        cam = scene.views[i].camera
        degree = min(step // cfg.sh_degree_interval, max_degree)
        bg = _background(cfg.background, gen, dev)
        target = images[i] if masks[i] is None else torch.where(masks[i], images[i], bg)
        total = 0.0
        infos, renders = [], []
        for splat in splats:
            out, alpha, info = splat.render(*cams[i], cam.width, cam.height, degree,
                                            "RGB+D" if need_depth else "RGB", bg)
            splat.strategy.step_pre_backward(splat.params, splat.optimizers, splat.state, step, info)
            rgb = out[..., :3]
            loss = losses.photometric_loss(rgb, target[None], cfg.ssim_lambda)
            if need_depth:
                depth = out[..., 3:4] / alpha.clamp_min(1e-6)
                if reg.depth_smooth > 0:
                    loss = loss + reg.depth_smooth * losses.depth_smoothness(depth, target[None], alpha)
                if reg.warp > 0 and len(scene.views) > 1:
                    others = [k for k in range(len(scene.views)) if k != i]
                    j = others[step % len(others)]  # not from rng: the other parts' draws stay as they were
                    valid = alpha[0, ..., 0].detach() > 0.5
                    if masks[i] is not None:
                        valid = valid & masks[i][..., 0]
                    loss = loss + reg.warp * warp.warp_loss(depth[0, ..., 0], images[i], images[j], cam,
                                                            scene.views[j].camera, valid)
                if stereo is not None:
                    d_ref, ok = stereo[i]
                    loss = loss + reg.stereo_depth.weight * ((depth[0, ..., 0] - d_ref).abs() / d_ref)[ok].mean()
                if prior is not None and reg.depth_prior.weight > 0:
                    loss = loss + reg.depth_prior.weight * losses.pearson_depth_loss(
                        depth[0, ..., 0], prior_maps[i], alpha[0, ..., 0].detach() > 0.5)
            loss = loss + _param_regularizers(splat, reg, radius)
            total = total + loss
            infos.append(info)
            renders.append(rgb)
        p = reg.pseudo
        if p.every > 0 and step >= p.start and step % p.every == 0:
            total = total + _pseudo_losses(splats, scene, cfg, rng, degree, dev, prior, hull, pivot)
        if not torch.isfinite(total):
            raise ReconError(f"optimisation diverged at step {step} (loss is {float(total)}); "
                             "try lower learning rates or fewer densification steps")
        total.backward()
        for splat, info in zip(splats, infos):
            splat.step(means_decay)
            _check_finite(splat.params, step)
            # At the cap densification stops altogether (growing and pruning), keeping runs bounded.
            if cfg.densify.enabled and len(splat) < cfg.densify.max_gaussians:
                splat.strategy.step_post_backward(splat.params, splat.optimizers, splat.state, step, info,
                                                  packed=False)
        _structure_updates(splats, scene, cfg, step, radius, obs)
        if step % FILTER_REFRESH_EVERY == 0:  # Gaussians move: their footprints change (Mip-Splatting: 100)
            for splat in splats:
                splat.refresh_filter(force=True)
        if step % 10 == 0 or step == cfg.steps - 1:
            ps = losses.psnr(renders[0].detach(), target[None]).item()
            metrics = {"loss": float(total.detach()), "psnr": ps, "gaussians": len(splats[0]), "total": cfg.steps}
            log.steps.append(step)
            log.loss.append(metrics["loss"])
            log.psnr.append(ps)
            log.num_gaussians.append(len(splats[0]))
            obs.step_metrics(step, metrics)
        now = time.perf_counter()
        if now - last_stream >= cfg.stream_every_s:
            obs.gaussians_updated(splats[0].gaussians(), step)
            last_stream = now
    _final_prune(splats, scene, cfg, radius, obs)
    result = splats[0].gaussians()
    log.seconds = time.perf_counter() - t0
    obs.gaussians_updated(result, cfg.steps)
    return result, log


def _stereo_targets(scene: Scene, reg: RegularizeConfig, dev: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per training view (depth [H,W], confident [H,W]) from plane-sweep stereo (masked views:
    object pixels only)."""
    from recon.init.plane_sweep import confident_depths
    from recon.stages.init import depth_range

    s = reg.stereo_depth
    near, far = depth_range(scene)
    out = []
    for view, (d, ok) in zip(scene.views, confident_depths(scene, near, far, s.window, s.coarse, s.min_score, s.rel_tol)):
        if view.mask is not None:
            ok = ok & view.mask
        out.append((torch.from_numpy(d).float().to(dev), torch.from_numpy(ok).to(dev)))
    return out


def _pseudo_losses(splats: list[Splat], scene: Scene, cfg: OptimizeConfig, rng: np.random.Generator,
                   degree: int, dev: torch.device, prior, hull=None, pivot: np.ndarray | None = None
                   ) -> torch.Tensor:
    """Losses in one pseudo view: depth smoothness, the depth prior, alpha against the visual
    hull's silhouette, and (with two splats) the agreement of their renders."""
    p, reg = cfg.regularize.pseudo, cfg.regularize
    cam = sample_pseudo_camera(scene.cameras, rng, p.jitter, p.scale, p.orbit_deg, pivot)
    vm, K = _camera_tensors(cam, dev)
    total = torch.zeros((), device=dev)
    silhouette = None
    if hull is not None:
        from recon.init.visual_hull import hull_silhouette

        grid, surface = hull
        silhouette = torch.from_numpy(hull_silhouette(grid, cam, surface)).float().to(dev)[None, ..., None]
    rgbs = []
    for splat in splats:
        out, alpha, _ = splat.render(vm, K, cam.width, cam.height, degree, "RGB+D")
        rgb, depth = out[..., :3], out[..., 3:4] / alpha.clamp_min(1e-6)
        rgbs.append(rgb)
        if p.depth_smooth > 0:
            total = total + p.depth_smooth * losses.depth_smoothness(depth, rgb.detach(), alpha)
        if silhouette is not None:
            total = total + p.hull_alpha * (alpha - silhouette).abs().mean()
        if prior is not None and reg.depth_prior.pseudo_weight > 0:
            target = prior.predict(rgb[0].detach().clamp(0, 1).cpu().numpy()).to(dev)
            total = total + reg.depth_prior.pseudo_weight * losses.pearson_depth_loss(
                depth[0, ..., 0], target, alpha[0, ..., 0].detach() > 0.5)
    if len(rgbs) == 2 and reg.coreg.pseudo_weight > 0:
        total = total + reg.coreg.pseudo_weight * (rgbs[0] - rgbs[1]).abs().mean()
    return total


def _structure_updates(splats: list[Splat], scene: Scene, cfg: OptimizeConfig, step: int, radius: float,
                       obs: Observer) -> None:
    """Pruning and growing that the densification strategy does not do, during densification."""
    reg, d = cfg.regularize, cfg.densify
    if not d.enabled or step < d.start or step > d.stop or step == 0:
        return
    pr = reg.prune
    if pr.outside_masks_every > 0 and step % pr.outside_masks_every == 0:
        for splat in splats:
            splat.remove(floaters.outside_masks(splat.params["means"], scene, pr.mask_dilate_px))
    px = reg.proximity
    if px.every > 0 and step % px.every == 0:
        for splat in splats:
            if len(splat) < d.max_gaussians:
                proximity.unpool(splat.params, splat.optimizers, splat.state, px.k, px.factor, px.max_new)
    if len(splats) == 2 and reg.coreg.prune_every > 0 and step % reg.coreg.prune_every == 0:
        coreg.co_prune(splats[0], splats[1], reg.coreg.prune_distance * radius)


def _final_prune(splats: list[Splat], scene: Scene, cfg: OptimizeConfig, radius: float, obs: Observer) -> None:
    """Floater elimination after training."""
    pr, reg = cfg.regularize.prune, cfg.regularize
    removed = {}
    if len(splats) == 2 and reg.coreg.prune_every > 0:
        removed["co-pruned"] = coreg.co_prune(splats[0], splats[1], reg.coreg.prune_distance * radius)[0]
    s = splats[0]
    if pr.final_outside_masks:
        removed["outside masks"] = s.remove(floaters.outside_masks(s.params["means"], scene, pr.mask_dilate_px))
    if pr.final_min_opacity > 0:
        removed["transparent"] = s.remove(torch.sigmoid(s.params["opacities"]) < pr.final_min_opacity)
    if pr.final_isolated_std > 0:
        removed["isolated"] = s.remove(floaters.isolated(s.params["means"], std_ratio=pr.final_isolated_std))
    if removed:
        obs.log("optimize: floaters removed: " + ", ".join(f"{v} {k}" for k, v in removed.items()))
