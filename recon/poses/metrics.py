"""Pose accuracy without alignment: pairwise relative-rotation and translation-direction errors.

Both metrics compare every pair of views that both sides posed, so no similarity transform between
the estimate and the ground truth is needed (the estimate's gauge — rotation, translation, scale —
cancels out in relative quantities).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np


def rotation_angle_deg(R: np.ndarray) -> float:
    """The angle in degrees of a rotation matrix [3,3] (numerically clamped)."""
    c = (np.trace(R) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def relative_rotation_error(w2c_a_est: np.ndarray, w2c_b_est: np.ndarray,
                            w2c_a_gt: np.ndarray, w2c_b_gt: np.ndarray) -> float:
    """Degrees between the estimated and true rotation from camera a to camera b."""
    rel_est = w2c_b_est[:3, :3] @ w2c_a_est[:3, :3].T
    rel_gt = w2c_b_gt[:3, :3] @ w2c_a_gt[:3, :3].T
    return rotation_angle_deg(rel_est @ rel_gt.T)


def _direction_in_a(w2c_a: np.ndarray, w2c_b: np.ndarray) -> np.ndarray:
    """Unit vector from camera a's centre to camera b's centre, in camera a's axes."""
    ca = -w2c_a[:3, :3].T @ w2c_a[:3, 3]
    cb = -w2c_b[:3, :3].T @ w2c_b[:3, 3]
    d = w2c_a[:3, :3] @ (cb - ca)
    n = np.linalg.norm(d)
    return d / n if n > 0 else d


def translation_direction_error(w2c_a_est: np.ndarray, w2c_b_est: np.ndarray,
                                w2c_a_gt: np.ndarray, w2c_b_gt: np.ndarray) -> float:
    """Degrees between the estimated and true baseline direction (a → b, seen from camera a)."""
    de, dg = _direction_in_a(w2c_a_est, w2c_b_est), _direction_in_a(w2c_a_gt, w2c_b_gt)
    return float(np.degrees(np.arccos(np.clip(de @ dg, -1.0, 1.0))))


@dataclass
class PoseErrors:
    """Summary over all pairs of views posed by both the estimate and the ground truth."""

    pairs: int
    rot_mean: float
    rot_max: float
    trans_mean: float
    trans_max: float

    def as_dict(self) -> dict[str, float]:
        return {"pairs": self.pairs, "rot_mean": self.rot_mean, "rot_max": self.rot_max,
                "trans_mean": self.trans_mean, "trans_max": self.trans_max}


def pose_errors(estimated: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> PoseErrors:
    """Pairwise errors between two {view name: world_to_cam [4,4]} maps (names both contain).

    With fewer than two common views there is no pair: the errors are NaN.
    """
    names = sorted(set(estimated) & set(truth))
    rot, trans = [], []
    for a, b in combinations(names, 2):
        rot.append(relative_rotation_error(estimated[a], estimated[b], truth[a], truth[b]))
        trans.append(translation_direction_error(estimated[a], estimated[b], truth[a], truth[b]))
    if not rot:
        nan = float("nan")
        return PoseErrors(0, nan, nan, nan, nan)
    return PoseErrors(len(rot), float(np.mean(rot)), float(np.max(rot)), float(np.mean(trans)), float(np.max(trans)))
