"""recon.io.dtu: projection decomposition, NeuS/IDR layout, RegNeRF layout, and their agreement."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from test_io_fixtures import assert_one_line_naming, photo_consistency, real, synthetic_scene

from recon.errors import ReconError
from recon.io.dtu import decompose_projection, read_dtu_idr, read_dtu_regnerf
from recon.io.images import load_image, load_mask, save_image, save_mask


@pytest.mark.parametrize("scale", [1.0, 3.7, -0.02])
def test_decompose_projection_recovers_k_and_pose(scale):
    rng = np.random.default_rng(3)
    K = np.array([[2892.3, 0.4, 823.2], [0, 2883.1, 619.0], [0, 0, 1]])
    R = Rotation.from_rotvec(rng.normal(size=3)).as_matrix()
    t = rng.normal(size=3) * 100
    P = scale * K @ np.c_[R, t]
    K2, w2c = decompose_projection(P)
    np.testing.assert_allclose(K2, K, rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(w2c[:3, :3], R, atol=1e-12)
    np.testing.assert_allclose(w2c[:3, 3], t, rtol=1e-10)
    assert np.linalg.det(w2c[:3, :3]) == pytest.approx(1.0)


def test_idr_scan37_cameras_match_the_projection_matrices():
    root = real("dtu_scan37")
    cams = np.load(root / "cameras_sphere.npz")
    scene = read_dtu_idr(root, downscale=4, indices=[25, 22, 28])
    assert [v.index for v in scene.views] == [25, 22, 28]
    assert [v.name for v in scene.views] == ["000025", "000022", "000028"]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3)) * 0.3  # inside the unit sphere that holds the object
    for v in scene.views:
        assert v.image.shape == (300, 400, 3) and v.image.dtype == np.float32
        assert v.mask is not None and 0.05 < v.mask.mean() < 0.8
        P = (cams[f"world_mat_{v.index}"] @ cams[f"scale_mat_{v.index}"])[:3]
        uvw = np.c_[x, np.ones(len(x))] @ P.T
        expected = uvw[:, :2] / uvw[:, 2:] / 4  # full-res pixels → the 4x-downscaled image
        pix, depth = v.camera.project(x)
        np.testing.assert_allclose(pix, expected, atol=1e-3)
        assert (depth > 0).all()
        # The object (near the origin) is in view and masked there; the camera is outside the sphere.
        u, w = v.camera.project(np.zeros((1, 3)))[0][0]
        assert 0 < u < 400 and 0 < w < 300
        assert v.mask[int(w), int(u)]
        assert np.linalg.norm(v.camera.center) > 1.5
    assert photo_consistency(scene.views[1], scene.views[0], 1.5, 4.5) > 0.7  # views 22 and 25


def _regnerf_fixture(root, tmp_path, indices, *, mask_subdir: bool, scale: float = -2.5):
    """RegNeRF layout in tmp_path from scan37's NeuS files: 4x-downscaled rect_XXX_3_r5000.png,
    pos_XXX.txt = the DTU projection (world_mat) rescaled to those pixels (times `scale`), masks."""
    cams = np.load(root / "cameras_sphere.npz")
    rect = tmp_path / "Rectified" / "scan37"
    cal = tmp_path / "Calibration" / "cal18"
    masks = tmp_path / "idrmasks" / "scan37" / ("mask" if mask_subdir else "")
    for d in (rect, cal, masks):
        d.mkdir(parents=True, exist_ok=True)
    for i in indices:
        xxx = i + 1
        save_image(rect / f"rect_{xxx:03d}_3_r5000.png", load_image(root / "images" / f"{i:06d}.png", factor=4))
        save_image(rect / f"rect_{xxx:03d}_0_r5000.png", np.zeros((300, 400, 3)))  # another light: ignored
        save_mask(masks / f"{i:03d}.png", load_mask(root / "mask" / f"{i:03d}.png", (400, 300)))
        P = np.diag([0.25, 0.25, 1.0]) @ cams[f"world_mat_{i}"][:3, :4] * scale
        np.savetxt(cal / f"pos_{xxx:03d}.txt", P)
    return rect


@pytest.fixture(scope="module")
def regnerf_root(tmp_path_factory):
    """The RegNeRF-layout fixture for views 22 and 25 (built once: it reads full-size DTU files)."""
    root = tmp_path_factory.mktemp("regnerf")
    _regnerf_fixture(real("dtu_scan37"), root, [22, 25], mask_subdir=True)
    return root


@pytest.fixture(scope="module")
def idr_22_25():
    return read_dtu_idr(real("dtu_scan37"), downscale=4, indices=[22, 25])


@pytest.mark.parametrize("mask_subdir", [True, False])
def test_regnerf_layout_agrees_with_idr(tmp_path, regnerf_root, idr_22_25, mask_subdir):
    shutil.copytree(regnerf_root, tmp_path, dirs_exist_ok=True)
    if not mask_subdir:  # idrmasks/scanN/NNN.png, as some scans ship
        for f in (tmp_path / "idrmasks" / "scan37" / "mask").iterdir():
            f.rename(tmp_path / "idrmasks" / "scan37" / f.name)
        (tmp_path / "idrmasks" / "scan37" / "mask").rmdir()
    rect = tmp_path / "Rectified" / "scan37"
    reg = read_dtu_regnerf(rect)
    assert reg.meta["scan"] == "scan37"
    assert [v.index for v in reg.views] == [22, 25]
    assert [v.name for v in reg.views] == ["rect_023_3_r5000", "rect_026_3_r5000"]
    S = np.load(real("dtu_scan37") / "cameras_sphere.npz")["scale_mat_22"]
    x_n = np.random.default_rng(1).normal(size=(40, 3)) * 0.4  # normalised (IDR) frame
    x_w = x_n @ S[:3, :3].T + S[:3, 3]  # DTU world frame (RegNeRF)
    for a, b in zip(idr_22_25.views, reg.views):
        np.testing.assert_allclose(b.camera.K, a.camera.K, rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(b.camera.project(x_w)[0], a.camera.project(x_n)[0], atol=1e-3)
        np.testing.assert_allclose(b.camera.world_to_cam[:3, :3], a.camera.world_to_cam[:3, :3], atol=1e-6)
        assert np.abs(a.image - b.image).max() <= 0.5 / 255 + 1e-6
        assert b.mask is not None and (a.mask == b.mask).all()
    # The images themselves agree with the cameras (object 1-4 units from the cameras).
    assert photo_consistency(reg.views[0], reg.views[1], 1.5 * S[0, 0], 4.5 * S[0, 0]) > 0.7
    # The Rectified folder and the root name the same single scan.
    assert [v.index for v in read_dtu_regnerf(tmp_path, indices=[25]).views] == [25]
    assert [v.index for v in read_dtu_regnerf(tmp_path / "Rectified", indices=[22]).views] == [22]


def test_regnerf_missing_projection(tmp_path, regnerf_root):
    shutil.copytree(regnerf_root, tmp_path, dirs_exist_ok=True)
    rect = tmp_path / "Rectified" / "scan37"
    save_image(rect / "rect_030_3_r5000.png", np.zeros((300, 400, 3)))
    with pytest.raises(ReconError, match="camera count") as e:
        read_dtu_regnerf(rect)
    assert_one_line_naming(e.value, tmp_path / "Calibration" / "cal18" / "pos_030.txt")


def test_regnerf_layout_on_a_synthetic_scan(tmp_path):
    # The same layout without the real data: cameras must come back exactly.
    scene = synthetic_scene(3)
    rect = tmp_path / "Rectified" / "scan5"
    cal, masks = tmp_path / "Calibration" / "cal18", tmp_path / "idrmasks" / "scan5"
    for d in (rect, cal, masks):
        d.mkdir(parents=True)
    for v in scene.views:
        save_image(rect / f"rect_{v.index + 1:03d}_3_r5000.png", v.image)
        save_mask(masks / f"{v.index:03d}.png", v.mask)
        np.savetxt(cal / f"pos_{v.index + 1:03d}.txt", 7.0 * v.camera.K @ v.camera.world_to_cam[:3])
    got = read_dtu_regnerf(tmp_path)
    assert [v.index for v in got.views] == [0, 1, 2]
    for a, b in zip(scene.views, got.views):
        np.testing.assert_allclose(b.camera.K, a.camera.K, atol=1e-9)
        np.testing.assert_allclose(b.camera.world_to_cam, a.camera.world_to_cam, atol=1e-9)
        assert (a.mask == b.mask).all() and np.abs(a.image - b.image).max() < 1e-6
    (tmp_path / "Rectified" / "scan6").mkdir()
    with pytest.raises(ReconError, match="2 scans") as e:
        read_dtu_regnerf(tmp_path)
    assert_one_line_naming(e.value, tmp_path / "Rectified")


def _idr_fixture(tmp_path, n=3):
    """A NeuS/IDR folder from the synthetic scene; scale_mat maps the unit sphere to the world."""
    scene = synthetic_scene(n)
    S = np.diag([2.0, 2.0, 2.0, 1.0])
    S[:3, 3] = [0.5, -1.0, 3.0]
    arrays = {}
    (tmp_path / "images").mkdir()
    (tmp_path / "mask").mkdir()
    for v in scene.views:
        wm = np.eye(4)
        wm[:3] = v.camera.K @ v.camera.world_to_cam[:3]
        arrays[f"world_mat_{v.index}"] = wm
        arrays[f"scale_mat_{v.index}"] = S
        save_image(tmp_path / "images" / f"{v.index:06d}.png", v.image)
        save_mask(tmp_path / "mask" / f"{v.index:03d}.png", v.mask)
    np.savez(tmp_path / "cameras_sphere.npz", **arrays)
    return scene, S


def test_idr_fixture_frame_and_errors(tmp_path):
    scene, S = _idr_fixture(tmp_path)
    got = read_dtu_idr(tmp_path)
    x_n = np.random.default_rng(2).normal(size=(10, 3)) * 0.5
    x_w = x_n @ S[:3, :3].T + S[:3, 3]
    for a, b in zip(scene.views, got.views):
        np.testing.assert_allclose(b.camera.K, a.camera.K, atol=1e-9)
        np.testing.assert_allclose(b.camera.project(x_n)[0], a.camera.project(x_w)[0], atol=1e-9)
        assert (b.mask == a.mask).all() and np.abs(b.image - a.image).max() < 1e-6
    (tmp_path / "mask" / "001.png").unlink()
    assert not read_dtu_idr(tmp_path).has_masks  # masks only where every view has one
    with pytest.raises(ReconError) as e:
        read_dtu_idr(tmp_path, with_masks=True)
    assert_one_line_naming(e.value, tmp_path / "mask" / "001.png")
    (tmp_path / "images" / "000002.png").unlink()
    with pytest.raises(ReconError, match="3 cameras .* 2 images") as e:
        read_dtu_idr(tmp_path)
    assert_one_line_naming(e.value, tmp_path / "cameras_sphere.npz")
