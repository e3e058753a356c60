"""The main job, scored: train on some photos of a COLMAP dataset as a user gives them (plain photos,
cameras estimated by the poses stage) and score the others as novel views.

`recon eval --protocol holdout --data ../shared/data/lund_door --views 4`: of the n photos, every
(n // views)-th from the first trains (lund_door 12 → DSC 1/4/7/10, the bundled sample's four), the
rest are test views. The estimated cameras live in SfM's own frame, so the ground-truth cameras of
the test views are brought into it by the similarity that best maps the training cameras' ground
truth onto their estimates: rotation from their orientations (a chordal mean), scale and
translation from their centres, which stays well posed when the centres are nearly collinear (a
sideways sweep). Test views are rendered with their ground-truth intrinsics; full-image PSNR/SSIM.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from recon.errors import ReconError
from recon.eval.protocols import Prepared, Protocol, SceneRef, Split, find_dirs
from recon.scene import Camera, Scene


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
    name = "holdout"
    metrics = ("psnr", "psnr_masked", "ssim", "lpips")

    def find_scenes(self, root: Path) -> list[SceneRef]:
        from recon.io.colmap import find_colmap_model

        return [SceneRef(d.name, d) for d in find_dirs(root, lambda p: find_colmap_model(p) is not None
                                                       and (p / "images").is_dir())]

    def prepare(self, scene: SceneRef, n_views: int) -> Prepared:
        from recon.io.colmap import read_colmap
        from recon.io.photos import load_photos

        gt = read_colmap(scene.path, max_size=self.max_size, with_masks=False)
        split = holdout_split(n_views, len(gt))
        files = gt.meta["image_files"]
        train_views = [gt.views[i] for i in split.train]
        folder = Path(tempfile.mkdtemp(prefix="recon-holdout-"))
        for v in train_views:  # the photos as a user gives them: no cameras
            os.symlink(Path(files[v.name]).resolve(), folder / Path(files[v.name]).name)
        train = load_photos(folder, max_size=self.max_size)
        train = Scene([replace(tv, index=v.index) for tv, v in zip(train.views, train_views)],
                      source=str(scene.path), meta=train.meta)
        test = {gt.views[i].index: gt.views[i] for i in split.test}
        truth = {v.name: v.camera for v in train_views}
        split = Split([gt.views[i].index for i in split.train], list(test))
        return Prepared(train, split, {i: v.camera for i, v in test.items()}, test,
                        notes=["holdout: test cameras aligned to the estimated ones by a similarity fitted on "
                               "the training cameras"], align=lambda posed: self.align(posed, truth, test))

    @staticmethod
    def align(posed: Scene, truth: dict[str, Camera], test: dict) -> dict[int, Camera]:
        est = {v.name: v.camera for v in posed.views}
        common = [n for n in truth if n in est]
        if len(common) < 2:
            raise ReconError("holdout: fewer than 2 training photos were posed; nothing to align")
        s, R, T = similarity([est[n] for n in common], [truth[n] for n in common])
        return {i: into_frame(v.camera, s, R, T) for i, v in test.items()}
