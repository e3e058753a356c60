"""The holdout protocol on photos all around an object: the training views' poses in results.json
(how many were posed, their rotation error against the ground truth, the path that posed them, a
failure recorded without stopping the batch), scoring on the object where the dataset has masks,
and training on the ground-truth cameras (--gt-cameras)."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

import recon.pipeline
from recon.cli import main
from recon.errors import ReconError
from recon.eval.holdout import Holdout, into_frame, pose_fields
from recon.eval.metrics import box_ssim, masked_psnr
from recon.eval.protocols import SceneRef
from recon.io.colmap import write_colmap
from recon.scene import Camera, Scene, View
from synthetic import colored_blob, render_scene, ring_cameras
from test_batch import TINY_FLAGS

TRAIN = ["view000", "view002", "view004"]  # 8 photos, 3 views: every 2nd from the first


def write_object(folder: Path, masks: bool) -> Scene:
    """8 photos of a blob on a ring as a COLMAP dataset (images/, sparse/0/, masks/ when `masks`)."""
    scene = render_scene(colored_blob(), ring_cameras(8, 48, 36), with_masks=masks)
    write_colmap(scene, folder, save_images=True)
    return scene


def turned(cam: Camera, degrees: float) -> Camera:
    """The camera turned about its own centre (about its x axis) by `degrees`."""
    w2c = cam.world_to_cam.copy()
    w2c[:3] = Rotation.from_euler("x", degrees, degrees=True).as_matrix() @ w2c[:3]
    return Camera(cam.K, w2c, cam.width, cam.height)


def estimate(truth: Scene, turn_deg: float) -> dict[str, Camera]:
    """The training cameras as an estimate might have them: in another frame (scale, rotation,
    translation), the first one turned by `turn_deg`."""
    s, R, T = 0.3, Rotation.from_euler("xyz", [20, -40, 70], degrees=True).as_matrix(), np.array([1.0, 2.0, -3.0])
    cams = {v.name: into_frame(v.camera, s, R, T) for v in truth.views if v.name in TRAIN}
    cams[TRAIN[0]] = turned(cams[TRAIN[0]], turn_deg)
    return cams


def fake_poses(monkeypatch, truth: Scene, turn_deg: float, seen: list[Scene], fail_in: str = "") -> None:
    """The poses stage replaced: it poses the training photos with `estimate`'s cameras, or fails
    (a one-line ReconError, as when SfM cannot pose them) on scenes whose folder is `fail_in`."""

    def run_poses(cfg, scene: Scene, out_dir, obs) -> Scene:
        seen.append(scene)
        if fail_in and Path(scene.source).name == fail_in:
            raise ReconError("3 of 3 views could not be posed with SIFT SfM: view000, view002, view004", scene.source)
        cams = estimate(truth, turn_deg)
        return replace(scene, views=[replace(v, camera=cams[v.name]) for v in scene.views],
                       meta={**scene.meta, "posed": True, "poses_method": "sift"})

    monkeypatch.setattr(recon.pipeline, "run_poses", run_poses)


def run_eval(data: Path, out: Path, *flags: str) -> int:
    return main(["eval", "--protocol", "holdout", "--data", str(data), "--views", "3", "--out", str(out),
                 *TINY_FLAGS, *flags])


def test_pose_fields_are_the_pairwise_rotation_errors_in_any_frame():
    views = [View(f"view{i:03d}", i, c, np.zeros((18, 24, 3), np.float32)) for i, c in enumerate(ring_cameras(8, 24, 18))]
    truth = {v.name: v.camera for v in views if v.name in TRAIN}
    est = estimate(Scene(views), 5.0)
    posed = Scene([replace(v, camera=est[v.name]) for v in views if v.name in TRAIN], meta={"poses_method": "sift"})
    f = pose_fields(posed, truth, "estimated")
    # the turned camera is 5° off against each of the other two; the other pair is exact
    assert f["rot_err_max_deg"] == pytest.approx(5.0, abs=1e-6)
    assert f["rot_err_mean_deg"] == pytest.approx(10.0 / 3, abs=1e-6)
    assert (f["views_posed"], f["views_given"], f["poses_method"], f["cameras"]) == (3, 3, "sift", "estimated")
    two = pose_fields(replace(posed, views=posed.views[1:]), truth, "estimated")
    assert two["views_posed"] == 2 and two["rot_err_max_deg"] == pytest.approx(0.0, abs=1e-5)
    none = pose_fields(None, truth, "estimated")
    assert (none["views_posed"], none["views_given"], none["rot_err_max_deg"], none["poses_method"]) == (0, 3, None, None)


def test_estimated_poses_and_their_error_reach_results_and_the_report(tmp_path, monkeypatch):
    truth = write_object(tmp_path / "obj", masks=False)
    seen: list[Scene] = []
    fake_poses(monkeypatch, truth, 5.0, seen)
    assert run_eval(tmp_path / "obj", tmp_path / "out") == 0
    e = json.loads((tmp_path / "out" / "results.json").read_text())["scenes"]["obj"]
    assert e["status"] == "ok" and e["cameras"] == "estimated" and e["poses_method"] == "sift"
    assert (e["views_posed"], e["views_given"]) == (3, 3)
    assert e["rot_err_max_deg"] == pytest.approx(5.0, abs=1e-4)
    assert e["rot_err_mean_deg"] == pytest.approx(10.0 / 3, abs=1e-4)
    assert e["psnr"] is not None and e["psnr_masked"] is None and e["ssim_box"] is None, "no masks: full image only"
    # the poses stage was handed plain photos: no cameras, no masks
    assert [v.name for v in seen[0].views] == TRAIN and seen[0].meta.get("posed") is False
    row = next(csv.DictReader(open(tmp_path / "out" / "results.csv")))
    assert (row["cameras"], row["views_posed"], row["views_given"], row["poses_method"]) == ("estimated", "3", "3", "sift")
    assert float(row["rot_err_max_deg"]) == pytest.approx(5.0, abs=1e-4)
    assert "| estimated | 3 of 3 | 5.00 / 3.33 | sift |" in (tmp_path / "out" / "report.md").read_text()


def test_views_that_cannot_be_posed_are_recorded_and_the_batch_goes_on(tmp_path, monkeypatch):
    truth = write_object(tmp_path / "data" / "good", masks=False)
    write_object(tmp_path / "data" / "bad", masks=False)
    fake_poses(monkeypatch, truth, 0.0, [], fail_in="bad")
    assert run_eval(tmp_path / "data", tmp_path / "out") == 2, "nonzero exit: a scene failed"
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    bad, good = res["scenes"]["bad"], res["scenes"]["good"]
    assert res["failed"] == ["bad"] and good["status"] == "ok" and good["views_posed"] == 3
    assert bad["status"] == "error" and "could not be posed" in bad["error"] and bad["error"].startswith("ReconError:")
    assert (bad["views_posed"], bad["views_given"], bad["cameras"]) == (0, 3, "estimated")
    assert bad["rot_err_max_deg"] is None and bad["poses_method"] is None and bad["psnr"] is None
    assert "could not be posed" in (tmp_path / "out" / "report.md").read_text()


def test_masks_beside_images_score_the_test_views_on_the_object(tmp_path, monkeypatch):
    truth = write_object(tmp_path / "obj", masks=True)
    seen: list[Scene] = []
    fake_poses(monkeypatch, truth, 0.0, seen)
    assert run_eval(tmp_path / "obj", tmp_path / "out") == 0
    assert not any(v.mask is not None for v in seen[0].views), "training photos stay plain photos"
    score = json.loads((tmp_path / "out" / "obj" / "score.json").read_text())
    e = score["entry"]
    assert e["psnr_masked"] is not None and e["ssim_box"] is not None and e["views_posed"] == 3
    # the numbers are the object's, from the written render and the dataset's photo and mask
    gt = {v.index: v for v in truth.views}
    for row in score["per_view"]:
        render = np.asarray(Image.open(tmp_path / "out" / "obj" / "test" / f"{row['view']:03d}.png"), np.float32) / 255
        photo = np.asarray(Image.open(tmp_path / "obj" / "images" / f"view{row['view']:03d}.png"), np.float32) / 255
        mask = gt[row["view"]].mask
        assert row["psnr_masked"] == pytest.approx(masked_psnr(render, photo, mask), abs=1e-6)
        assert row["ssim_box"] == pytest.approx(box_ssim(render, photo, mask), abs=1e-6)
        assert row["psnr_masked"] != pytest.approx(row["psnr"], abs=1e-3)


def test_gt_cameras_train_on_the_given_cameras(tmp_path, monkeypatch):
    truth = write_object(tmp_path / "obj", masks=True)
    prep = Holdout(gt_cameras=True).prepare(SceneRef("obj", tmp_path / "obj"), 3)
    assert prep.align is None and prep.train.meta["posed"] is True and prep.train.points is None
    assert not prep.train.has_masks and all(v.mask is not None for v in prep.gt.values())
    seen: list[Scene] = []
    real = recon.pipeline.run_poses
    monkeypatch.setattr(recon.pipeline, "run_poses", lambda *a: seen.append(a[1]) or real(*a))
    assert run_eval(tmp_path / "obj", tmp_path / "out", "--gt-cameras") == 0
    given = {v.name: v.camera.world_to_cam for v in truth.views}
    assert [v.name for v in seen[0].views] == TRAIN and seen[0].meta["posed"] is True
    assert all(np.allclose(v.camera.world_to_cam, given[v.name]) for v in seen[0].views)
    e = json.loads((tmp_path / "out" / "results.json").read_text())["scenes"]["obj"]
    assert e["status"] == "ok" and e["cameras"] == "ground-truth" and e["views_posed"] == 3
    assert e["rot_err_max_deg"] == pytest.approx(0.0, abs=1e-4) and e["psnr_masked"] is not None


def test_gt_cameras_is_for_the_holdout_protocol(tmp_path, capsys):
    assert main(["eval", "--protocol", "llff", "--data", str(tmp_path), "--gt-cameras"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--gt-cameras" in err[0] and "--protocol holdout" in err[0]
