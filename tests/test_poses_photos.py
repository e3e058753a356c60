"""A folder of photos without cameras → an unposed Scene: EXIF focal / rotation, odd pixel formats,
mixed sizes, duplicates and too few photos."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recon.errors import ReconError
from recon.io.photos import DEFAULT_FOV_DEG, find_duplicates, load_photos
from recon.poses.database import group_cameras


def noise_rgb(seed: int, w: int = 64, h: int = 48) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def exif_with(**tags: int) -> Image.Exif:
    exif = Image.Exif()
    ifd = exif.get_ifd(0x8769)
    names = {"focal_35": 0xA405, "focal": 0x920A, "plane_x_res": 0xA20E, "plane_unit": 0xA210}
    for k, v in tags.items():
        if k == "orientation":
            exif[0x0112] = v
        else:
            ifd[names[k]] = v
    return exif


def test_unposed_scene_with_default_focal(tmp_path):
    for i in range(3):
        Image.fromarray(noise_rgb(i)).save(tmp_path / f"p{i}.png")
    scene = load_photos(tmp_path)
    assert scene.meta["posed"] is False and len(scene) == 3
    assert [v.name for v in scene.views] == ["p0", "p1", "p2"]
    for v in scene.views:
        np.testing.assert_array_equal(v.camera.world_to_cam, np.eye(4))
        fov = 2 * math.degrees(math.atan(v.camera.width / 2 / v.camera.K[0, 0]))
        assert fov == pytest.approx(DEFAULT_FOV_DEG)
        assert v.camera.K[0, 2] == 32 and v.camera.K[1, 2] == 24
    assert set(scene.meta["focal_source"].values()) == {"default"}


def test_exif_rotation_and_35mm_focal(tmp_path):
    stored = noise_rgb(1, w=60, h=40)
    stored[:8, :8] = (255, 0, 0)  # a red corner to follow through the rotation
    # Orientation 6: the stored pixels must be turned 90° clockwise to display upright.
    Image.fromarray(stored).save(tmp_path / "a.jpg", quality=95, exif=exif_with(orientation=6, focal_35=35))
    Image.fromarray(noise_rgb(2, w=40, h=60)).save(tmp_path / "b.jpg", quality=95)
    scene = load_photos(tmp_path)
    a = scene.views[0]
    assert a.image.shape == (60, 40, 3)  # portrait after rotation
    assert a.image[:8, -8:, 0].mean() > 0.8 and a.image[:8, -8:, 1].mean() < 0.2  # top-left → top-right
    assert a.camera.K[0, 0] == pytest.approx(35 * math.hypot(40, 60) / math.hypot(36, 24))
    assert scene.meta["focal_source"] == {"a": "exif35", "b": "default"}


def test_exif_focal_with_sensor_resolution(tmp_path):
    # 64 px wide image on a 6.4 mm wide sensor (10 px/mm), 8 mm lens → f = 80 px
    Image.fromarray(noise_rgb(3)).save(tmp_path / "a.jpg", exif=exif_with(focal=8, plane_x_res=10, plane_unit=4))
    Image.fromarray(noise_rgb(4)).save(tmp_path / "b.jpg")
    scene = load_photos(tmp_path)
    assert scene.views[0].camera.K[0, 0] == pytest.approx(80.0)


def test_gray_rgba_and_16bit_pngs_become_rgb(tmp_path):
    grey = np.random.default_rng(0).integers(0, 256, (48, 64), dtype=np.uint8)
    Image.fromarray(grey, mode="L").save(tmp_path / "gray.png")
    rgba = np.dstack([noise_rgb(5), np.full((48, 64), 255, np.uint8)])
    rgba[:, :10, 3] = 0  # transparent strip → composited over white
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    deep = np.random.default_rng(1).integers(0, 65536, (48, 64), dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    scene = load_photos(tmp_path)
    by = {v.name: v.image for v in scene.views}
    for im in by.values():
        assert im.shape == (48, 64, 3) and im.dtype == np.float32 and 0 <= im.min() <= im.max() <= 1
    np.testing.assert_allclose(by["gray"][..., 1], grey / 255, atol=1e-6)
    np.testing.assert_allclose(by["rgba"][:, :10], 1.0)
    np.testing.assert_allclose(by["deep"][..., 0], deep / 65535, atol=1e-6)  # full 16-bit precision kept


def test_mixed_sizes_get_their_own_cameras(tmp_path):
    Image.fromarray(noise_rgb(6, 64, 48)).save(tmp_path / "a.png")
    Image.fromarray(noise_rgb(7, 64, 48)).save(tmp_path / "b.png")
    Image.fromarray(noise_rgb(8, 80, 40)).save(tmp_path / "c.png")
    scene = load_photos(tmp_path)
    assert [(v.camera.width, v.camera.height) for v in scene.views] == [(64, 48), (64, 48), (80, 40)]
    groups = group_cameras(scene.views, {}, share=True)
    assert sorted(g.views for g in groups) == [[0, 1], [2]]
    assert len(group_cameras(scene.views, {}, share=False)) == 3


def test_max_size_shrinks_and_scales_focal(tmp_path):
    for i in range(2):
        Image.fromarray(noise_rgb(i, 200, 100)).save(tmp_path / f"p{i}.png", )
    scene = load_photos(tmp_path, max_size=100)
    v = scene.views[0]
    assert (v.camera.width, v.camera.height) == (100, 50) and v.image.shape == (50, 100, 3)


def test_duplicates_are_named(tmp_path):
    Image.fromarray(noise_rgb(1)).save(tmp_path / "a.png")
    Image.fromarray(noise_rgb(2)).save(tmp_path / "b.png")
    Image.fromarray(noise_rgb(1)).save(tmp_path / "copy_of_a.jpg", quality=92)  # re-encoded copy
    with pytest.raises(ReconError, match="duplicate") as e:
        load_photos(tmp_path)
    assert "a and copy_of_a" in str(e.value)
    assert find_duplicates(["x", "y"], [noise_rgb(1) / 255.0, noise_rgb(2) / 255.0]) == []


@pytest.mark.parametrize("count", [0, 1])
def test_fewer_than_two_photos(tmp_path, count):
    for i in range(count):
        Image.fromarray(noise_rgb(i)).save(tmp_path / f"p{i}.png")
    with pytest.raises(ReconError, match="at least 2") as e:
        load_photos(tmp_path)
    assert str(tmp_path) in str(e.value)


def test_missing_folder(tmp_path):
    with pytest.raises(ReconError):
        load_photos(tmp_path / "nope")


def test_sample_folder_has_exif_focal():
    folder = Path(__file__).resolve().parents[1] / "data" / "four_views"
    scene = load_photos(folder)
    assert len(scene) == 4 and set(scene.meta["focal_source"].values()) == {"exif35"}
    # EXIF says 43 mm equivalent; the ground-truth focal is 1006 px at this size: within 10 %
    assert abs(scene.views[0].camera.K[0, 0] - 1006) < 100
