"""Learned helpers for the poses stage, used only where the user has the weights.

Two small interfaces:

- a **matcher** (`PairMatcher`: two views → matched pixel coordinates). `TransformersMatcher`
  loads any transformers keypoint matcher — SuperPoint+LightGlue (`ETH-CVG/lightglue_superpoint`),
  EfficientLoFTR (`zju-community/efficientloftr`), SuperGlue — from a local folder or a hub id
  already in the Hugging Face cache. Its matches go through the same COLMAP verification and
  incremental mapping as SIFT (recon.poses.sfm).
- a **point-map prior** (`PointMapPrior`: all views → one 3D point per pixel in a common frame,
  plus a confidence), the DUSt3R / MASt3R / VGGT family. `poses_from_pointmaps` turns its output
  into cameras (focal and pose per view by robust PnP). transformers ships none of these models,
  so `load_prior` takes a local folder or hub id of a checkpoint whose repository provides its
  model code for `AutoModel` (`trust_remote_code`), or "module:factory" naming a Python callable
  that builds a prior (e.g. a thin wrapper around the authors' VGGT package).

Nothing here downloads: loading uses `local_files_only=True`, so a missing model is a clear error.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from recon.errors import ReconError
from recon.scene import Camera, View


def _u8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image[..., :3] * 255), 0, 255).astype(np.uint8)


def _load_error(kind: str, spec: str, e: Exception) -> ReconError:
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    return ReconError(
        f"cannot load the {kind} ({first}). Give a local folder with the model files, or a hub id whose "
        "files are already in the Hugging Face cache (recon never downloads); or drop the option to use "
        "the weights-free SIFT path", spec)


class TransformersMatcher:
    """A transformers `AutoModelForKeypointMatching` (+ its image processor) as a `PairMatcher`."""

    def __init__(self, spec: str, threshold: float = 0.2, device: str = "cpu") -> None:
        try:
            from transformers import AutoImageProcessor, AutoModelForKeypointMatching
        except ImportError as e:  # the optional extra is not installed
            raise ReconError(f"the learned matcher needs transformers ({e}); pip install 'recon[learned]'", spec)
        try:
            self.processor = AutoImageProcessor.from_pretrained(spec, local_files_only=True)
            self.model = AutoModelForKeypointMatching.from_pretrained(spec, local_files_only=True).eval().to(device)
        except (OSError, ValueError, KeyError) as e:
            raise _load_error("keypoint matcher", spec, e) from None
        self.spec, self.threshold, self.device = spec, threshold, device

    @property
    def name(self) -> str:
        return f"{type(self.model).__name__} ({self.spec})"

    def __call__(self, a: View, b: View) -> tuple[np.ndarray, np.ndarray]:
        """Matched pixels (xy_a [M,2], xy_b [M,2]) in each view's pixels, pixel centres at +0.5."""
        import torch

        inputs = self.processor([[_u8(a.image), _u8(b.image)]], return_tensors="pt").to(self.device)
        with torch.no_grad():
            outputs = self.model(**inputs)
        sizes = [[(a.image.shape[0], a.image.shape[1]), (b.image.shape[0], b.image.shape[1])]]
        out = self.processor.post_process_keypoint_matching(outputs, sizes, threshold=self.threshold)[0]
        # transformers' keypoints put pixel centres on integers; COLMAP puts them at +0.5.
        xy_a = out["keypoints0"].detach().cpu().numpy().astype(np.float64).reshape(-1, 2) + 0.5
        xy_b = out["keypoints1"].detach().cpu().numpy().astype(np.float64).reshape(-1, 2) + 0.5
        return xy_a, xy_b


@dataclass
class PointMaps:
    """A point-map prior's output for N views: points [N,H,W,3] in one common frame, conf [N,H,W]
    (higher is more reliable). H, W are the prior's working size; pixel (r, c) of view i covers the
    same image area as the view's pixels scaled by (view width / W, view height / H)."""

    points: np.ndarray
    conf: np.ndarray


class PointMapPrior(Protocol):
    """All views at once → `PointMaps`."""

    def __call__(self, views: Sequence[View]) -> PointMaps: ...


