"""recon.io.images: orientation, pixel formats, area resizing, masks, errors, camera rescaling."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_io_fixtures import assert_one_line_naming, write_png16

from recon.errors import ReconError
from recon.io.images import (
    ImageSpec,
    image_size,
    load_image,
    load_mask,
    load_views,
    read_image,
    resize_area,
    target_size,
)
from recon.scene import Camera


def _marked(w: int = 6, h: int = 4) -> np.ndarray:
    """uint8 image, black with a red top-left pixel and a green top-right pixel."""
    a = np.zeros((h, w, 3), np.uint8)
    a[0, 0] = (255, 0, 0)
    a[0, w - 1] = (0, 255, 0)
    return a


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rot.png"
    im = Image.fromarray(_marked())
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be rotated 90° clockwise to display
    im.save(path, exif=exif)
    assert image_size(path) == (4, 6)
    img = load_image(path)
    assert img.shape == (6, 4, 3)
    # Rotating clockwise moves the stored top-left to the top-right, the top-right to bottom-right.
    np.testing.assert_allclose(img[0, 3], [1, 0, 0])
    np.testing.assert_allclose(img[5, 3], [0, 1, 0])
    assert img[0, 0].sum() == 0


def test_pixel_formats(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray).save(tmp_path / "g.png")
    g = load_image(tmp_path / "g.png")
    assert g.dtype == np.float32 and g.shape == (3, 4, 3)
    np.testing.assert_allclose(g[..., 1], gray / 255, atol=1e-7)

    g16 = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000 + 7)
    write_png16(tmp_path / "g16.png", g16)
    np.testing.assert_allclose(load_image(tmp_path / "g16.png")[..., 2], g16 / 65535, atol=1e-7)  # full precision

    rgb16 = np.random.default_rng(0).integers(0, 65535, size=(3, 4, 3)).astype(np.uint16)
    write_png16(tmp_path / "c16.png", rgb16)
    np.testing.assert_allclose(load_image(tmp_path / "c16.png"), rgb16 / 65535, atol=1.01 / 255)

    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[0, 0, 3], rgba[0, 1, 3], rgba[1, :, 3] = 255, 0, 128
    Image.fromarray(rgba).save(tmp_path / "a.png")
    rgb, alpha = read_image(tmp_path / "a.png")
    np.testing.assert_allclose(alpha, [[1, 0], [128 / 255, 128 / 255]], atol=1e-7)
    comp = load_image(tmp_path / "a.png")  # over white
    np.testing.assert_allclose(comp[0, 0], [1, 0, 0])
    np.testing.assert_allclose(comp[0, 1], [1, 1, 1])
    np.testing.assert_allclose(comp[1, 0], [1, 127 / 255, 127 / 255], atol=1e-6)
    np.testing.assert_allclose(load_image(tmp_path / "a.png", background=(0, 0, 0))[0, 1], [0, 0, 0])

    Image.fromarray(_marked()).convert("P").save(tmp_path / "p.png")
    np.testing.assert_allclose(load_image(tmp_path / "p.png")[0, 0], [1, 0, 0])


def test_resize_is_an_area_filter():
    rng = np.random.default_rng(1)
    a = rng.random((12, 16, 3)).astype(np.float32)
    small = resize_area(a, (4, 3))
    np.testing.assert_allclose(small[1, 2], a[4:8, 8:12].mean(axis=(0, 1)), rtol=1e-6)
    # A non-integer ratio still averages: a constant stays constant and the mean is kept.
    odd = resize_area(a, (5, 7))
    assert odd.shape == (7, 5, 3)
    np.testing.assert_allclose(resize_area(np.full((10, 10), 0.3, np.float32), (3, 3)), 0.3, rtol=1e-6)
    assert abs(odd.mean() - a.mean()) < 0.02


def test_target_size():
    assert target_size(1600, 1200, 4) == (400, 300)
    assert target_size(1296, 1936, 1, max_size=200) == (134, 200)
    assert target_size(1600, 1200, 4, max_size=1000) == (400, 300)
    with pytest.raises(ReconError):
        target_size(10, 10, 0)


def test_factor_and_mask(tmp_path):
    a = np.zeros((8, 8, 3), np.uint8)
    a[:4, :4] = 255
    Image.fromarray(a).save(tmp_path / "m.png")
    np.testing.assert_allclose(load_image(tmp_path / "m.png", factor=4), [[[1] * 3, [0] * 3], [[0] * 3, [0] * 3]])
    m = load_mask(tmp_path / "m.png")
    assert m.dtype == bool and m.sum() == 16
    assert load_mask(tmp_path / "m.png", (2, 2)).tolist() == [[True, False], [False, False]]


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_unreadable_image_is_one_line_naming_the_file(tmp_path, content):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    with pytest.raises(ReconError) as e:
        load_image(bad)
    assert_one_line_naming(e.value, bad)


def test_truncated_image(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(good)
    bad = tmp_path / "cut.jpg"
    bad.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ReconError) as e:
        load_image(bad)
    assert_one_line_naming(e.value, bad)


def test_load_views_rescales_the_camera(tmp_path):
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "x.png")
    K = np.array([[400.0, 0, 200], [0, 400, 150], [0, 0, 1]])
    cam = Camera(K, np.eye(4), 400, 300)  # given at 10x the file's resolution
    (v,) = load_views([ImageSpec("x", 7, cam, tmp_path / "x.png")], downscale=2)
    assert v.image.shape == (15, 20, 3) and v.index == 7 and v.mask is None
    np.testing.assert_allclose(v.camera.K, [[20, 0, 10], [0, 20, 7.5], [0, 0, 1]])
    wrong = Camera(K, np.eye(4), 400, 400)
    with pytest.raises(ReconError, match="aspect"):
        load_views([ImageSpec("x", 0, wrong, tmp_path / "x.png")])


def test_load_views_masks(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "x.png")
    Image.fromarray(np.full((4, 4), 255, np.uint8)).save(tmp_path / "x_mask.png")
    cam = Camera(np.eye(3), np.eye(4), 4, 4)
    specs = [ImageSpec("x", 0, cam, tmp_path / "x.png", tmp_path / "x_mask.png"),
             ImageSpec("y", 1, cam, tmp_path / "x.png", tmp_path / "missing.png")]
    assert all(v.mask is None for v in load_views(specs))  # not every view has one: no masks
    assert load_views(specs[:1])[0].mask.all()
    assert load_views(specs[:1], with_masks=False)[0].mask is None
    with pytest.raises(ReconError) as e:
        load_views(specs, with_masks=True)
    assert_one_line_naming(e.value, tmp_path / "missing.png")


def test_camera_on_stored_pixels_skips_exif_rotation(tmp_path):
    # COLMAP calibrates the stored pixels; a camera of the stored shape must get them unrotated.
    path = tmp_path / "rot.png"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_marked()).save(path, exif=exif)  # stored 6x4, displayed 4x6
    stored = Camera(np.eye(3), np.eye(4), 6, 4)
    (v,) = load_views([ImageSpec("r", 0, stored, path)])
    assert v.image.shape == (4, 6, 3) and v.image[0, 0, 0] == 1.0
    (v,) = load_views([ImageSpec("r", 0, Camera(np.eye(3), np.eye(4), 4, 6), path)])
    assert v.image.shape == (6, 4, 3) and v.image[0, 3, 0] == 1.0
