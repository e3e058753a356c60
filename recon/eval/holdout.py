"""The main job, scored: train on some photos of a COLMAP dataset as a user gives them (plain photos,
cameras estimated by the poses stage) and score the others as novel views.

`recon eval --protocol holdout --data ../shared/data/lund_door --views 4`: of the n photos, every
(n // views)-th from the first trains (lund_door 12 → DSC 1/4/7/10, the bundled sample's four), the
rest are test views. The estimated cameras live in SfM's own frame, so the ground-truth cameras of
the test views are brought into it by the similarity that best maps the training cameras' ground
truth onto their estimates: rotation from their orientations (a chordal mean), scale and
translation from their centres, which stays well posed when the centres are nearly collinear (a
sideways sweep). Test views are rendered with their ground-truth intrinsics; full-image PSNR/SSIM.

Photos all around an object: with a `masks/` folder beside `images/` (read_colmap's layout, one
mask per photo) the test views are also scored on the object, as SpaRe's protocol does: PSNR over
the mask's pixels, SSIM and LPIPS in its tight box. The training photos stay plain photos.
`gt_cameras` (`recon eval --gt-cameras`) trains the same split on the dataset's cameras instead,
the upper bound the estimate is measured against: the poses stage passes them through, the test
cameras need no alignment, and the dataset's SfM points are left out (every photo made them, the
test views too). Each job reports its training views' poses (`pose_fields`): how many of those
given were posed, the largest and mean relative rotation error between them against the ground
truth (every pair: no alignment needed) and the path that posed them.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from recon.errors import ReconError
from recon.eval.protocols import Prepared, Protocol, SceneRef, Split, find_dirs
from recon.eval.metrics import Lpips, object_scores
from recon.scene import Camera, Scene, View


def holdout_split(n_views: int, total: int) -> Split:
    if not 2 <= n_views < total:
        raise ReconError(f"the holdout protocol trains on 2..{total - 1} of the {total} photos, not {n_views}")
    stride = total // n_views
    train = [i * stride for i in range(n_views)]
    return Split(train, [i for i in range(total) if i not in train])


def similarity(est: list[Camera], gt: list[Camera]) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, R [3,3], T [3]) with x_est ≈ s·R·x_gt + T for the same cameras in two frames."""
    # world_to_cam: R_est = R_gt · R^T for every camera, so R = mean of R_est^T R_gt... transposed.
    M = sum(e.world_to_cam[:3, :3].T @ g.world_to_cam[:3, :3] for e, g in zip(est, gt))
    U, _, Vt = np.linalg.svd(M)
    R = U @ np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))]) @ Vt
    ce = np.stack([c.center for c in est])
    cg = np.stack([c.center for c in gt])
    de, dg = ce - ce.mean(0), (cg - cg.mean(0)) @ R.T
    s = float((de * dg).sum() / max((dg * dg).sum(), 1e-12))
    T = ce.mean(0) - s * R @ cg.mean(0)
    return s, R, T


def into_frame(cam: Camera, s: float, R: np.ndarray, T: np.ndarray) -> Camera:
    """A ground-truth camera expressed in the estimate's frame (x_est = s·R·x_gt + T)."""
    w2c = np.eye(4)
    Rg, tg = cam.world_to_cam[:3, :3], cam.world_to_cam[:3, 3]
    # cam = Rg·x_gt + tg with x_gt = R^T (x_est − T) / s; times s (a projection ignores the scale):
    w2c[:3, :3] = Rg @ R.T
    w2c[:3, 3] = s * tg - Rg @ R.T @ T
    return Camera(cam.K.copy(), w2c, cam.width, cam.height)


