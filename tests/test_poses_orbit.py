"""The object-capture path: orbit cameras from silhouettes, and the check that refuses cameras
which cannot explain them. Synthetic: an asymmetric object of ellipsoids seen from known cameras
around it (its silhouettes ray-cast exactly), so every number here has a ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from recon.errors import ReconError
from recon.poses.metrics import pose_errors
from recon.poses.object_capture import COHERENT, decide, silhouette_coherence
from recon.poses.orbit import Orbit, fit_orbit, orbit_cameras
from recon.scene import Camera, View

W, H, F = 160, 120, 150.0
# (centre, semi-axes): a body, a head off to one side, a tail behind: no symmetry an orbit could confuse.
BLOBS = [((0.0, 0.0, 0.0), (0.16, 0.12, 0.2)), ((0.1, 0.05, 0.2), (0.08, 0.08, 0.08)),
         ((-0.15, -0.05, 0.05), (0.05, 0.14, 0.06))]


def _intrinsics() -> Camera:
    return Camera(np.array([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1]]), np.eye(4), W, H)


def silhouette(cam: Camera) -> np.ndarray:
    """[H,W] bool: pixels whose ray meets any ellipsoid."""
    v, u = np.mgrid[0:H, 0:W] + 0.5
    d_cam = np.stack([(u - cam.K[0, 2]) / F, (v - cam.K[1, 2]) / F, np.ones_like(u)], -1)
    R = cam.world_to_cam[:3, :3]
    d = d_cam @ R  # world directions (R^T d_cam, row-wise)
    o = cam.center
    hit = np.zeros((H, W), bool)
    for c, r in BLOBS:
        oc = (o - np.array(c)) / np.array(r)
        dd = d / np.array(r)
        a = (dd * dd).sum(-1)
        b = 2 * (dd * oc).sum(-1)
        cc = (oc * oc).sum() - 1
        hit |= b * b - 4 * a * cc >= 0
    return hit


def orbit_of(azimuths_deg, elevation_deg=15.0, roll_deg=0.0) -> list[Camera]:
    o = Orbit(np.radians(azimuths_deg), np.radians(elevation_deg), np.radians(roll_deg), np.zeros(3))
    return orbit_cameras(o, [_intrinsics()] * len(azimuths_deg))


def _w2c(cams):
    return {str(i): c.world_to_cam for i, c in enumerate(cams)}


def test_silhouettes_alone_recover_an_uneven_orbit():
    truth = orbit_of([0, 55, 118, 180, 242, 297], elevation_deg=20)
    masks = [silhouette(c) for c in truth]
    fit = fit_orbit([_intrinsics()] * 6, masks)
    steps = np.degrees(np.diff(fit.orbit.azimuths))
    # The direction of travel is part of the search: compare the steps' sizes in either sense.
    # Measured: within 3° of the true steps, 4.8° largest relative rotation error (the issue asks
    # 1°: the silhouettes of six views leave a few degrees of play, docs/benchmarks.md).
    assert np.abs(np.abs(steps) - [55, 63, 62, 62, 55]).max() < 4.0
    err = pose_errors(_w2c(fit.cameras), _w2c(truth))
    assert err.rot_max < 6.0
    assert abs(np.degrees(fit.orbit.elevation) - 20) < 5
    assert fit.scores.min() >= COHERENT
    # A wrong start (the elevation's sign flipped) explains the silhouettes clearly worse.
    wrong = orbit_of([0, 55, 118, 180, 242, 297], elevation_deg=-20)
    assert silhouette_coherence(wrong, masks).mean() < fit.scores.mean() - 0.02


def test_the_check_keeps_right_cameras_and_refuses_cameras_that_barely_move():
    truth = orbit_of([0, 90, 180, 270])
    masks = [silhouette(c) for c in truth]
    assert silhouette_coherence(truth, masks).mean() >= COHERENT
    views = [View(str(i), i, _intrinsics(), np.zeros((H, W, 3), np.float32)) for i in range(4)]
    kept = decide(views, masks, {v.name: c for v, c in zip(views, truth)}, log=lambda m: None)
    assert not kept.use_orbit and kept.orbit is None
    # What XFeat + LighterGlue reported for the squirrel's four sides: every camera within 2° of the
    # first, a little translation. Each "4/4 posed" model of this kind is refused.
    rng = np.random.default_rng(0)
    stuck = {}
    for v in views:
        w2c = np.eye(4)
        w2c[:3, 3] = [rng.normal(0, 0.02), 0, 1.0]
        stuck[v.name] = Camera(_intrinsics().K, w2c, W, H)
    refused = decide(views, masks, stuck, log=lambda m: None)
    assert refused.estimate_coherence < 0.5
    assert refused.use_orbit and refused.orbit_coherence >= COHERENT


def test_photos_that_are_no_orbit_get_one_line_error(tmp_path):
    from recon.poses import object_capture
    from recon.stages.poses import PosesConfig, _object_check

    rng = np.random.default_rng(1)
    # Silhouettes no one object casts from an orbit: tall, flat, wide and narrow boxes by turns.
    masks = []
    for k in range(5):
        m = np.zeros((H, W), bool)
        half_h, half_w = (50, 8) if k % 2 == 0 else (6, 60)
        cy, cx = 60 + rng.integers(-5, 6), 80 + rng.integers(-10, 11)
        m[cy - half_h:cy + half_h, cx - half_w:cx + half_w] = True
        masks.append(m)
    from recon.scene import Scene

    scene = Scene([View(f"p{i}", i, _intrinsics(), np.zeros((H, W, 3), np.float32)) for i in range(5)],
                  source=str(tmp_path))
    with pytest.raises(ReconError) as e:
        _object_check(PosesConfig(), scene, None, object_capture.ObjectMasks(masks, True, "test"), lambda m: None)
    msg = str(e.value)
    assert "\n" not in msg and "orbit" in msg and "silhouettes" in msg


def test_an_orbit_that_disagrees_with_the_views_matching_posed_is_not_trusted():
    truth = orbit_of([0, 90, 180, 270])
    masks = [silhouette(c) for c in truth]
    views = [View(str(i), i, _intrinsics(), np.zeros((H, W, 3), np.float32)) for i in range(4)]
    # Matching posed two of the four, and the orbit agrees with them: the orbit poses all four.
    kept = decide(views, masks, {"0": truth[0], "1": truth[1]}, log=lambda m: None)
    assert kept.use_orbit and kept.orbit_coherence >= COHERENT
    # Matching posed the same two 60° further apart than they are: one of the two is wrong.
    wrong = orbit_of([0, 150, 180, 270])
    with pytest.raises(ReconError) as e:
        decide(views, masks, {"0": wrong[0], "1": wrong[1]}, log=lambda m: None)
    assert "disagrees" in str(e.value) and "\n" not in str(e.value)
