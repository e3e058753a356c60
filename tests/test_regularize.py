"""Few-view regularisers: each lowers its own loss when switched on; co-regularisation and mask
pruning remove planted floaters; proximity unpooling fills gaps; pseudo cameras interpolate."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from recon import losses
from recon.events import Observer
from recon.gaussians import Gaussians
from recon.regularize import coreg, floaters, proximity
from recon.regularize.pseudo import interpolate_camera, sample_pseudo_camera
from recon.stages.optimize import OptimizeConfig, run_optimize
from recon.stages.splat import Splat

from recon.scene import Camera

from synthetic import colored_blob, look_at, render_scene, ring_cameras


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


def with_reg(**changes) -> OptimizeConfig:
    cfg = short_config()
    return dataclasses.replace(cfg, regularize=dataclasses.replace(cfg.regularize, **changes))


def test_opacity_entropy_lowers_its_loss(blob_scene):
    g0 = init_for(blob_scene)
    plain, _ = run_optimize(short_config(), blob_scene, g0, Observer())
    reg, _ = run_optimize(with_reg(opacity_entropy=0.5), blob_scene, g0, Observer())
    h = lambda g: losses.opacity_entropy(torch.sigmoid(g.opacities)).item()  # noqa: E731
    assert h(reg) < h(plain) - 0.02, (h(reg), h(plain))


def test_scale_penalty_lowers_its_loss(blob_scene):
    g0 = init_for(blob_scene)
    g0.scales[:50, 0] += 0.7  # needles: twice as long as the other two axes, beyond max_ratio
    cfg = with_reg(scale=1.0, max_scale=0.1, max_ratio=1.5)
    plain, _ = run_optimize(short_config(), blob_scene, g0, Observer())
    reg, _ = run_optimize(cfg, blob_scene, g0, Observer())
    _, radius = blob_scene.bounds()
    p = lambda g: losses.scale_penalty(g.scales, 0.1 * radius, 1.5).item()  # noqa: E731
    assert p(reg) < 0.8 * p(plain), (p(reg), p(plain))


def test_flatten_lowers_its_loss_and_is_zero_for_discs(blob_scene):
    g0 = init_for(blob_scene)
    plain, _ = run_optimize(short_config(), blob_scene, g0, Observer())
    reg, _ = run_optimize(with_reg(flatten=1.0), blob_scene, g0, Observer())
    assert losses.flatness(reg.scales).item() < losses.flatness(plain.scales).item() - 0.05
    discs = torch.log(torch.tensor([[1e-4, 0.1, 0.2]]))
    assert losses.flatness(discs).item() < 1e-2 and abs(losses.flatness(torch.zeros(1, 3)).item() - 1) < 1e-6


def test_scale_penalty_spares_flat_discs_and_charges_needles():
    disc = torch.log(torch.tensor([[0.01, 0.01, 0.0001]]))  # surfaces are made of these
    needle = torch.log(torch.tensor([[0.01, 0.0001, 0.0001]]))
    assert losses.scale_penalty(disc, 1.0, 10.0).item() == 0.0
    assert losses.scale_penalty(needle, 1.0, 10.0).item() > 1.0


def _mean_depth_smoothness(g: Gaussians, scene) -> float:
    from recon.render import rasterize

    means, quats, scales, opac = g.activated()
    total = 0.0
    for v in scene.views:
        out, alpha, _ = rasterize(means, quats, scales, opac, g.colors_sh,
                                  torch.tensor(v.camera.world_to_cam, dtype=torch.float32)[None],
                                  torch.tensor(v.camera.K, dtype=torch.float32)[None], v.camera.width,
                                  v.camera.height, sh_degree=0, render_mode="RGB+D", backend="cpu")
        depth = out[..., 3:] / alpha.clamp_min(1e-6)
        total += losses.depth_smoothness(depth, out[..., :3], alpha).item()
    return total / len(scene)


def test_depth_smoothness_lowers_its_loss(blob_scene):
    g0 = init_for(blob_scene)
    plain, _ = run_optimize(short_config(), blob_scene, g0, Observer())
    reg, _ = run_optimize(with_reg(depth_smooth=2.0), blob_scene, g0, Observer())
    assert _mean_depth_smoothness(reg, blob_scene) < _mean_depth_smoothness(plain, blob_scene)


def test_pseudo_view_smoothness_and_coreg_agreement_run_and_lower_disagreement(blob_scene):
    cfg = short_config(30)
    pseudo = dataclasses.replace(cfg.regularize.pseudo, every=1, depth_smooth=0.5, scale=0.5)
    co = dataclasses.replace(cfg.regularize.coreg, enabled=True, prune_every=0, pseudo_weight=5.0)
    cfg = dataclasses.replace(cfg, regularize=dataclasses.replace(cfg.regularize, pseudo=pseudo, coreg=co))
    g, log = run_optimize(cfg, blob_scene, init_for(blob_scene), Observer())
    assert np.isfinite(log.loss).all() and len(g) == 150
    # With the agreement term the two splats render a pseudo view alike; the loss on it falls.
    assert log.loss[-1] < log.loss[0]


def _hull_alpha_mismatch(g: Gaussians, scene) -> float:
    """Mean |alpha − hull silhouette| over fixed pseudo views."""
    from recon.init.visual_hull import hull_silhouette, visual_hull
    from recon.regularize.pseudo import sample_pseudo_camera
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
    plain, _ = run_optimize(short_config(30), blob_scene, g0, Observer())
    reg, _ = run_optimize(reg_cfg, blob_scene, g0, Observer())
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


def _splat(g: Gaussians) -> Splat:
    return Splat(g, short_config(), 1.0, torch.device("cpu"))


def test_co_pruning_removes_a_planted_floater():
    g = colored_blob(200)
    floater = Gaussians.from_points(np.array([[2.5, 0.0, 0.5]], np.float32), None, sh_degree=0, scale=0.1)
    with_floater = Gaussians(**{k: torch.cat([getattr(g, k), getattr(floater, k)]) for k in Gaussians.KEYS})
    a = _splat(with_floater)
    b = _splat(coreg.perturbed(g, seed=1, radius=1.0))
    removed_a, removed_b = coreg.co_prune(a, b, distance=0.05)
    assert removed_a == 1 and removed_b == 0
    assert not torch.isclose(a.params["means"], torch.tensor([2.5, 0.0, 0.5])).all(-1).any()
    assert len(a) == 200 and a.optimizers["means"].param_groups[0]["params"][0] is a.params["means"]


def test_outside_masks_prunes_a_floater_in_front_of_the_object(blob_scene):
    g = colored_blob(300)
    cam = blob_scene.views[0].camera
    # 1.5 units in front of camera 0, 20° off its axis: in its frame, outside the silhouette.
    a = np.radians(20)
    floater = cam.center + 1.5 * cam.cam_to_world[:3, :3] @ np.array([np.sin(a), 0.0, np.cos(a)])
    means = torch.cat([g.means, torch.tensor(floater, dtype=torch.float32)[None]])
    out = floaters.outside_masks(means, blob_scene, dilate_px=1)
    assert out[-1] and out[:-1].float().mean() < 0.05


def test_isolated_flags_a_far_point():
    means = torch.cat([torch.randn(500, 3) * 0.3, torch.tensor([[5.0, 5.0, 5.0]])])
    flagged = floaters.isolated(means, k=8, std_ratio=3.0)
    assert flagged[-1] and flagged[:-1].sum() < 10


def test_proximity_unpooling_adds_midpoints_and_keeps_optimiser_state_aligned():
    grid = np.stack(np.meshgrid(*[np.arange(5) * 0.02] * 2, np.arange(4) * 0.02), -1).reshape(-1, 3)
    pts = np.concatenate([grid,
                          np.array([[1.0, 0, 0], [1.0, 0.4, 0], [1.0, 0, 0.4], [1.0, 0.4, 0.4]])]).astype(np.float32)
    s = _splat(Gaussians.from_points(pts, None, sh_degree=0, scale=0.02))
    loss = s.params["means"].sum() + s.params["scales"].sum()
    loss.backward()
    s.step(1.0)
    n = proximity.unpool(s.params, s.optimizers, s.state, k=3, factor=3.0, max_new=100)
    assert n > 0 and len(s) == 104 + n
    new = s.params["means"][104:].detach()
    assert (new[:, 0] > 0.4).all(), "midpoints between the sparse corner points, not in the cluster"
    for name in ("means", "scales"):  # the two that had gradients, hence Adam moments
        st = s.optimizers[name].state[s.params[name]]
        assert st["exp_avg"].shape == st["exp_avg_sq"].shape == s.params[name].shape
    (s.params["means"].sum()).backward()
    s.step(1.0)  # Adam runs on the grown tensors


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


def test_orbit_camera_keeps_the_pivot_in_view_at_the_same_distance():
    from recon.regularize.pseudo import orbit_camera

    a = Camera(np.array([[50.0, 0, 32], [0, 50, 24], [0, 0, 1]]), look_at(np.array([0, -4.0, 1]), np.zeros(3)), 64, 48)
    pivot = np.zeros(3)
    b = orbit_camera(a, pivot, np.array([0, 0, 1.0]), 90)
    assert np.allclose(b.center, [4, 0, 1], atol=1e-9), b.center  # a quarter turn about z
    pa, _ = a.project(pivot[None])
    pb, zb = b.project(pivot[None])
    assert np.allclose(pa, pb, atol=1e-6) and np.isclose(zb[0], np.linalg.norm(a.center))
    assert np.allclose(b.world_to_cam[:3, :3] @ b.world_to_cam[:3, :3].T, np.eye(3), atol=1e-9)
