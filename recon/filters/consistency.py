"""Pixels no other photo can explain at any depth: a trust prior for occluders, made before training.

With 3–9 views the splat fits a person who is in one photo within a few hundred steps (a floater
in front of that camera), so residuals taken during training find occluders late or not at all.
The photos themselves say it earlier: a pixel of a real surface that another camera also sees has
some depth along its ray at which that camera's photo shows the same patch; a pasted person, a
car that drove off or a hand in front of the lens has none. For each view this sweeps
fronto-parallel planes (uniform in inverse depth, about a pixel of parallax apart) between the
scene's near and far, warps every other photo onto each plane, and keeps per pixel the lowest
patch colour difference over all planes and views. That best cost is compared with the view's
own median (as the robust weights compare residuals), so exposure differences between photos do
not make everything an outlier. Pixels whose rays leave every other frame keep full trust: no
evidence, as in `recon/filters/robust.py`. Textureless surfaces match at many depths and keep
their trust; surfaces only one photo sees (behind something in every other view) lose it, a
price that the robust weights' cross-view test does not pay, which is why this is measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from recon.filters.robust import smoothstep
from recon.init.plane_sweep import box_mean
from recon.reproject import nearest_views, pixel_rays, project_rays, relative_pose, sample_image
from recon.scene import Camera, Scene


@dataclass
class ConsistencyConfig:
    max_side: int = 320
    """Longest image side the sweep runs at (the trust map is upsampled to the photo)."""
    patch: int = 7
    """Box (pixels at that size, odd) over the colour difference: patches, not pixels, must match."""
    step_px: float = 1.0
    """Plane spacing in pixels of parallax for the widest baseline (at the sweep's size)."""
    max_planes: int = 256
    neighbours: int = 4
    """Other views warped onto each view's planes: the nearest by camera centre (cost grows with
    views × neighbours, not views²: 10 tourist photos took 107 s against every other view)."""
    k: float = 3.0
    """A pixel is unexplained where its best cost exceeds k × the view's median best cost (fully at 2k)."""
    floor: float = 0.5
    """Smallest threshold (in units of the patch's contrast): well matched photos keep their noise."""
    contrast_floor: float = 0.03
    """Added to a patch's contrast (grey standard deviation) before dividing by it: flat patches
    are judged by their colour difference over this."""
    solid: bool = True
    """Distrust whole regions, not speckle: the unexplained pixels (score > 0.3), closed, their
    holes filled and grown by `grow` get trust 0 (`solid_mask`). A soft, gappy map lets an
    occluder's colour leak in where its trust is 0.2–0.5 (fern with pasted occluders: smears of
    the occluders' colour in the test views)."""
    close: float = 0.012
    """Gap bridged when closing the regions, as a fraction of the image's longest side."""
    grow: float = 0.006
    """Margin added around each region (its soft edge), as a fraction of the longest side."""


def _small(cam: Camera, max_side: int) -> Camera:
    s = min(1.0, max_side / max(cam.width, cam.height))
    return cam.resized(max(1, round(cam.width * s)), max(1, round(cam.height * s))) if s < 1 else cam


def _rgb(img: np.ndarray, cam: Camera) -> torch.Tensor:
    """[3,h,w] of an image area-resized to the camera's size."""
    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float()
    if t.shape[1:] != (cam.height, cam.width):
        t = F.interpolate(t[None], size=(cam.height, cam.width), mode="area")[0]
    return t


def best_cost(scene: Scene, ref: int, near: float, far: float, cfg: ConsistencyConfig,
              chunk: int = 16) -> torch.Tensor:
    """[h,w] at the sweep's size: per pixel of view `ref`, the lowest patch colour difference over
    every plane and every other view; +inf where no plane projects into any other frame."""
    views = scene.views
    cam = _small(views[ref].camera, cfg.max_side)
    ref_img, rays = _rgb(views[ref].image, cam), pixel_rays(cam)
    others = []
    for o in sorted(nearest_views(scene.cameras, ref, cfg.neighbours)):
        oc = _small(views[o].camera, cfg.max_side)
        R, t = relative_pose(cam, oc)
        others.append((_rgb(views[o].image, oc), R, t, torch.from_numpy(oc.K).float(), oc))
    base = max(float(np.linalg.norm(o[4].center - cam.center)) for o in others)
    span = cam.K[0, 0] * base * (1 / near - 1 / far)  # pixels of parallax from near to far
    n = int(np.clip(span / cfg.step_px, 16, cfg.max_planes))
    inv = torch.linspace(1 / near, 1 / far, n)
    best = torch.full((cam.height, cam.width), float("inf"))
    # A textured patch misses by more than a flat one at the same sub-pixel error or foreshortening
    # (wide baselines), so the difference is measured in units of the patch's own contrast.
    grey = ref_img.mean(0, keepdim=True)
    contrast = (box_mean(grey**2, cfg.patch) - box_mean(grey, cfg.patch) ** 2).clamp_min(0).sqrt()[0]
    scale = contrast + cfg.contrast_floor
    with torch.no_grad():
        for start in range(0, n, chunk):
            depth = (1 / inv[start:start + chunk])[:, None, None].expand(-1, cam.height, cam.width)
            for img, R, t, K, _ in others:
                pix, ahead = project_rays(rays, depth, R, t, K)
                warped, inside = sample_image(img, pix)  # [D,3,h,w], [D,h,w]
                valid = box_mean((ahead & inside).float(), cfg.patch) > 0.999  # the whole patch lands inside
                cost = box_mean((warped - ref_img[None]).abs().mean(1), cfg.patch) / scale
                cost = torch.where(valid, cost, torch.full_like(cost, float("inf")))
                best = torch.minimum(best, cost.min(0).values)
    return best


def unexplained(scene: Scene, near: float, far: float, cfg: ConsistencyConfig) -> list[np.ndarray]:
    """Per view [H,W] float32 in [0,1]: 1 where no depth along the pixel's ray makes another photo
    agree (0 at τ = max(k × the view's median best cost, floor), 1 at 2τ and above), 0 where no
    other photo sees the ray (no evidence). Needs two views or more."""
    out = []
    for i, v in enumerate(scene.views):
        c = best_cost(scene, i, near, far, cfg)
        seen = torch.isfinite(c)
        if not seen.any():
            out.append(np.zeros(v.image.shape[:2], np.float32))
            continue
        tau = max(cfg.k * float(c[seen].median()), cfg.floor)
        score = smoothstep(c, tau, 2 * tau) * seen  # +inf (unseen) → 1 × 0: no evidence
        full = F.interpolate(score[None, None], size=v.image.shape[:2], mode="bilinear", align_corners=False)[0, 0]
        out.append(full.clamp(0, 1).numpy().astype(np.float32))
    return out


def solid_mask(score: np.ndarray, cfg: ConsistencyConfig, threshold: float = 0.3) -> np.ndarray:
    """[H,W] bool: the regions of an `unexplained` score [H,W] an occluder covers: pixels above
    `threshold`, opened (lone pixels are noise), closed across gaps of `cfg.close`, holes filled
    (a pasted person's flat middle can match the scene at some depth while its outline cannot)
    and grown by `cfg.grow`."""
    side = max(score.shape)
    cross = ndimage.generate_binary_structure(2, 1)
    b = ndimage.binary_opening(score > threshold, cross)
    r = max(1, round(cfg.close * side))
    b = ndimage.binary_closing(np.pad(b, r), cross, iterations=r)[r:-r, r:-r]  # padded: no border effect
    b = ndimage.binary_fill_holes(b)
    return ndimage.binary_dilation(b, cross, iterations=max(1, round(cfg.grow * side)))


def interior_share(score: np.ndarray, threshold: float = 0.5) -> float:
    """Share of a view's pixels in regions no other photo explains (`unexplained` score [H,W]
    above `threshold`), opened twice (specular glints and thin edges go) and not touching the
    frame's edge (where the sweep's planes or the other frames end: clean DTU's table edge).
    Measured on 3 views: clean fern ≤ 0.47%, clean DTU scan37 ≤ 0.68%; pasted people 1.2–9.4%."""
    cross = ndimage.generate_binary_structure(2, 1)
    b = ndimage.binary_opening(score > threshold, cross, iterations=2)
    labels, n = ndimage.label(b)
    if n == 0:
        return 0.0
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    inner = b & ~np.isin(labels, edge[edge > 0])
    return float(inner.mean())
