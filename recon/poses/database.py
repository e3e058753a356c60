"""Features and matches into a COLMAP database, whichever front end produced them.

SIFT runs through pycolmap on a (possibly) shrunk grey copy of each view; a learned matcher hands
over per-pair keypoint matches. Either way the database holds keypoints in the pixels of the
scene's images, so the cameras COLMAP estimates are the scene's cameras, at the scene's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recon.scene import View


@dataclass
class CameraGroup:
    """Views that share one COLMAP camera: same size and the same initial intrinsics."""

    width: int
    height: int
    K: np.ndarray
    focal_prior: bool  # True when the focal came from EXIF: COLMAP then trusts it more
    views: list[int] = field(default_factory=list)


def group_cameras(views: Sequence[View], focal_known: dict[str, bool], share: bool) -> list[CameraGroup]:
    """One camera per (size, initial K) when `share`, else one per view.

    Sharing is what makes 3-view SfM solvable at all: one focal length for all views instead of one
    per view halves the unknowns the few matches must pin down.
    """
    groups: list[CameraGroup] = []
    for i, v in enumerate(views):
        key_K = np.round(v.camera.K, 3)
        match = next((g for g in groups if share and (g.width, g.height) == (v.camera.width, v.camera.height)
                      and np.array_equal(np.round(g.K, 3), key_K)), None)
        if match is None:
            match = CameraGroup(v.camera.width, v.camera.height, v.camera.K.copy(), bool(focal_known.get(v.name)))
            groups.append(match)
        match.views.append(i)
    return groups


def grey_u8(image: np.ndarray, max_size: int) -> tuple[np.ndarray, float]:
    """(uint8 grey [h,w] no larger than max_size on its long side, scale = w / original width)."""
    from PIL import Image

    grey = (image[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).astype(np.float32)
    u8 = np.clip(np.round(grey * 255), 0, 255).astype(np.uint8)
    h, w = u8.shape
    if max(h, w) <= max_size:
        return np.ascontiguousarray(u8), 1.0
    s = max_size / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    small = np.asarray(Image.fromarray(u8).resize(size, Image.LANCZOS))
    return np.ascontiguousarray(small), size[0] / w


def extract_sift(image: np.ndarray, max_size: int, max_features: int, affine: bool) -> tuple[np.ndarray, np.ndarray]:
    """SIFT on one view: (keypoints [N,4] x, y, scale, orientation in the view's pixels, uint8 descriptors [N,128]).

    `affine` turns on affine-shape estimation and domain-size pooling (slower; more matches under
    the wide baselines of sparse captures).
    """
    import pycolmap

    opts = pycolmap.FeatureExtractionOptions()
    opts.sift.max_num_features = max_features
    opts.sift.estimate_affine_shape = affine
    opts.sift.domain_size_pooling = affine
    opts.num_threads = -1
    extractor = pycolmap.FeatureExtractor.create(opts, pycolmap.Device.cpu)
    u8, scale = grey_u8(image, max_size)
    kps, desc = extractor.extract_from_uint8_array(u8)
    kp = pycolmap.keypoints_to_matrix(kps).astype(np.float32).copy()
    kp[:, :3] /= scale  # x, y and the keypoint scale back to the view's pixels; orientation unchanged
    return kp, np.asarray(desc.data, dtype=np.uint8)


def new_database(path: Path, views: Sequence[View], groups: Sequence[CameraGroup], camera_model: str) -> list[int]:
    """Create the database with cameras and images; return each view's image id (view order)."""
    import pycolmap

    if path.exists():
        path.unlink()
    ids = [0] * len(views)
    with pycolmap.Database.open(str(path)) as db:
        for g in groups:
            f = float((g.K[0, 0] + g.K[1, 1]) / 2)
            cx, cy = float(g.K[0, 2]), float(g.K[1, 2])
            params = {"SIMPLE_PINHOLE": [f, cx, cy], "SIMPLE_RADIAL": [f, cx, cy, 0.0],
                      "RADIAL": [f, cx, cy, 0.0, 0.0], "PINHOLE": [g.K[0, 0], g.K[1, 1], cx, cy]}[camera_model]
            cam = pycolmap.Camera(model=camera_model, width=g.width, height=g.height, params=params)
            cam.has_prior_focal_length = g.focal_prior
            cam_id = db.write_camera(cam)
            for i in g.views:
                ids[i] = db.write_image(pycolmap.Image(name=image_key(views[i]), camera_id=cam_id))
    return ids


def image_key(view: View) -> str:
    """The name a view has inside COLMAP (unique, file-like; COLMAP keys images by name)."""
    return f"{view.name}.png"


def write_sift(path: Path, image_ids: Sequence[int], features: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
    """Store SIFT keypoints and descriptors for every image."""
    import pycolmap

    with pycolmap.Database.open(str(path)) as db:
        for iid, (kp, desc) in zip(image_ids, features):
            db.write_keypoints(iid, kp)
            db.write_descriptors(iid, pycolmap.FeatureDescriptors(pycolmap.FeatureExtractorType.SIFT, desc))


class KeypointMerger:
    """Turns per-pair matches (pixel coordinates) into per-image keypoint lists plus index matches.

    Detector-free matchers (LoFTR-like) return different points for every pair; points of one
    image closer than `snap` pixels are merged so tracks can span more than two views.
    """

    def __init__(self, num_images: int, snap: float = 1.0) -> None:
        self.snap = snap
        self.points: list[list[tuple[float, float]]] = [[] for _ in range(num_images)]
        self.index: list[dict[tuple[int, int], int]] = [{} for _ in range(num_images)]
        self.matches: dict[tuple[int, int], list[tuple[int, int]]] = {}

    def _id(self, img: int, xy: np.ndarray) -> int:
        key = (int(np.floor(xy[0] / self.snap)), int(np.floor(xy[1] / self.snap)))
        idx = self.index[img].get(key)
        if idx is None:
            idx = len(self.points[img])
            self.index[img][key] = idx
            self.points[img].append((float(xy[0]), float(xy[1])))
        return idx

    def add(self, i: int, j: int, xy_i: np.ndarray, xy_j: np.ndarray) -> None:
        """Record matches between images i and j (arrays [M,2] in pixels, corner-origin)."""
        pairs = self.matches.setdefault((i, j), [])
        seen = set(pairs)
        for a, b in zip(xy_i, xy_j):
            m = (self._id(i, a), self._id(j, b))
            if m not in seen:  # two matches snapped onto the same keypoints count once
                seen.add(m)
                pairs.append(m)

    def write(self, path: Path, image_ids: Sequence[int]) -> int:
        """Store keypoints and raw matches; return the number of pairs written."""
        import pycolmap

        with pycolmap.Database.open(str(path)) as db:
            for iid, pts in zip(image_ids, self.points):
                db.write_keypoints(iid, np.asarray(pts, dtype=np.float32).reshape(-1, 2))
            for (i, j), m in self.matches.items():
                if m:
                    db.write_matches(image_ids[i], image_ids[j], np.asarray(m, dtype=np.uint32).reshape(-1, 2))
        return sum(1 for m in self.matches.values() if m)


def verified_pairs(path: Path) -> list[tuple[int, int, int]]:
    """(image_id1, image_id2, inliers) for every verified pair, most inliers first."""
    import pycolmap

    with pycolmap.Database.open(str(path)) as db:
        pair_ids, geoms = db.read_two_view_geometries()
        out = []
        for pid, g in zip(pair_ids, geoms):
            a, b = pycolmap.pair_id_to_image_pair(pid)
            out.append((int(a), int(b), len(g.inlier_matches)))
    return sorted(out, key=lambda t: -t[2])


STILL_PX = 2.0
"""Matches that move less than this (the photos' pixels) between two photos stand still."""
STILL_SHARE = 0.5
"""A pair whose verified matches stand still in more than this share was taken by a camera that did
not move: the object turned in front of a still background (a turntable). Real camera moves leave
few such matches (distant points shift by several pixels even on LLFF's forward-facing captures)."""


def drop_still_matches(path: Path, px: float = STILL_PX, share: float = STILL_SHARE) -> list[tuple[int, int, int, int]]:
    """Remove the still matches of pairs taken by a camera that did not move (see STILL_SHARE): a
    still background tells nothing about how the camera moved around the object, yet thousands of
    such matches make SfM fail slowly or pose every photo at one spot. The pair's verification is
    deleted too, to be redone on the matches that moved. Returns (image_id1, image_id2, still,
    verified) per such pair."""
    import pycolmap

    out = []
    with pycolmap.Database.open(str(path)) as db:
        pair_ids, geoms = db.read_two_view_geometries()
        kps: dict[int, np.ndarray] = {}

        def moved(a: int, b: int, m: np.ndarray) -> np.ndarray:
            for i in (a, b):
                if i not in kps:
                    kps[i] = np.asarray(db.read_keypoints(i))[:, :2]
            return np.linalg.norm(kps[a][m[:, 0]] - kps[b][m[:, 1]], axis=1)

        for pid, g in zip(pair_ids, geoms):
            a, b = (int(i) for i in pycolmap.pair_id_to_image_pair(pid))
            inliers = np.asarray(g.inlier_matches).reshape(-1, 2)
            still = int((moved(a, b, inliers) < px).sum()) if len(inliers) else 0
            if not len(inliers) or still <= share * len(inliers):
                continue
            raw = np.asarray(db.read_matches(a, b)).reshape(-1, 2)
            keep = raw[moved(a, b, raw) >= px]
            db.delete_matches(a, b)
            db.delete_two_view_geometry(a, b)
            if len(keep):
                db.write_matches(a, b, np.ascontiguousarray(keep, dtype=np.uint32))
            out.append((a, b, still, len(inliers)))
    return out
