"""The Trainer's few-view parts: pseudo views lower their depth-smoothness and hull-silhouette losses,
pseudo cameras interpolate between the training cameras; the losses themselves behave."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from recon import losses
from recon.events import Observer
from recon.gaussians import Gaussians
from recon.stages.optimize import OptimizeConfig, run_optimize
from recon.train.parts.pseudo import interpolate_camera, sample_pseudo_camera

from synthetic import colored_blob, render_scene, ring_cameras


@pytest.fixture(scope="module")
def blob_scene():
    return render_scene(colored_blob(300), ring_cameras(3, 32, 24))


def short_config(steps: int = 25, **changes) -> OptimizeConfig:
    cfg = OptimizeConfig(steps=steps, backend="cpu", stream_every_s=1e9)
    cfg.densify = dataclasses.replace(cfg.densify, enabled=False)
    return dataclasses.replace(cfg, **changes)


def init_for(scene) -> Gaussians:
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(150, 3)).astype(np.float32) * 0.6
    return Gaussians.from_points(pts, None, sh_degree=0, opacity=0.5, scale=0.2)


def _hull_alpha_mismatch(g: Gaussians, scene) -> float:
    """Mean |alpha − hull silhouette| over fixed pseudo views."""
    from recon.init.visual_hull import hull_silhouette, visual_hull
    from recon.train.parts.pseudo import sample_pseudo_camera
    from recon.render import rasterize

    grid = visual_hull(scene, 32)
    means, quats, scales, opac = g.activated()
    rng, total = np.random.default_rng(7), 0.0
    for _ in range(4):
        cam = sample_pseudo_camera(scene.cameras, rng)
        _, alpha, _ = rasterize(means, quats, scales, opac, g.colors_sh,
                                torch.tensor(cam.world_to_cam, dtype=torch.float32)[None],
                                torch.tensor(cam.K, dtype=torch.float32)[None], cam.width, cam.height,
                                sh_degree=0, backend="cpu")
        sil = torch.from_numpy(hull_silhouette(grid, cam)).float()
        total += (alpha[0, ..., 0] - sil).abs().mean().item()
    return total / 4


def test_hull_alpha_in_pseudo_views_lowers_its_loss(blob_scene):
    assert blob_scene.has_masks
    g0 = init_for(blob_scene)
    cfg = short_config(30)
    pseudo = dataclasses.replace(cfg.regularize.pseudo, every=1, hull_alpha=2.0, hull_resolution=32, scale=0.5)
    reg_cfg = dataclasses.replace(cfg, regularize=dataclasses.replace(cfg.regularize, pseudo=pseudo))
    plain = run_optimize(short_config(30), blob_scene, g0, Observer()).gaussians
    reg = run_optimize(reg_cfg, blob_scene, g0, Observer()).gaussians
    assert _hull_alpha_mismatch(reg, blob_scene) < 0.9 * _hull_alpha_mismatch(plain, blob_scene)


def test_depth_smoothness_is_zero_for_a_flat_depth_and_positive_for_noise():
    flat = torch.ones(1, 8, 8, 1)
    noisy = flat + torch.rand(1, 8, 8, 1)
    assert losses.depth_smoothness(flat).item() == 0.0
    assert losses.depth_smoothness(noisy).item() > 0.05


def test_pearson_depth_loss_ignores_scale_and_shift():
    d = torch.rand(10, 12)
    assert losses.pearson_depth_loss(d, 3 * d + 1).item() < 1e-5
    assert losses.pearson_depth_loss(d, -d).item() < 1e-5, "inverse depth: the sign is free"
    assert losses.pearson_depth_loss(d, torch.rand(10, 12)).item() > 0.5


def test_pseudo_camera_interpolates_between_training_cameras():
    a, b = ring_cameras(4)[:2]
    assert np.allclose(interpolate_camera(a, b, 0.0).world_to_cam, a.world_to_cam, atol=1e-6)
    assert np.allclose(interpolate_camera(a, b, 1.0).world_to_cam, b.world_to_cam, atol=1e-6)
    mid = interpolate_camera(a, b, 0.5)
    R = mid.world_to_cam[:3, :3]
    assert np.allclose(R @ R.T, np.eye(3), atol=1e-6)
    assert np.allclose(mid.center, (a.center + b.center) / 2)
    cam = sample_pseudo_camera([a, b], np.random.default_rng(0), jitter=0.0, scale=0.5)
    assert cam.width == a.width // 2
    t = np.linalg.norm(cam.center - a.center) / np.linalg.norm(b.center - a.center)
    assert 0.1 < t < 0.9


def test_pseudo_view_depth_smoothness_lowers_its_loss(blob_scene):
    g0 = init_for(blob_scene)
    cfg = short_config(30)
    pseudo = dataclasses.replace(cfg.regularize.pseudo, every=1, depth_smooth=2.0, scale=0.5)
    reg_cfg = dataclasses.replace(cfg, regularize=dataclasses.replace(cfg.regularize, pseudo=pseudo))
    plain = run_optimize(short_config(30), blob_scene, g0, Observer()).gaussians
    reg = run_optimize(reg_cfg, blob_scene, g0, Observer()).gaussians
    assert _pseudo_smoothness(reg, blob_scene) < _pseudo_smoothness(plain, blob_scene)


def _pseudo_smoothness(g: Gaussians, scene) -> float:
    """Mean edge-aware depth smoothness over fixed pseudo views."""
    from recon.render import rasterize

    means, quats, scales, opac = g.activated()
    rng, total = np.random.default_rng(3), 0.0
    for _ in range(4):
        cam = sample_pseudo_camera(scene.cameras, rng)
        out, alpha, _ = rasterize(means, quats, scales, opac, g.colors_sh,
                                  torch.tensor(cam.world_to_cam, dtype=torch.float32)[None],
                                  torch.tensor(cam.K, dtype=torch.float32)[None], cam.width, cam.height,
                                  sh_degree=0, render_mode="RGB+D", backend="cpu")
        depth = out[..., 3:] / alpha.clamp_min(1e-6)
        total += losses.depth_smoothness(depth, out[..., :3], alpha).item()
    return total / 4
