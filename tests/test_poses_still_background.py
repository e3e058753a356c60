"""A turntable with a still background: pairs whose matches stand still lose those matches
(recon/poses/database.py `drop_still_matches`); pairs from a moving camera keep theirs."""

from __future__ import annotations

import numpy as np
import pycolmap

from recon.poses.database import drop_still_matches, group_cameras, new_database
from recon.scene import Camera, View

W, H = 320, 240


def _views(n: int) -> list[View]:
    K = np.array([[300.0, 0, W / 2], [0, 300.0, H / 2], [0, 0, 1]])
    return [View(f"v{i}", i, Camera(K, np.eye(4), W, H), np.zeros((H, W, 3), np.float32)) for i in range(n)]


def _pair(db, a: int, b: int, kp_a: np.ndarray, kp_b: np.ndarray) -> None:
    m = np.stack([np.arange(len(kp_a)), np.arange(len(kp_b))], 1).astype(np.uint32)
    db.write_matches(a, b, m)
    g = pycolmap.TwoViewGeometry()
    g.inlier_matches = m
    db.write_two_view_geometry(a, b, g)


def test_still_matches_dropped_moving_kept(tmp_path):
    views = _views(3)
    path = tmp_path / "db.db"
    ids = new_database(path, views, group_cameras(views, {}, True), "SIMPLE_PINHOLE")
    rng = np.random.default_rng(0)
    background = rng.uniform([0, 0], [W, H], (80, 2))  # the room: the same pixels in every photo
    obj_a = rng.uniform([100, 60], [220, 180], (20, 2))  # the object: moves as it turns
    obj_b = obj_a + [15.0, 2.0]
    kp = {ids[0]: np.vstack([background, obj_a]), ids[1]: np.vstack([background + 0.3, obj_b])}
    kp[ids[2]] = kp[ids[0]] + [25.0, -8.0]  # a camera that moved: everything shifts
    with pycolmap.Database.open(str(path)) as db:
        for iid, k in kp.items():
            db.write_keypoints(iid, k.astype(np.float32))
        _pair(db, ids[0], ids[1], kp[ids[0]], kp[ids[1]])
        _pair(db, ids[0], ids[2], kp[ids[0]], kp[ids[2]])

    still = drop_still_matches(path)

    assert still == [(ids[0], ids[1], 80, 100)]
    with pycolmap.Database.open(str(path)) as db:
        kept = np.asarray(db.read_matches(ids[0], ids[1]))
        assert len(kept) == 20 and kept[:, 0].min() == 80  # only the object's matches are left
        assert not db.exists_two_view_geometry(ids[0], ids[1])  # to be verified again
        assert len(db.read_two_view_geometry(ids[0], ids[2]).inlier_matches) == 100  # untouched
