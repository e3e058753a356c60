"""Poses once: the learned matcher runs only where SIFT's model is weak or too loose to stand alone
(recon/stages/poses.py `_sift_alone`), not as a second opinion on a strong model."""

from __future__ import annotations

import numpy as np
import pytest

import recon.poses.sfm as sfm
import recon.stages.poses as poses
from recon.poses.sfm import SfmResult
from recon.scene import Camera, Scene, View
from recon.stages.poses import PosesConfig, run_poses
from tests.test_poses_sfm import Log

W, H, F = 64, 48, 60.0


def _scene(n: int, focal_source: str) -> Scene:
    views = []
    for i in range(n):
        K = np.array([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1]])
        views.append(View(f"v{i}", i, Camera(K, np.eye(4), W, H), np.zeros((H, W, 3), np.float32)))
    return Scene(views, meta={"posed": False, "focal_source": {f"v{i}": focal_source for i in range(n)}})


def _result(scene: Scene, strong: bool, method: str) -> SfmResult:
    w2c, Ks, reg = {}, {}, {}
    for i, v in enumerate(scene.views):
        m = np.eye(4)
        m[0, 3] = 0.1 * i  # a row of cameras: distinct centres
        w2c[v.name], Ks[v.name] = m, v.camera.K.copy()
        reg[v.name] = {"registered": True, "reproj_error": 0.3, "observations": 500}
    pts = np.random.default_rng(0).normal(size=(50, 3)) + [0, 0, 4]
    return SfmResult(w2c, Ks, {}, pts, np.full((50, 3), 0.5), reg, method=method, best_pair_inliers=300,
                     strong=strong)


@pytest.fixture
def calls(monkeypatch):
    """run_sfm replaced by a recorder: SIFT's model is strong or weak as the test sets it; the
    learned matcher's run is recorded, never executed."""
    made: dict = {"sift_strong": True, "learned_runs": 0}

    def fake_run_sfm(views, focal_known, opts, log, matcher=None, workdir=None):
        scene = _scene(len(views), "exif")
        if matcher is not None:
            made["learned_runs"] += 1
            return _result(scene, True, "learned")
        return _result(scene, made["sift_strong"], "sift")

    monkeypatch.setattr(sfm, "run_sfm", fake_run_sfm)
    monkeypatch.setattr(poses, "learned_matcher", lambda cfg: "xfeat+lighterglue")
    monkeypatch.setattr(poses, "make_matcher", lambda spec, device="cpu": type("M", (), {"name": spec})())
    return made


CFG = PosesConfig(capture="scene")  # the object check has its own tests (tests/test_poses_orbit.py)


def test_strong_sift_model_is_not_matched_again(calls, tmp_path):
    log = Log()
    out = run_poses(CFG, _scene(4, "default"), tmp_path, log)
    assert calls["learned_runs"] == 0
    assert out.meta["poses_method"] == "sift"
    assert any("no second matcher" in line for line in log.lines)


def test_weak_sift_model_gets_the_learned_matcher(calls, tmp_path):
    calls["sift_strong"] = False
    run_poses(CFG, _scene(4, "default"), tmp_path, Log())
    assert calls["learned_runs"] == 1


def test_three_views_of_unknown_focal_are_checked(calls, tmp_path):
    log = Log()
    run_poses(CFG, _scene(3, "default"), tmp_path, log)
    assert calls["learned_runs"] == 1
    assert any("unknown focal length" in line for line in log.lines)


def test_three_views_with_exif_focal_stand_alone(calls, tmp_path):
    run_poses(CFG, _scene(3, "exif35"), tmp_path, Log())
    assert calls["learned_runs"] == 0


def test_a_mapping_try_stops_at_its_time_limit(monkeypatch, tmp_path):
    """A try that would run on (COLMAP's mapper stuck in bundle adjustment) is cancelled."""
    import time

    import pycolmap

    def stuck(db, work, out, options, cancellation_token):
        t = time.perf_counter()
        while not cancellation_token.is_cancelled:
            assert time.perf_counter() - t < 10, "never cancelled"
            time.sleep(0.01)
        raise InterruptedError("Operation cancelled")

    monkeypatch.setattr(pycolmap, "incremental_mapping", stuck)
    t = time.perf_counter()
    assert sfm._map(tmp_path / "db", tmp_path, tmp_path, None, limit=0.2) is None
    assert 0.2 <= time.perf_counter() - t < 2


def test_object_capture_skips_the_learned_matcher(calls, monkeypatch, tmp_path):
    """Photos of one object around it: SIFT's weak model goes to the object check, not to XFeat."""
    from recon.poses import object_capture

    calls["sift_strong"] = False
    seen = {}

    def object_check(cfg, scene, best, found, log):
        seen["found"] = found
        return best

    monkeypatch.setattr(object_capture, "object_masks",
                        lambda views: object_capture.ObjectMasks([np.ones((H, W), bool)] * len(views), True, "test"))
    monkeypatch.setattr(poses, "_object_check", object_check)
    log = Log()
    run_poses(PosesConfig(), _scene(4, "default"), tmp_path, log)
    assert calls["learned_runs"] == 0 and seen["found"].is_object
    assert any("no learned matcher" in line for line in log.lines)