@dataclass
class Holdout(Protocol):
    max_size: int = 800
    """Photos are loaded at most this big (the fast preset's ingest size)."""
    gt_cameras: bool = False
    """Train on the dataset's cameras instead of estimating them (the upper bound)."""
    name = "holdout"
    metrics = ("psnr", "psnr_masked", "ssim", "ssim_box", "lpips", "lpips_box")

    def find_scenes(self, root: Path) -> list[SceneRef]:
        from recon.io.colmap import find_colmap_model

        return [SceneRef(d.name, d) for d in find_dirs(root, lambda p: find_colmap_model(p) is not None
                                                       and (p / "images").is_dir())]

    def prepare(self, scene: SceneRef, n_views: int) -> Prepared:
        from recon.io.colmap import read_colmap

        masked = (Path(scene.path) / "masks").is_dir()
        gt = read_colmap(scene.path, max_size=self.max_size, with_masks=masked)
        picks = holdout_split(n_views, len(gt))
        train_views = [gt.views[i] for i in picks.train]
        test = {gt.views[i].index: gt.views[i] for i in picks.test}
        truth = {v.name: v.camera for v in train_views}
        source = str(scene.path)
        if self.gt_cameras:
            train, align = given_cameras(gt, train_views, source), None
        else:
            train = plain_photos(gt, train_views, source, self.max_size)
            align = lambda posed: self.align(posed, truth, test)  # noqa: E731
        cameras = "ground-truth" if self.gt_cameras else "estimated"
        return Prepared(train, Split([v.index for v in train_views], list(test)), {i: v.camera for i, v in test.items()},
                        test, notes=_notes(scene.name, masked, self.gt_cameras), align=align,
                        pose_fields=lambda posed: pose_fields(posed, truth, cameras))

    def score(self, render: np.ndarray, gt: View, lpips: Lpips) -> dict[str, float | None]:
        return {**super().score(render, gt, lpips), **object_scores(render, gt.image, gt.mask, lpips)}

    @staticmethod
    def align(posed: Scene, truth: dict[str, Camera], test: dict) -> dict[int, Camera]:
        est = {v.name: v.camera for v in posed.views}
        common = [n for n in truth if n in est]
        if len(common) < 2:
            raise ReconError("holdout: fewer than 2 training photos were posed; nothing to align")
        s, R, T = similarity([est[n] for n in common], [truth[n] for n in common])
        return {i: into_frame(v.camera, s, R, T) for i, v in test.items()}


def plain_photos(gt: Scene, train_views: list[View], source: str, max_size: int) -> Scene:
    """The training photos as a user gives them: no cameras (the poses stage estimates them), no masks."""
    from recon.io.photos import load_photos

    files = gt.meta["image_files"]
    folder = Path(tempfile.mkdtemp(prefix="recon-holdout-"))
    for v in train_views:
        os.symlink(Path(files[v.name]).resolve(), folder / Path(files[v.name]).name)
    photos = load_photos(folder, max_size=max_size)
    return Scene([replace(p, index=v.index) for p, v in zip(photos.views, train_views)], source=source,
                 meta=photos.meta)


def given_cameras(gt: Scene, train_views: list[View], source: str) -> Scene:
    """The training photos with their ground-truth cameras (posed), no masks and no SfM points."""
    return Scene([replace(v, mask=None) for v in train_views], source=source, meta={**gt.meta, "posed": True})


def pose_fields(posed: Scene | None, truth: dict[str, Camera], cameras: str) -> dict:
    """The job's fields on its training views' poses: which cameras it trained on, how many of the
    views given were posed (`posed` None: none), their largest and mean relative rotation error
    against `truth` in degrees (null with fewer than 2 posed) and scene.meta["poses_method"]."""
    from recon.poses.metrics import pose_errors

    est = {} if posed is None else {v.name: v.camera.world_to_cam for v in posed.views if v.name in truth}
    errors = pose_errors(est, {n: c.world_to_cam for n, c in truth.items()})
    return {"cameras": cameras, "views_posed": len(est), "views_given": len(truth),
            "rot_err_max_deg": _finite(errors.rot_max), "rot_err_mean_deg": _finite(errors.rot_mean),
            "poses_method": None if posed is None else posed.meta.get("poses_method")}


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _notes(name: str, masked: bool, gt_cameras: bool) -> list[str]:
    notes = ["holdout --gt-cameras: trained on the dataset's cameras (the upper bound), no alignment" if gt_cameras
             else "holdout: test cameras aligned to the estimated ones by a similarity fitted on the training cameras"]
    if masked:
        notes.append(f"{name}: masks/ beside images/: test views also scored on the object (masked PSNR, "
                     "SSIM and LPIPS in the mask's box); the training photos have no masks")
    return notes
