"""recon.io.llff: axis convention, images_N and focal scaling, fern, count mismatch."""

from __future__ import annotations

import numpy as np
import pytest
from test_io_fixtures import assert_one_line_naming, photo_consistency, real, synthetic_scene

from recon.errors import ReconError
from recon.io.images import save_image
from recon.io.llff import llff_to_opencv, opencv_to_llff, read_llff
from recon.scene import Camera, View


def test_llff_axes_map_to_opencv():
    # An OpenGL-style camera at the origin looking down -z with +y up, written in LLFF's
    # (down, right, back) columns: down = -y, right = +x, back = +z.
    pose = np.zeros((3, 5))
    pose[:, 0], pose[:, 1], pose[:, 2] = [0, -1, 0], [1, 0, 0], [0, 0, 1]
    pose[:, 4] = [30, 40, 50]
    w2c = llff_to_opencv(pose)
    pts = np.array([[0, 0, -5.0], [1, 0, -5], [0, 1, -5]])
    cam = w2c[:3, :3] @ pts.T + w2c[:3, 3:4]
    np.testing.assert_allclose(cam[2], 5)  # in front, at depth 5
    assert cam[0, 1] > 0 and abs(cam[1, 1]) < 1e-12  # world +x is image right
    assert cam[1, 2] < 0 and abs(cam[0, 2]) < 1e-12  # world +y is image up (OpenCV y is down)
    np.testing.assert_allclose(opencv_to_llff(w2c, 30, 40, 50), pose, atol=1e-12)


def _fixture(tmp_path, factor: int):
    """poses_bounds.npy from the synthetic cameras (full size 4x theirs) and images_{factor}/."""
    scene = synthetic_scene(3, w=40, h=30, masks=False)
    rows = []
    for v in scene.views:
        f = v.camera.K[0, 0] * 4
        pose = opencv_to_llff(v.camera.world_to_cam, 120, 160, f)
        rows.append(np.r_[pose.ravel(), 2.0, 9.0])
    np.save(tmp_path / "poses_bounds.npy", np.array(rows))
    d = tmp_path / f"images_{factor}" if factor > 1 else tmp_path / "images"
    d.mkdir()
    for v in scene.views:
        save_image(d / f"img{v.index:03d}.png", np.zeros((120 // factor, 160 // factor, 3)))
    return scene


def test_images_n_and_focal_scaling(tmp_path):
    scene = _fixture(tmp_path, 4)
    got = read_llff(tmp_path, downscale=4)
    assert [v.index for v in got.views] == [0, 1, 2] and got.views[0].name == "img000"
    for a, b in zip(scene.views, got.views):
        K = np.array([[a.camera.K[0, 0], 0, 20], [0, a.camera.K[0, 0], 15], [0, 0, 1]])  # centred, fx = fy
        np.testing.assert_allclose(b.camera.K, K, atol=1e-9)
        np.testing.assert_allclose(b.camera.world_to_cam, a.camera.world_to_cam, atol=1e-12)
    assert got.meta["near"] == 2.0 and got.meta["far"] == 9.0
    # A bigger factor shrinks images_4 further; focal follows.
    half = read_llff(tmp_path, downscale=8, indices=[1])
    assert half.views[0].image.shape == (15, 20, 3)
    assert half.views[0].camera.K[0, 0] == pytest.approx(scene.views[1].camera.K[0, 0] / 2)
    # No full-size images: downscale=1 falls back to the smallest shipped copy.
    assert read_llff(tmp_path).views[0].image.shape == (30, 40, 3)


def test_count_mismatch(tmp_path):
    _fixture(tmp_path, 1)
    with pytest.raises(ReconError) as e:  # LLFF ships no masks
        read_llff(tmp_path / "poses_bounds.npy", with_masks=True)
    assert_one_line_naming(e.value, tmp_path / "masks" / "img000.png")
    (tmp_path / "images" / "img002.png").unlink()
    with pytest.raises(ReconError, match="3 poses .* 2 images") as e:
        read_llff(tmp_path)
    assert_one_line_naming(e.value, tmp_path / "images")


def test_fern_cameras_face_the_scene_between_near_and_far():
    root = real("llff_fern")
    scene = read_llff(root, downscale=8)
    assert len(scene) == 20 and [v.index for v in scene.views] == list(range(20))
    assert scene.views[0].name == "image000" and scene.views[0].image.shape == (378, 504, 3)
    pb = np.load(root / "poses_bounds.npy")
    f = pb[0, 14] / 8
    np.testing.assert_allclose(scene.views[0].camera.K, [[f, 0, 252], [0, f, 189], [0, 0, 1]])
    near, far = scene.meta["near"], scene.meta["far"]
    assert 0 < near < far
    # Forward-facing: every camera looks within 15 degrees of the mean direction ...
    fwd = np.stack([c.forward for c in scene.cameras])
    mean = fwd.mean(0) / np.linalg.norm(fwd.mean(0))
    assert (fwd @ mean > np.cos(np.radians(15))).all()
    # ... and the point halfway between near and far on the mean axis is in front of every camera,
    # inside its image, at a depth between that camera's near and far bounds.
    centres = np.stack([c.center for c in scene.cameras])
    target = centres.mean(0) + mean * (near + far) / 2
    for v in scene.views:
        pix, depth = v.camera.project(target[None])
        (u, w), z = pix[0], depth[0]
        n, fr = scene.meta["view_bounds"][v.name]
        assert n < z < fr
        assert 0 < u < 504 and 0 < w < 378
    # The checks above are self-consistent; the images are the independent witness: a patch sweep
    # between near and far finds the same texture in a neighbouring view ...
    assert photo_consistency(scene.views[0], scene.views[3], near, far) > 0.75
    # ... which a classic convention bug (LLFF's down/right columns swapped, back kept) destroys.
    def swapped(v):
        c2w = v.camera.cam_to_world
        c2w[:3, [0, 1]] = c2w[:3, [1, 0]]
        c2w[:3, 2] *= -1
        return View(v.name, v.index, Camera(v.camera.K, np.linalg.inv(c2w), 504, 378), v.image)

    assert photo_consistency(swapped(scene.views[0]), swapped(scene.views[3]), near, far) < 0.6
