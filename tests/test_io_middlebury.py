"""recon.io.middlebury: the *_par.txt format on a fixture and on templeSparseRing."""

from __future__ import annotations

import numpy as np
import pytest
from test_io_fixtures import assert_one_line_naming, assert_same_camera, photo_consistency, real, synthetic_scene

from recon.errors import ReconError
from recon.io.images import save_image
from recon.io.middlebury import read_middlebury


def _write_par(tmp_path, scene) -> None:
    lines = [str(len(scene))]
    for v in scene.views:
        save_image(tmp_path / f"{v.name}.png", v.image)
        R, t = v.camera.world_to_cam[:3, :3], v.camera.world_to_cam[:3, 3]
        nums = [*v.camera.K.ravel(), *R.ravel(), *t]
        lines.append(f"{v.name}.png " + " ".join(f"{x:.17g}" for x in nums))
    (tmp_path / "toy_par.txt").write_text("\n".join(lines) + "\n")


def test_par_file_fixture(tmp_path):
    scene = synthetic_scene(3, masks=False)
    _write_par(tmp_path, scene)
    got = read_middlebury(tmp_path)
    assert [v.index for v in got.views] == [0, 1, 2]
    for a, b in zip(scene.views, got.views):
        assert_same_camera(a.camera, b.camera, tol=1e-12)
        assert np.abs(a.image - b.image).max() < 1e-6
    assert "bbox" not in got.meta
    lines = (tmp_path / "toy_par.txt").read_text().splitlines()
    (tmp_path / "toy_par.txt").write_text("\n".join(lines[:2] + [lines[2].rsplit(" ", 1)[0]] + lines[3:]))
    with pytest.raises(ReconError, match="line 3") as e:
        read_middlebury(tmp_path)
    assert_one_line_naming(e.value, tmp_path / "toy_par.txt")


def test_temple_bbox_is_seen_by_every_camera():
    root = real("middlebury/templeSparseRing")
    s = read_middlebury(root)
    assert len(s) == 16 and s.views[0].name == "templeSR0001" and s.views[0].image.shape == (480, 640, 3)
    np.testing.assert_allclose(s.views[0].camera.K, [[1520.4, 0, 302.32], [0, 1525.9, 246.87], [0, 0, 1]])
    lo, hi = np.array(s.meta["bbox"])
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    for v in s.views:
        pix, depth = v.camera.project(corners)
        assert (depth > 0).all()
        assert (pix > -0.1 * 640).all() and (pix[:, 0] < 1.1 * 640).all() and (pix[:, 1] < 1.1 * 480).all()
    assert photo_consistency(s.views[0], s.views[1], 0.45, 0.75) > 0.7
