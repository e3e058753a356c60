"""Dense points from the training views with known poses: plane-sweep stereo + consistency check.

For each view (the reference), sweep fronto-parallel planes uniformly in inverse depth, warp the
other views onto each plane and score the match by normalised cross-correlation (NCC) of small
patches. The best plane per pixel gives a depth; pixels whose best score is low (textureless,
occluded, specular) or whose depth the other views' depth maps do not confirm (COLMAP's fusion
rule) are dropped. This is triangulation with known poses made dense: where SIFT finds a few
hundred matches on 400×300 images, the sweep confirms tens of thousands of pixels. No weights.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from recon.reproject import nearest_views, pixel_rays, project_rays, relative_pose, sample_image
from recon.scene import Camera, Scene


def _grey(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img @ np.array([0.299, 0.587, 0.114], np.float32)))


def box_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """Box filter (mean over k×k, same size) of [B,H,W]; separable, so 2k not k² reads a pixel."""
    y = F.avg_pool2d(x[:, None], (k, 1), stride=1, padding=(k // 2, 0), count_include_pad=False)
    return F.avg_pool2d(y, (1, k), stride=1, padding=(0, k // 2), count_include_pad=False)[:, 0]


def _warp(img: torch.Tensor, R: torch.Tensor, t: torch.Tensor, K: torch.Tensor, rays: torch.Tensor,
          depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Other view's grey image [Ho,Wo] sampled where the reference pixels land when lifted to
    `depth` [D,h,w] (one depth hypothesis per pixel and slice): (warped [D,h,w], valid [D,h,w] —
    in front of the camera and inside its frame)."""
    pix, ahead = project_rays(rays, depth, R, t, K)
    warped, inside = sample_image(img[None], pix)
    return warped[:, 0], ahead & inside


