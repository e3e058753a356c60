"""The holdout protocol: the similarity between an estimate's frame and the ground truth's is
recovered from the training cameras, and brings any ground-truth camera into the estimate's frame."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from recon.eval.holdout import holdout_split, into_frame, similarity
from recon.scene import Camera

from synthetic import ring_cameras


def _moved(cam: Camera, s: float, R: np.ndarray, T: np.ndarray) -> Camera:
    """The same physical camera in a frame where x_new = s·R·x + T."""
    return into_frame(cam, s, R, T)


def test_the_similarity_is_recovered_and_maps_the_test_cameras(rng=np.random.default_rng(3)):
    cams = ring_cameras(8, 64, 48)
    s, R, T = 2.7, Rotation.random(random_state=1).as_matrix(), np.array([0.4, -2.0, 5.0])
    est = [_moved(c, s, R, T) for c in cams]
    train = [0, 2, 4, 6]
    s2, R2, T2 = similarity([est[i] for i in train], [cams[i] for i in train])
    assert abs(s2 - s) < 1e-9 and np.allclose(R2, R, atol=1e-9) and np.allclose(T2, T, atol=1e-9)
    for i in (1, 3, 5, 7):  # the held-out cameras land where the estimate's frame has them
        moved = into_frame(cams[i], s2, R2, T2)
        assert np.allclose(moved.world_to_cam, est[i].world_to_cam, atol=1e-9)
        p = np.array([[0.1, 0.2, 0.3]])  # a point projects to the same pixel in both frames
        assert np.allclose(cams[i].project(p)[0], moved.project(s * p @ R.T + T)[0], atol=1e-6)


def test_collinear_centres_still_align():
    cams = ring_cameras(16, 64, 48)[:4]  # a short arc: nearly collinear centres
    s, R, T = 0.5, Rotation.from_euler("xyz", [10, 20, 30], degrees=True).as_matrix(), np.zeros(3)
    s2, R2, _ = similarity([into_frame(c, s, R, T) for c in cams], cams)
    assert abs(s2 - s) < 1e-9 and np.allclose(R2, R, atol=1e-9)


def test_split_takes_every_nth_photo():
    split = holdout_split(4, 12)
    assert split.train == [0, 3, 6, 9] and split.test == [1, 2, 4, 5, 7, 8, 10, 11]
