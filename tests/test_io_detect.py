"""recon.io.detect: format detection, load_scene, and the one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_io_fixtures import DATA, assert_one_line_naming, synthetic_scene

from recon.errors import NoCameras, ReconError
from recon.io.colmap import write_colmap
from recon.io.detect import detect_format, find_images, load_scene
from recon.io.images import save_image
from recon.io.nerfstudio import write_nerfstudio

REAL = {
    "dtu_scan37": "dtu_idr",
    "llff_fern": "llff",
    "lund_door": "colmap",
    "middlebury/templeSparseRing": "middlebury",
    "nerf_synthetic_lego": "nerfstudio",
    "instant_ngp_fox": "nerfstudio",
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_datasets_are_recognised(name):
    if not (DATA / name).exists():
        pytest.skip(f"{DATA / name} is not present (../shared/data lives beside the repo on dev machines only)")
    assert detect_format(DATA / name) == REAL[name]


def test_load_scene_reads_fixtures_of_each_writer(tmp_path):
    scene = synthetic_scene(3)
    write_colmap(scene, tmp_path / "c", save_images=True)
    write_nerfstudio(scene, tmp_path / "n")
    for folder, fmt in ((tmp_path / "c", "colmap"), (tmp_path / "n", "nerfstudio"),
                        (tmp_path / "n" / "transforms.json", "nerfstudio"),
                        (tmp_path / "c" / "sparse" / "0" / "cameras.txt", "colmap")):
        got = load_scene(folder, downscale=2, indices=[2, 0])
        assert got.meta["format"] == fmt and [v.index for v in got.views] == [2, 0]
        assert got.views[0].image.shape == (15, 20, 3) and got.has_masks
        np.testing.assert_allclose(got.views[0].camera.K[:2], scene.views[2].camera.K[:2] / 2)
    assert load_scene(tmp_path / "c", max_size=10).views[0].image.shape == (8, 10, 3)
    assert not load_scene(tmp_path / "c", with_masks=False).has_masks


def test_plain_folder_of_photos_has_no_cameras(tmp_path):
    for i in range(3):
        save_image(tmp_path / f"p{i}.JPG", np.zeros((4, 4, 3)))
    (tmp_path / ".hidden.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("hi")
    assert [p.name for p in find_images(tmp_path)] == ["p0.JPG", "p1.JPG", "p2.JPG"]
    with pytest.raises(NoCameras, match="no camera files") as e:
        load_scene(tmp_path)
    assert isinstance(e.value, ReconError)
    assert_one_line_naming(e.value, tmp_path)
    # A dataset root with its photos in images/ is listed the same way.
    root = tmp_path / "root"
    (root / "images").mkdir(parents=True)
    save_image(root / "images" / "a.png", np.zeros((4, 4, 3)))
    assert find_images(root) == [root / "images" / "a.png"]
    with pytest.raises(NoCameras):
        load_scene(root)


def test_errors_are_one_line_and_name_the_file(tmp_path):
    cases = []
    empty = tmp_path / "empty"
    empty.mkdir()
    cases.append((empty, "empty"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "readme.md").write_text("no data")
    cases.append((other, "unknown format"))
    cases.append((tmp_path / "missing", "no such"))
    cases.append((other / "readme.md", "unknown format"))
    for path, words in cases:
        with pytest.raises(ReconError, match=words) as e:
            load_scene(path)
        assert_one_line_naming(e.value, path)

    # A corrupt image inside an otherwise fine dataset names that image.
    scene = synthetic_scene(2)
    write_nerfstudio(scene, tmp_path / "ns")
    bad = tmp_path / "ns" / "images" / "view_01.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\ngarbage")
    with pytest.raises(ReconError) as e:
        load_scene(tmp_path / "ns")
    assert_one_line_naming(e.value, bad)

    # Masks requested where there are none.
    data = json.loads((tmp_path / "ns" / "transforms.json").read_text())
    for fr in data["frames"]:
        fr.pop("mask_path")
    (tmp_path / "ns" / "transforms.json").write_text(json.dumps(data))
    save_image(bad, scene.views[1].image)
    assert not load_scene(tmp_path / "ns").has_masks
    with pytest.raises(ReconError, match="mask") as e:
        load_scene(tmp_path / "ns", with_masks=True)
    assert_one_line_naming(e.value, tmp_path / "ns" / "images" / "view_00.png")