def _scaled(cam: Camera, factor: int) -> Camera:
    return cam.resized(max(cam.width // factor, 1), max(cam.height // factor, 1)) if factor > 1 else cam


def _image(img: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Grey [h,w] of an image area-resized to (w, h)."""
    g = _grey(img)
    if g.shape == (size[1], size[0]):
        return g
    return F.interpolate(g[None, None], size=(size[1], size[0]), mode="area")[0, 0]


def _score(scene: Scene, ref: int, inv_depth: torch.Tensor, factor: int, window: int, neighbours: int = 4,
           chunk: int = 16) -> torch.Tensor:
    """Matching score [D,h,w] of per-pixel inverse-depth hypotheses [D,h,w] for view `ref` at
    1/factor resolution: the mean NCC over the best half of its `neighbours` nearest views (the
    other half may not see the pixel); -1 where no view does."""
    views = scene.views
    cam = _scaled(views[ref].camera, factor)
    h, w = cam.height, cam.width
    g_ref = _image(views[ref].image, (w, h))[None]
    mu_r = box_mean(g_ref, window)
    sd_r = (box_mean(g_ref**2, window) - mu_r**2).clamp_min(0).sqrt()
    rays = pixel_rays(cam)
    others = nearest_views(scene.cameras, ref, neighbours)
    k_best = max(1, (len(others) + 1) // 2)
    imgs = []
    for o in others:
        oc = _scaled(views[o].camera, factor)
        R, t = relative_pose(cam, oc)
        imgs.append((_image(views[o].image, (oc.width, oc.height)), R, t, torch.from_numpy(oc.K).float()))
    out = torch.empty_like(inv_depth)
    for start in range(0, len(inv_depth), chunk):
        depth = 1 / inv_depth[start:start + chunk]
        per_view = []
        for img, R, t, K in imgs:
            warped, valid = _warp(img, R, t, K, rays, depth)
            mu_w = box_mean(warped, window)
            sd_w = (box_mean(warped**2, window) - mu_w**2).clamp_min(0).sqrt()
            ncc = (box_mean(warped * g_ref, window) - mu_w * mu_r) / (sd_w * sd_r + 1e-4)
            per_view.append(torch.where(valid, ncc, torch.full_like(ncc, -1.0)))
        out[start:start + chunk] = torch.stack(per_view).topk(k_best, dim=0).values.mean(0)
    # Flat patches score by noise alone: no confidence there.
    return torch.where(sd_r > 0.01, out, torch.full_like(out, -1.0))


def _disparity_per_inv_depth(scene: Scene, ref: int, neighbours: int = 4) -> float:
    """Pixels of image motion per unit of inverse depth, for the widest-baseline view it is matched
    with, measured at the reference image's centre (sets the plane spacing to about a pixel)."""
    cam = scene.views[ref].camera
    ray = np.linalg.inv(cam.K) @ np.array([cam.width / 2, cam.height / 2, 1.0])
    best = 0.0
    for o in nearest_views(scene.cameras, ref, neighbours):
        view = scene.views[o]
        base = np.linalg.norm(view.camera.center - cam.center)
        best = max(best, float(view.camera.K[0, 0] * base / np.linalg.norm(ray)))
    return best


def _best(scores: torch.Tensor, inv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel (inverse depth [h,w], score [h,w]) of the best hypothesis, refined between
    hypotheses by a parabola through the neighbours' scores."""
    D = len(scores)
    best = scores.argmax(0, keepdim=True)
    s0 = scores.gather(0, best)[0]
    lo, hi = (best - 1).clamp(0, D - 1), (best + 1).clamp(0, D - 1)
    sl, sh = scores.gather(0, lo)[0], scores.gather(0, hi)[0]
    denom = sl - 2 * s0 + sh
    inner = (denom < -1e-6) & (lo[0] != best[0]) & (hi[0] != best[0])
    offset = torch.where(inner, 0.5 * (sl - sh) / denom.clamp(max=-1e-6), torch.zeros_like(s0)).clamp(-0.5, 0.5)
    i0 = inv.gather(0, best)[0]
    step = (inv.gather(0, hi)[0] - inv.gather(0, lo)[0]) / (hi - lo).clamp_min(1)[0]
    return i0 + offset * step, s0


def sweep_depth(scene: Scene, ref: int, near: float, far: float, window: int = 7, coarse: int = 4,
                step_px: float = 1.0, max_planes: int = 192, neighbours: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(depth [H,W], score [H,W]) of view `ref`. Coarse to fine: fronto-parallel planes uniform
    in inverse depth about `step_px` pixels of parallax apart at 1/`coarse` resolution, then at full
    resolution per-pixel hypotheses within ±(coarse+1) pixels of the upsampled coarse answer, half
    a pixel apart. Planes a fixed count apart would be several pixels apart on a wide baseline.
    The view is matched with its `neighbours` nearest views (0 = all)."""
    cam = scene.views[ref].camera
    span = _disparity_per_inv_depth(scene, ref, neighbours) * (1 / near - 1 / far)
    with torch.no_grad():
        c = _scaled(cam, coarse)
        n = int(np.clip(span / coarse / step_px, 16, max_planes))
        inv = torch.linspace(1 / near, 1 / far, n)[:, None, None].expand(n, c.height, c.width).contiguous()
        inv_c, _ = _best(_score(scene, ref, inv, coarse, max(3, window // 2 * 2 - 1), neighbours), inv)
        inv_up = F.interpolate(inv_c[None, None], size=(cam.height, cam.width), mode="nearest")[0, 0]
        delta = 0.5 * step_px * (1 / near - 1 / far) / max(span, 1e-9)  # half a pixel of parallax
        k = int(np.ceil((coarse + 1) * step_px / 0.5 / step_px))
        offsets = torch.arange(-k, k + 1, dtype=torch.float32)[:, None, None] * delta
        hyp = (inv_up[None] + offsets).clamp(1 / far, 1 / near)
        inv_f, score = _best(_score(scene, ref, hyp, 1, window, neighbours), hyp)
    return (1 / inv_f).numpy(), score.numpy()


def _consistent(scene: Scene, depths: list[np.ndarray], ref: int, rel_tol: float, px_tol: float,
                neighbours: int = 4) -> np.ndarray:
    """[H,W] count of its nearest views whose depth map confirms the reference depth: the reference
    pixel lifted, projected into the other view, lifted with that view's depth and projected back
    lands within px_tol pixels at a depth within rel_tol."""
    cam = scene.views[ref].camera
    rays = pixel_rays(cam).numpy().astype(np.float64)
    X = (rays * depths[ref].reshape(-1, 1)) @ cam.cam_to_world[:3, :3].T + cam.cam_to_world[:3, 3]
    count = np.zeros(len(X), dtype=np.int32)
    for o in nearest_views(scene.cameras, ref, neighbours):
        oc = scene.views[o].camera
        pix, _ = oc.project(X)
        with np.errstate(invalid="ignore"):
            u, v = np.floor(pix[:, 0]), np.floor(pix[:, 1])
            ok = (u >= 0) & (u < oc.width) & (v >= 0) & (v < oc.height)
        ui, vi = np.where(ok, u, 0).astype(int), np.where(ok, v, 0).astype(int)
        d_o = depths[o][vi, ui]
        ray_o = np.linalg.inv(oc.K) @ np.stack([ui + 0.5, vi + 0.5, np.ones(len(ui))])
        Xo = (ray_o * d_o).T @ oc.cam_to_world[:3, :3].T + oc.cam_to_world[:3, 3]
        back, zb = cam.project(Xo)
        own = np.stack([np.arange(len(X)) % cam.width + 0.5, np.arange(len(X)) // cam.width + 0.5], 1)
        d_r = depths[ref].reshape(-1)
        count += ok & (np.linalg.norm(back - own, axis=1) < px_tol) & (np.abs(zb - d_r) < rel_tol * d_r)
    return count.reshape(cam.height, cam.width)


_MEMO: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}


def confident_depths(scene: Scene, near: float, far: float, window: int = 7, coarse: int = 4,
                     min_score: float = 0.5, rel_tol: float = 0.01, px_tol: float = 1.0, neighbours: int = 4
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per view (depth [H,W], confident [H,W] bool): the sweep's depth, confident where its score
    reaches min_score and another view's depth confirms it. Memoised on the images, cameras and
    settings: the init stage seeds from these depths and the optimise stage supervises with them."""
    h = hashlib.sha1(repr((near, far, window, coarse, min_score, rel_tol, px_tol, neighbours)).encode())
    for v in scene.views:
        h.update(v.image.tobytes())
        h.update(v.camera.K.tobytes())
        h.update(v.camera.world_to_cam.tobytes())
    key = h.hexdigest()
    if key not in _MEMO:
        sweeps = [sweep_depth(scene, i, near, far, window, coarse, neighbours=neighbours) for i in range(len(scene))]
        depths = [d for d, _ in sweeps]
        _MEMO.clear()  # one scene at a time is all a run needs; keep memory bounded
        _MEMO[key] = [(depths[i], (sweeps[i][1] >= min_score) & (_consistent(scene, depths, i, rel_tol, px_tol, neighbours) >= 1))
                      for i in range(len(scene))]
    return _MEMO[key]


def fill_holes(depth: np.ndarray, valid: np.ndarray, region: np.ndarray, farthest: float = 0.0) -> np.ndarray:
    """Depth [H,W] where `region` has no `valid` depth, taken from the nearest valid pixel
    (a cheap, edge-preserving completion: it never blends across a depth edge). farthest > 0:
    the farthest valid depth within `farthest` × the distance to the nearest valid pixel instead:
    next to a confident pixel much as before, deep inside a textureless area a guess that errs
    backwards, where a wrong surface is hidden from other views behind the true one rather than
    drawn in front of it."""
    if not valid.any():
        return depth
    dist, (iy, ix) = ndimage.distance_transform_edt(~valid, return_indices=True)
    out = depth.copy()
    hole = region & ~valid
    out[hole] = depth[iy[hole], ix[hole]]
    if farthest > 0:
        known = np.where(valid, depth, 0.0)
        reach = np.ceil(farthest * dist)  # search radius per pixel, in pixels
        radius = 1
        while True:  # radii in powers of two: one max filter each, never a smaller reach than asked
            use = hole & (reach <= radius) & (reach > radius // 2)
            if use.any():
                out[use] = ndimage.maximum_filter(known, size=2 * radius + 1)[use]
            if radius >= reach[hole].max():
                break
            radius *= 2
    return out


def plane_sweep_points(scene: Scene, near: float, far: float, window: int = 7, coarse: int = 4,
                       min_score: float = 0.5, rel_tol: float = 0.01, px_tol: float = 1.0,
                       max_points: int = 50_000, fill_stride: int = 0, rng: np.random.Generator | None = None,
                       neighbours: int = 4, fill_farthest: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(points [P,3], colours [P,3], footprints [P], confident [P] bool) fused from every view's
    confident, confirmed depths. footprint = the world size of one pixel at that depth (a natural
    Gaussian scale). Views with masks keep only object pixels. With fill_stride > 0, every
    fill_stride-th pixel without a confident depth (inside the mask, or anywhere without one) gets
    the nearest confident depth (with fill_farthest > 0, the farthest within fill_farthest × the
    distance to it), so textureless parts are seeded too (confident = False)."""
    rng = rng or np.random.default_rng(0)
    pts, cols, feet, conf = [], [], [], []
    for view, (depth, keep) in zip(scene.views, confident_depths(scene, near, far, window, coarse, min_score,
                                                                 rel_tol, px_tol, neighbours)):
        cam = view.camera
        region = view.mask if view.mask is not None else np.ones((cam.height, cam.width), dtype=bool)
        keep = keep & region
        use = keep.copy()
        if fill_stride > 0:
            depth = fill_holes(depth, keep, region, fill_farthest)
            grid = np.zeros_like(keep)
            grid[::fill_stride, ::fill_stride] = True
            use |= region & ~keep & grid
        vi, ui = np.nonzero(use)
        d = depth[vi, ui].astype(np.float64)
        ray = np.linalg.inv(cam.K) @ np.stack([ui + 0.5, vi + 0.5, np.ones(len(ui))])
        X = (ray * d).T @ cam.cam_to_world[:3, :3].T + cam.cam_to_world[:3, 3]
        pts.append(X)
        cols.append(view.image[vi, ui])
        # A filled seed stands for fill_stride² pixels.
        feet.append(d / cam.K[0, 0] * np.where(keep[vi, ui], 1.0, max(fill_stride, 1)))
        conf.append(keep[vi, ui])
    P, C, S, K = (np.concatenate(x) for x in (pts, cols, feet, conf))
    if len(P) > max_points:
        pick = rng.choice(len(P), max_points, replace=False)
        P, C, S, K = P[pick], C[pick], S[pick], K[pick]
    return P.astype(np.float32), C.astype(np.float32), S.astype(np.float32), K


def behind_surface(points: np.ndarray, scene: Scene, depths: list[np.ndarray], margin: float = 0.02) -> np.ndarray:
    """[P] bool: points [P,3] that no view can see — behind its depth map [H,W] (by more than
    `margin` of the depth) wherever they are in its frame."""
    hidden = np.ones(len(points), dtype=bool)
    for view, depth in zip(scene.views, depths):
        cam = view.camera
        pix, z = cam.project(points.astype(np.float64))
        with np.errstate(invalid="ignore"):
            u, v = np.floor(pix[:, 0]), np.floor(pix[:, 1])
            frame = (z > 0) & (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)
        ui, vi = np.where(frame, u, 0).astype(int), np.where(frame, v, 0).astype(int)
        hidden &= ~frame | (z > depth[vi, ui] * (1 + margin))
    return hidden
