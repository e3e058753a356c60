"""Multi-view photometric consistency: reprojection is exact, and the loss is lowest at the true
depth, with a gradient that points there."""

from __future__ import annotations

import numpy as np
import torch

from recon.regularize.warp import reproject, warp_loss
from recon.render import rasterize

from synthetic import colored_blob, render_scene, ring_cameras


def test_reprojection_lands_where_the_point_projects():
    cams = ring_cameras(6, 48, 36)
    ci, cj = cams[0], cams[1]
    depth = torch.full((36, 48), 3.5, dtype=torch.float64)
    uv, ahead = reproject(depth, ci, cj)
    r, c = 20, 30
    ray = np.linalg.inv(ci.K) @ np.array([c + 0.5, r + 0.5, 1.0]) * 3.5
    world = ci.cam_to_world @ np.append(ray, 1.0)
    pj = cj.K @ (cj.world_to_cam @ world)[:3]
    assert ahead[r, c]
    assert np.allclose(uv[r, c].numpy(), pj[:2] / pj[2], atol=1e-9)


def test_warp_loss_is_lowest_at_the_true_depth_and_its_gradient_points_there():
    g = colored_blob(400)
    cams = ring_cameras(8, 64, 48)
    scene = render_scene(g, cams[:2])
    ci, cj = cams[0], cams[1]
    means, quats, scales, opac = g.activated()
    with torch.no_grad():
        out, alpha, _ = rasterize(means, quats, scales, opac, g.colors_sh,
                                  torch.tensor(ci.world_to_cam, dtype=torch.float32)[None],
                                  torch.tensor(ci.K, dtype=torch.float32)[None], 64, 48, sh_degree=0,
                                  render_mode="RGB+D", backend="cpu")
    depth = out[0, ..., 3] / alpha[0, ..., 0].clamp_min(1e-6)
    valid = alpha[0, ..., 0] > 0.99
    img_i = torch.from_numpy(scene.views[0].image)
    img_j = torch.from_numpy(scene.views[1].image)
    loss = {s: warp_loss(depth * s, img_i, img_j, ci, cj, valid).item() for s in (0.9, 1.0, 1.1)}
    assert loss[1.0] < loss[0.9] and loss[1.0] < loss[1.1], loss
    scale = torch.tensor(1.08, requires_grad=True)
    warp_loss(depth * scale, img_i, img_j, ci, cj, valid).backward()
    assert scale.grad > 0, "a depth too far should be pulled nearer"
