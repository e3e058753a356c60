"""recon.io.nerfstudio: OpenGL→OpenCV, intrinsics rules, alpha masks, writer round trip, real sets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from test_io_fixtures import assert_one_line_naming, assert_same_camera, photo_consistency, real, synthetic_scene

from recon.errors import ReconError
from recon.io.images import save_image
from recon.io.nerfstudio import read_nerfstudio, write_nerfstudio, write_transforms


def _write(tmp_path, meta: dict, frames: list[dict], size=(40, 30), rgba: bool = False):
    (tmp_path / "images").mkdir(exist_ok=True)
    for fr in frames:
        w, h = size
        img = np.zeros((h, w, 4 if rgba else 3), np.float32)
        if rgba:
            img[..., 0], img[h // 2:, :, 3] = 1.0, 1.0  # red, opaque on the bottom half
            from PIL import Image

            Image.fromarray((img * 255).astype(np.uint8)).save(tmp_path / fr["file_path"])
        else:
            save_image(tmp_path / fr["file_path"], img)
    (tmp_path / "transforms.json").write_text(json.dumps({**meta, "frames": frames}))


def test_opengl_pose_becomes_opencv(tmp_path):
    # OpenGL camera at (0, 0, 5) with identity rotation: it looks down -z, +y up, at the origin.
    c2w = np.eye(4)
    c2w[2, 3] = 5
    _write(tmp_path, {"fl_x": 50, "fl_y": 50, "cx": 20, "cy": 15, "w": 40, "h": 30},
           [{"file_path": "images/a.png", "transform_matrix": c2w.tolist()}])
    cam = read_nerfstudio(tmp_path).views[0].camera
    pix, depth = cam.project(np.array([[0, 0, 0.0], [1, 0, 0], [0, 1, 0]]))
    np.testing.assert_allclose(depth, 5)
    np.testing.assert_allclose(pix[0], [20, 15])  # the origin lands on the principal point
    assert pix[1, 0] == pytest.approx(30) and pix[1, 1] == pytest.approx(15)  # +x: right
    assert pix[2, 1] == pytest.approx(5) and pix[2, 0] == pytest.approx(20)  # +y: up (smaller row)
    np.testing.assert_allclose(cam.center, [0, 0, 5])


def test_shared_per_frame_and_blender_intrinsics(tmp_path):
    eye = np.eye(4).tolist()
    frames = [
        {"file_path": "images/a.png", "transform_matrix": eye},
        {"file_path": "images/b.png", "transform_matrix": eye, "fl_x": 70, "cx": 21, "k1": 0.1},
        {"file_path": "images/c", "transform_matrix": eye},  # Blender: no extension
    ]
    (tmp_path / "images").mkdir()
    for n in "abc":
        save_image(tmp_path / "images" / f"{n}.png", np.zeros((30, 40, 3)))
    (tmp_path / "transforms.json").write_text(json.dumps({"camera_angle_x": 2 * math.atan(0.4), "frames": frames}))
    s = read_nerfstudio(tmp_path)
    assert [v.name for v in s.views] == ["a", "b", "c"] and [v.index for v in s.views] == [0, 1, 2]
    f = 0.5 * 40 / 0.4  # fl = w / 2 / tan(angle_x / 2), w from the image file
    np.testing.assert_allclose(s.views[0].camera.K, [[f, 0, 20], [0, f, 15], [0, 0, 1]])
    np.testing.assert_allclose(s.views[1].camera.K, [[70, 0, 21], [0, 70, 15], [0, 0, 1]])  # frame keys win
    zero = {"k2": 0.0, "k3": 0.0, "k4": 0.0, "p1": 0.0, "p2": 0.0}
    assert s.meta["distortion"] == {"b": {"model": "OPENCV", "k1": 0.1, **zero}}


def test_rgba_alpha_is_the_mask_and_composited_over_white(tmp_path):
    _write(tmp_path, {"fl_x": 50, "w": 40, "h": 30},
           [{"file_path": "images/a.png", "transform_matrix": np.eye(4).tolist()}], rgba=True)
    s = read_nerfstudio(tmp_path)
    v = s.views[0]
    assert v.mask is not None and v.mask[20:].all() and not v.mask[:15].any()
    np.testing.assert_allclose(v.image[0, 0], [1, 1, 1])  # transparent → white background
    np.testing.assert_allclose(v.image[-1, 0], [1, 0, 0])
    assert s.meta["background"] == [1.0, 1.0, 1.0]
    assert read_nerfstudio(tmp_path, with_masks=False).views[0].mask is None


def test_writer_round_trip(tmp_path):
    scene = synthetic_scene(3)
    scene.meta["distortion"] = {"view_02": {"model": "OPENCV", "k1": -0.05, "k2": 0.01, "p1": 0.001, "p2": 0.0}}
    path = write_nerfstudio(scene, tmp_path)
    data = json.loads(path.read_text())
    assert data["camera_model"] == "OPENCV" and "fl_x" in data["frames"][0]  # intrinsics differ: per frame
    assert data["frames"][0]["file_path"] == "images/view_00.png" and data["ply_file_path"] == "sparse_pc.ply"
    back = read_nerfstudio(tmp_path)
    for a, b in zip(scene.views, back.views):
        assert_same_camera(a.camera, b.camera, tol=1e-9)
        assert np.abs(a.image - b.image).max() < 1e-6 and (a.mask == b.mask).all()
    assert back.meta["distortion"]["view_02"]["k1"] == pytest.approx(-0.05)
    np.testing.assert_allclose(back.points, scene.points, atol=1e-6)  # float32 in the ply
    np.testing.assert_allclose(back.point_colors, scene.point_colors, atol=1e-6)


def test_write_transforms_shares_equal_intrinsics(tmp_path):
    cam = synthetic_scene(1).views[0].camera
    path = write_transforms(tmp_path / "t.json", [("a", cam), ("b", cam)], image_paths={"b": "x/b.jpg"})
    data = json.loads(path.read_text())
    assert data["fl_x"] == cam.K[0, 0] and data["w"] == 40 and "fl_x" not in data["frames"][0]
    assert [f["file_path"] for f in data["frames"]] == ["images/a.png", "x/b.jpg"]
    c2w = np.array(data["frames"][0]["transform_matrix"])
    np.testing.assert_allclose(c2w[:3, 3], cam.center)
    np.testing.assert_allclose(c2w[:3, 2], -cam.forward)  # OpenGL: the camera looks down its -z


def test_errors(tmp_path):
    (tmp_path / "transforms.json").write_text("{not json")
    with pytest.raises(ReconError) as e:
        read_nerfstudio(tmp_path)
    assert_one_line_naming(e.value, tmp_path / "transforms.json")
    _write(tmp_path, {"fl_x": 50}, [{"file_path": "images/a.png", "transform_matrix": np.eye(4).tolist()}])
    (tmp_path / "images" / "a.png").unlink()
    with pytest.raises(ReconError) as e:
        read_nerfstudio(tmp_path)
    assert_one_line_naming(e.value, tmp_path / "images" / "a.png")


def test_lego_blender_cameras():
    root = real("nerf_synthetic_lego")
    s = read_nerfstudio(root, downscale=8, indices=[2, 8])  # two neighbouring views
    meta = json.loads((root / "transforms_train.json").read_text())
    f = 0.5 * 800 / math.tan(0.5 * meta["camera_angle_x"]) / 8
    for v in s.views:
        np.testing.assert_allclose(v.camera.K, [[f, 0, 50], [0, f, 50], [0, 0, 1]])
        assert v.image.shape == (100, 100, 3) and 0.05 < v.mask.mean() < 0.6
        # Cameras sit on a sphere of radius ~4 and look at the origin, which is on the object.
        assert np.linalg.norm(v.camera.center) == pytest.approx(4.03, abs=0.05)
        assert v.camera.forward @ (-v.camera.center / np.linalg.norm(v.camera.center)) > 0.99
    assert photo_consistency(s.views[0], s.views[1], 2.0, 6.0) > 0.7


def test_fox_intrinsics_and_distortion():
    s = read_nerfstudio(real("instant_ngp_fox"), downscale=8, indices=[0])
    v = s.views[0]
    assert v.name == "0001" and v.image.shape == (240, 135, 3) and v.mask is None
    np.testing.assert_allclose(v.camera.K, [[1375.52 / 8, 0, 554.558 / 8], [0, 1374.49 / 8, 965.268 / 8], [0, 0, 1]])
    assert s.meta["distortion"]["0001"]["k1"] == pytest.approx(0.0578421)


def test_preshrunk_images_n_keeps_the_full_size_focal(tmp_path):
    # nerfstudio's images_2/ copies: intrinsics stay those of the full-size images/.
    _write(tmp_path, {"camera_angle_x": 2 * math.atan(0.5)},
           [{"file_path": "images/a.png", "transform_matrix": np.eye(4).tolist()}], size=(40, 30))
    (tmp_path / "images_2").mkdir()
    save_image(tmp_path / "images_2" / "a.png", np.ones((15, 20, 3)))
    v = read_nerfstudio(tmp_path, downscale=2).views[0]
    assert v.image.shape == (15, 20, 3) and v.image.min() == 1.0  # the pre-shrunk file was used
    np.testing.assert_allclose(v.camera.K, [[20, 0, 10], [0, 20, 7.5], [0, 0, 1]])
    assert read_nerfstudio(tmp_path).views[0].image.max() == 0.0  # full size: the original
