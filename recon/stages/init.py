"""init: the first Gaussians. SfM points when the poses stage made them, otherwise random points
inside the training cameras' frusta (between near and far), coloured from the photo they were
sampled in — which works for objects the cameras orbit and for forward-facing scenes alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from recon.errors import ReconError
from recon.events import Observer
from recon.gaussians import Gaussians
from recon.scene import Scene


@dataclass
class InitConfig:
    method: Literal["auto", "points", "random"] = "auto"
    """auto: SfM points when there are at least `min_points`, else random; points: require them."""
    num_random: int = 20_000
    """How many Gaussians a random init seeds."""
    min_points: int = 100
    """Fewer SfM points than this are not worth starting from (auto falls back to random)."""
    opacity: float = 0.1
    """Initial opacity of every Gaussian."""
    sh_degree: int = 3
    """Spherical-harmonics degree of the colours (0 = view-independent)."""
    seed: int = 0


def run_init(cfg: InitConfig, scene: Scene, obs: Observer) -> Gaussians:
    have_points = scene.points is not None and len(scene.points) >= cfg.min_points
    if cfg.method == "points" and not have_points:
        raise ReconError("init.method=points but the poses stage produced too few points "
                         f"({0 if scene.points is None else len(scene.points)})", scene.source)
    if cfg.method != "random" and have_points:
        colors = scene.point_colors if scene.point_colors is not None else None
        obs.log(f"init: {len(scene.points)} SfM points")
        return Gaussians.from_points(scene.points, colors, sh_degree=cfg.sh_degree, opacity=cfg.opacity)
    points, colors = sample_frusta(scene, cfg.num_random, np.random.default_rng(cfg.seed))
    obs.log(f"init: {len(points)} random points inside the camera frusta")
    return Gaussians.from_points(points, colors, sh_degree=cfg.sh_degree, opacity=cfg.opacity)


def depth_range(scene: Scene) -> tuple[float, float]:
    """(near, far) for sampling: the dataset's own when it has them (LLFF), else around the bounds."""
    if "near" in scene.meta and "far" in scene.meta:
        return float(scene.meta["near"]), float(scene.meta["far"])
    centre, radius = scene.bounds()
    dists = [float(np.linalg.norm(c.center - centre)) for c in scene.cameras]
    d = float(np.mean(dists))
    return max(d - radius, 1e-3 * d), d + radius


def sample_frusta(scene: Scene, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n points [n,3] uniform in pixels and in inverse depth (denser near the camera, as for a
    forward-facing scene) inside the views' frusta; colours [n,3] from the pixel they came from.
    With masks, pixels are drawn from the object only."""
    near, far = depth_range(scene)
    views = scene.views
    per_view = np.full(len(views), n // len(views))
    per_view[: n % len(views)] += 1
    pts, cols = [], []
    for view, m in zip(views, per_view):
        cam = view.camera
        if view.mask is not None and view.mask.any():
            ys, xs = np.nonzero(view.mask)
            pick = rng.integers(0, len(xs), m)
            u, v = xs[pick] + rng.random(m), ys[pick] + rng.random(m)
        else:
            u, v = rng.random(m) * cam.width, rng.random(m) * cam.height
        inv = rng.uniform(1 / far, 1 / near, m)
        z = 1 / inv
        rays = np.linalg.solve(cam.K, np.stack([u, v, np.ones(m)]))  # [3,m] with z = 1
        cam_pts = rays * z
        c2w = cam.cam_to_world
        pts.append((c2w[:3, :3] @ cam_pts + c2w[:3, 3:4]).T)
        cols.append(view.image[np.clip(v.astype(int), 0, cam.height - 1), np.clip(u.astype(int), 0, cam.width - 1)])
    return np.concatenate(pts).astype(np.float32), np.concatenate(cols).astype(np.float32)