class TransformersPointMapPrior:
    """A checkpoint loaded with `AutoModel` (its repository's own model code) that maps a batch
    `pixel_values` [1,N,3,H,W] in [0,1] to `world_points`/`pts3d` [1,N,H,W,3] and
    `world_points_conf`/`conf` [1,N,H,W] (VGGT's and DUSt3R's names)."""

    def __init__(self, spec: str, size: int = 518, device: str = "cpu") -> None:
        try:
            from transformers import AutoModel
        except ImportError as e:
            raise ReconError(f"the point-map prior needs transformers ({e}); pip install 'recon[learned]'", spec)
        try:
            self.model = AutoModel.from_pretrained(spec, local_files_only=True, trust_remote_code=True).eval().to(device)
        except (OSError, ValueError, KeyError) as e:
            raise _load_error("point-map prior", spec, e) from None
        self.size = int(getattr(self.model.config, "image_size", size))
        self.spec, self.device = spec, device

    def __call__(self, views: Sequence[View]) -> PointMaps:
        import torch
        import torch.nn.functional as F

        h, w = views[0].image.shape[:2]
        # One batch: views of other sizes are resized to the first view's (point maps keep the pixel grid).
        batch = torch.cat([F.interpolate(torch.from_numpy(np.ascontiguousarray(v.image[..., :3])).permute(2, 0, 1)[None],
                                         size=(h, w), mode="area") for v in views])
        s = self.size / max(h, w)
        size = (max(14, round(h * s / 14) * 14), max(14, round(w * s / 14) * 14))  # ViT patch multiple
        batch = F.interpolate(batch.float(), size=size, mode="bilinear", align_corners=False)
        with torch.no_grad():
            out = self.model(pixel_values=batch[None].to(self.device))
        pts = _first(out, ("world_points", "pts3d"))
        conf = _first(out, ("world_points_conf", "conf"))
        return PointMaps(pts[0].float().cpu().numpy(), conf[0].float().cpu().numpy())


def _first(out, names: Sequence[str]):
    for n in names:
        value = out.get(n) if isinstance(out, dict) else getattr(out, n, None)
        if value is not None:
            return value
    raise ReconError(f"the point-map prior returned none of {list(names)}")


def load_prior(spec: str, device: str = "cpu") -> PointMapPrior:
    """"package.module:factory" → factory(device=device); otherwise a local folder or hub id."""
    if ":" in spec and not Path(spec).exists():
        module, _, attr = spec.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)(device=device)
        except (ImportError, AttributeError) as e:
            raise _load_error("point-map prior", spec, e) from None
    return TransformersPointMapPrior(spec, device=device)


def poses_from_pointmaps(maps: PointMaps, views: Sequence[View], min_conf_quantile: float = 0.5,
                         max_points: int = 4000, seed: int = 0) -> tuple[list[Camera | None], np.ndarray, np.ndarray]:
    """Cameras (in the prior's common frame, at each view's size), points [P,3] and colours [P,3].

    Per view: the most confident pixels (above the `min_conf_quantile` quantile) give 2D–3D
    correspondences between the view's pixels and the common frame; RANSAC PnP with an unknown
    focal length (then refined) gives the camera. A view whose PnP fails is None.
    """
    import pycolmap

    rng = np.random.default_rng(seed)
    _, H, W = maps.conf.shape
    rows, cols = np.mgrid[0:H, 0:W]
    cameras: list[Camera | None] = []
    points, colors = [], []
    for i, v in enumerate(views):
        sx, sy = v.camera.width / W, v.camera.height / H
        xy = np.stack([(cols + 0.5) * sx, (rows + 0.5) * sy], -1).reshape(-1, 2)
        pts = maps.points[i].reshape(-1, 3).astype(np.float64)
        conf = maps.conf[i].reshape(-1)
        keep = np.flatnonzero((conf >= np.quantile(conf, min_conf_quantile)) & np.isfinite(pts).all(1))
        keep = rng.choice(keep, min(len(keep), max_points), replace=False) if len(keep) else keep
        centre = np.array([v.camera.width / 2, v.camera.height / 2])
        cam = pycolmap.Camera(model="SIMPLE_PINHOLE", width=v.camera.width, height=v.camera.height,
                              params=[float(v.camera.K[0, 0]), centre[0], centre[1]])
        opts = pycolmap.AbsolutePoseEstimationOptions()
        opts.estimate_focal_length = True  # the prior fixes geometry, not intrinsics: P4Pf per view
        opts.ransac.max_error = 0.01 * max(v.camera.width, v.camera.height)
        opts.ransac.random_seed = seed
        ref = pycolmap.AbsolutePoseRefinementOptions()
        ref.refine_focal_length = True
        res = pycolmap.estimate_and_refine_absolute_pose(xy[keep], pts[keep], cam, opts, ref) if len(keep) >= 6 else None
        if res is None:
            cameras.append(None)
            continue
        w2c = np.eye(4)
        w2c[:3] = res["cam_from_world"].matrix()
        cameras.append(Camera(cam.calibration_matrix(), w2c, v.camera.width, v.camera.height))
        inl = keep[np.asarray(res["inlier_mask"], dtype=bool)]
        points.append(pts[inl])
        img = v.image
        r = np.minimum((xy[inl, 1]).astype(int), img.shape[0] - 1)
        c = np.minimum((xy[inl, 0]).astype(int), img.shape[1] - 1)
        colors.append(img[r, c, :3])
    pts_all = np.concatenate(points) if points else np.zeros((0, 3))
    cols_all = np.concatenate(colors) if colors else np.zeros((0, 3))
    return cameras, pts_all, cols_all.astype(np.float32)
