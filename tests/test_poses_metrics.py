"""Pairwise pose metrics: zero for the truth in any gauge, the right angle for a known error."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from recon.poses.metrics import pose_errors, relative_rotation_error, translation_direction_error


def _pose(rotvec, t) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    m[:3, 3] = t
    return m


@pytest.fixture
def truth() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {f"v{i}": _pose(rng.normal(0, 0.5, 3), rng.normal(0, 2, 3)) for i in range(4)}


def test_truth_in_another_gauge_scores_zero(truth):
    # a similarity of the world (rotation, translation, scale) changes no relative quantity
    S = _pose([0.3, -1.2, 0.7], [5, -2, 1])
    S[:3, :3] *= 2.5
    est = {}
    for k, w2c in truth.items():
        m = w2c @ np.linalg.inv(S)  # world' = S world
        m[:3] /= np.linalg.norm(m[:3, :3], axis=1, keepdims=True).mean()  # renormalise the rotation part
        est[k] = m
    e = pose_errors(est, truth)
    assert e.pairs == 6 and e.rot_max < 1e-4 and e.trans_max < 1e-4  # arccos near 1: ~1e-6° of float noise


def test_a_rotated_camera_shows_its_angle(truth):
    est = dict(truth)
    turn = _pose([0, np.radians(3.0), 0], [0, 0, 0])
    # rotate camera v1 about its own centre by 3°
    c = -truth["v1"][:3, :3].T @ truth["v1"][:3, 3]
    R = turn[:3, :3] @ truth["v1"][:3, :3]
    est["v1"] = np.eye(4)
    est["v1"][:3, :3], est["v1"][:3, 3] = R, -R @ c
    assert relative_rotation_error(est["v0"], est["v1"], truth["v0"], truth["v1"]) == pytest.approx(3.0)
    e = pose_errors(est, truth)
    assert e.rot_max == pytest.approx(3.0) and e.rot_mean == pytest.approx(1.5)  # 3 of 6 pairs involve v1
    # the centre did not move, so seen from v0 the direction to v1 is unchanged
    assert translation_direction_error(est["v0"], est["v1"], truth["v0"], truth["v1"]) < 1e-6


def test_missing_views_and_empty():
    e = pose_errors({"a": np.eye(4)}, {"a": np.eye(4), "b": np.eye(4)})
    assert e.pairs == 0 and np.isnan(e.rot_mean)
