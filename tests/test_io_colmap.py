"""recon.io.colmap: real lund_door model, every supported camera model, text/binary, round trip."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from test_io_fixtures import assert_one_line_naming, assert_same_camera, real, synthetic_scene

from recon.errors import ReconError
from recon.io.colmap import read_colmap, write_colmap, write_colmap_text
from recon.io.images import save_image


def test_lund_door_points_project_onto_their_observations():
    import pycolmap

    root = real("lund_door")
    scene = read_colmap(root, downscale=4, indices=[0, 6])
    assert [v.name for v in scene.views] == ["DSC_0001", "DSC_0007"]
    assert scene.views[0].image.shape == (484, 324, 3)  # 1936x1296 portrait, /4
    assert len(scene.points) == 11384 and scene.point_colors.max() <= 1
    rec = pycolmap.Reconstruction(str(root / "colmap_ground_truth"))
    by_name = {im.name: im for im in rec.images.values()}
    for v in scene.views:
        dist = scene.meta["distortion"][v.name]
        assert dist["model"] == "SIMPLE_RADIAL" and dist["k1"] == pytest.approx(-0.0336422)
        im = by_name[v.name + ".JPG"]
        obs = [(p.xy, rec.points3D[p.point3D_id].xyz) for p in im.points2D if p.has_point3D()]
        xy = np.array([o[0] for o in obs])
        X = np.array([o[1] for o in obs])
        # Project with the read camera, adding the radial term the model keeps out of K.
        cam_pts = X @ v.camera.world_to_cam[:3, :3].T + v.camera.world_to_cam[:3, 3]
        assert (cam_pts[:, 2] > 0).all()
        n = cam_pts[:, :2] / cam_pts[:, 2:]
        n = n * (1 + dist["k1"] * (n**2).sum(1, keepdims=True))
        K = v.camera.K
        pix = n * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]
        err = np.linalg.norm(pix - xy / 4, axis=1)  # observations are at full resolution
        assert len(err) > 1000
        assert np.median(err) < 0.15 and np.percentile(err, 95) < 0.6  # without k1: 0.35 and 1.3


def _fixture_model(tmp_path, cameras_txt: str):
    """A one-image COLMAP dataset with the given cameras.txt body."""
    model = tmp_path / "sparse" / "0"
    model.mkdir(parents=True)
    (model / "cameras.txt").write_text(cameras_txt)
    (model / "images.txt").write_text("1 1 0 0 0 0.5 -1 2 1 a.png\n\n")
    (model / "points3D.txt").write_text("")
    (tmp_path / "images").mkdir()
    save_image(tmp_path / "images" / "a.png", np.zeros((30, 40, 3)))
    return tmp_path


@pytest.mark.parametrize(
    "line, K, dist",
    [
        ("PINHOLE 40 30 50 51 20 15", [50, 51, 20, 15], None),
        ("SIMPLE_PINHOLE 40 30 50 20 15", [50, 50, 20, 15], None),
        ("SIMPLE_RADIAL 40 30 50 20 15 0.1", [50, 50, 20, 15], (0.1, 0, 0, 0)),
        ("RADIAL 40 30 50 20 15 0.1 -0.2", [50, 50, 20, 15], (0.1, -0.2, 0, 0)),
        ("OPENCV 40 30 50 51 20 15 0.1 -0.2 0.01 0.02", [50, 51, 20, 15], (0.1, -0.2, 0.01, 0.02)),
    ],
)
def test_camera_models(tmp_path, line, K, dist):
    scene = read_colmap(_fixture_model(tmp_path, f"1 {line}\n"))
    cam = scene.views[0].camera
    np.testing.assert_allclose(cam.K, [[K[0], 0, K[2]], [0, K[1], K[3]], [0, 0, 1]])
    np.testing.assert_allclose(cam.world_to_cam[:3, 3], [0.5, -1, 2])
    if dist is None:
        assert "distortion" not in scene.meta
    else:
        d = scene.meta["distortion"]["a"]
        assert d["model"] == line.split()[0]
        np.testing.assert_allclose([d["k1"], d["k2"], d["p1"], d["p2"]], dist)


def test_unsupported_camera_model(tmp_path):
    root = _fixture_model(tmp_path, "1 OPENCV_FISHEYE 40 30 50 51 20 15 0 0 0 0\n")
    with pytest.raises(ReconError, match="OPENCV_FISHEYE") as e:
        read_colmap(root)
    assert_one_line_naming(e.value, root / "sparse" / "0" / "cameras.txt")


def test_round_trip_text_and_binary(tmp_path):
    import pycolmap

    scene = synthetic_scene(4)
    scene.meta["distortion"] = {"view_01": {"model": "OPENCV", "k1": 0.01, "k2": -0.002, "p1": 0.0, "p2": 0.001}}
    model_dir = write_colmap(scene, tmp_path / "txt", save_images=True)
    assert sorted(p.name for p in model_dir.iterdir()) == ["cameras.txt", "images.txt", "points3D.txt"]
    back = read_colmap(tmp_path / "txt")
    # Binary: the same model converted by pycolmap, beside the same images.
    (tmp_path / "bin" / "sparse" / "0").mkdir(parents=True)
    pycolmap.Reconstruction(str(model_dir)).write_binary(str(tmp_path / "bin" / "sparse" / "0"))
    shutil.copytree(tmp_path / "txt" / "images", tmp_path / "bin" / "images")
    shutil.copytree(tmp_path / "txt" / "masks", tmp_path / "bin" / "masks")
    binary = read_colmap(tmp_path / "bin")
    assert (tmp_path / "bin" / "sparse" / "0" / "cameras.bin").is_file()
    for got in (back, binary):
        assert [v.name for v in got.views] == [v.name for v in scene.views]
        assert [v.index for v in got.views] == [0, 1, 2, 3]
        for a, b in zip(scene.views, got.views):
            assert_same_camera(a.camera, b.camera, tol=1e-9)
            np.testing.assert_allclose(a.image, b.image, atol=1e-6)  # 8-bit-exact fixture
            assert (a.mask == b.mask).all()
        np.testing.assert_allclose(got.points, scene.points, atol=1e-12)
        np.testing.assert_allclose(got.point_colors, scene.point_colors, atol=1e-6)
        assert got.meta["distortion"]["view_01"]["k2"] == pytest.approx(-0.002)
        assert set(got.meta["distortion"]) == {"view_01"}


def test_write_colmap_text_shares_equal_cameras(tmp_path):
    scene = synthetic_scene(3)
    cams = [(v.name, v.camera) for v in scene.views]
    cams.append(("copy", scene.views[0].camera))
    write_colmap_text(tmp_path, cams, image_names={"copy": "copy.jpg"})
    lines = [ln for ln in (tmp_path / "cameras.txt").read_text().splitlines() if not ln.startswith("#")]
    assert len(lines) == 3 and lines[0].startswith("1 PINHOLE 40 30")
    images = (tmp_path / "images.txt").read_text()
    assert images.rstrip().splitlines()[-1].endswith(" 1 copy.jpg")


def test_missing_image_and_masks(tmp_path):
    scene = synthetic_scene(2, masks=False)
    write_colmap(scene, tmp_path, save_images=True)
    with pytest.raises(ReconError) as e:
        read_colmap(tmp_path, with_masks=True)
    assert_one_line_naming(e.value, tmp_path / "masks")
    (tmp_path / "images" / "view_01.png").unlink()
    with pytest.raises(ReconError) as e:
        read_colmap(tmp_path)
    assert_one_line_naming(e.value, tmp_path / "images" / "view_01.png")


def test_images_txt_without_points_lines_reads_every_image(tmp_path):
    """Some converters write images.txt with no POINTS2D line after each image line (squirrel_ring's
    did); COLMAP's own reader then takes every second image for points. Every image must load."""
    scene = synthetic_scene(4, masks=False, points=0)
    model_dir = write_colmap(scene, tmp_path, save_images=True)
    text = (model_dir / "images.txt").read_text().splitlines()
    (model_dir / "images.txt").write_text("\n".join(ln for ln in text if ln.strip()) + "\n")
    (model_dir / "points3D.txt").write_text("# no points\n")
    back = read_colmap(tmp_path)
    assert [v.name for v in back.views] == [v.name for v in scene.views]
    for a, b in zip(scene.views, back.views):
        assert_same_camera(a.camera, b.camera, tol=1e-9)
