"""Mip-Splatting's 3D smoothing filter: footprints, the preserved integral, and the baked splat
rendering as trained."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from recon.events import Observer
from recon.render import rasterize
from recon.scene import Camera
from recon.stages.optimize import OptimizeConfig, run_optimize
from recon.train.parts import filter3d
from recon.train.splat import Splat

from synthetic import colored_blob, look_at, random_init, render_scene, ring_cameras


def _camera(eye, f: float = 50.0, w: int = 40, h: int = 30) -> Camera:
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])
    return Camera(K, look_at(np.asarray(eye, float), np.zeros(3)), w, h)


def test_footprint_is_depth_over_focal_in_the_sharpest_camera_and_fills_unseen():
    near, far = _camera([0, -2.0, 0.0]), _camera([0, -8.0, 0.0])
    means = torch.tensor([[0.0, 0.0, 0.0], [0.0, -50.0, 0.0]])  # the second is behind both cameras
    fp = filter3d.pixel_footprint(means, [far, near])
    assert torch.isclose(fp[0], torch.tensor(2.0 / 50.0)), fp  # the near camera wins
    assert torch.isclose(fp[1], fp[0]), "unseen Gaussians take the largest footprint among the seen"


def test_filter_widens_every_axis_and_keeps_the_integral():
    log_scales = torch.log(torch.tensor([[0.01, 0.2, 0.3], [0.5, 0.5, 0.5]]))
    logit = torch.tensor([2.0, 0.0])
    var = torch.tensor([0.05**2, 0.05**2])
    scales, opac = filter3d.apply_filter(log_scales, logit, var)
    assert (scales > torch.exp(log_scales)).all() and (scales >= 0.05).all()
    integral = lambda s, o: o * s.prod(-1)  # noqa: E731  ∝ opacity × sqrt(det Σ)
    assert torch.allclose(integral(scales, opac), integral(torch.exp(log_scales), torch.sigmoid(logit)))
    assert opac[0] < 0.5 * torch.sigmoid(logit[0]), "a needle fades as it widens"


def test_baked_splat_renders_as_the_filtered_training_splat():
    cams = ring_cameras(3, 32, 24)
    g = colored_blob(200)
    g.scales[:] = np.log(0.005)  # far below a pixel: the filter matters
    splat = Splat(g, OptimizeConfig(backend="cpu"), 1.0, torch.device("cpu"), cams)
    splat.enable_filter(1.0)
    cam = cams[0]
    vm = torch.tensor(cam.world_to_cam, dtype=torch.float32)[None]
    K = torch.tensor(cam.K, dtype=torch.float32)[None]
    with torch.no_grad():
        trained, _, _ = splat.render(vm, K, cam.width, cam.height, 0)
        baked = splat.gaussians()
        means, quats, scales, opac = baked.activated()
        saved, _, _ = rasterize(means, quats, scales, opac, baked.colors_sh, vm, K, cam.width, cam.height,
                                sh_degree=0, backend="cpu")
        raw, _, _ = rasterize(*g.activated(), g.colors_sh, vm, K, cam.width, cam.height, sh_degree=0,
                              backend="cpu")
    assert torch.allclose(trained, saved, atol=1e-4), float((trained - saved).abs().max())
    assert (trained - raw).abs().max() > 0.05, "the filter changed nothing"


def test_optimisation_with_the_filter_keeps_gaussians_at_least_k_pixels_wide():
    scene = render_scene(colored_blob(300), ring_cameras(3, 32, 24))
    init = random_init(150)
    cfg = OptimizeConfig(steps=30, backend="cpu", stream_every_s=1e9)
    cfg.densify = dataclasses.replace(cfg.densify, enabled=False)
    cfg.regularize = dataclasses.replace(cfg.regularize, filter_3d=0.5)
    trained = run_optimize(cfg, scene, init, Observer())
    out, log = trained.gaussians, trained.log
    floor = 0.5 * filter3d.pixel_footprint(out.means, scene.cameras)
    assert (torch.exp(out.scales).min(-1).values >= floor * 0.999).all()
    assert log.loss[-1] < log.loss[0]
