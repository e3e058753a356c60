"""Visual hull from masks + known poses: carve a voxel grid by the silhouettes, then seed
Gaussians on the hull's surface with colours sampled from the views that see each seed.

With 3–9 views the hull is loose (it over-estimates the object along the viewing directions),
but it bounds the object: no seed lands in empty space in front of it, which is where random
init puts the floaters that ruin novel views.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from recon.scene import Camera, Scene


@dataclass
class HullGrid:
    """An occupancy grid over an axis-aligned box; voxel (i,j,k) has centre origin + (ijk+0.5)·voxel."""

    occupied: np.ndarray  # [R0,R1,R2] bool
    origin: np.ndarray  # [3] world position of the box's min corner
    voxel: float  # voxel edge length (world units)

    def centres(self, ijk: np.ndarray) -> np.ndarray:
        """World centres [P,3] of voxel indices [P,3]."""
        return self.origin + (ijk + 0.5) * self.voxel

    def surface(self) -> np.ndarray:
        """[S,3] indices of occupied voxels with at least one empty 6-neighbour (or on the box edge)."""
        occ = self.occupied
        inner = ndimage.binary_erosion(occ, structure=ndimage.generate_binary_structure(3, 1),
                                       border_value=0)
        return np.argwhere(occ & ~inner)

    def contains(self, points: np.ndarray) -> np.ndarray:
        """[P] bool: whether points [P,3] fall in an occupied voxel."""
        ijk = np.floor((points - self.origin) / self.voxel).astype(np.int64)
        shape = np.array(self.occupied.shape)
        inside = np.all((ijk >= 0) & (ijk < shape), axis=1)
        out = np.zeros(len(points), dtype=bool)
        i = ijk[inside]
        out[inside] = self.occupied[i[:, 0], i[:, 1], i[:, 2]]
        return out


def _project(cam: Camera, pts: np.ndarray, clamp: bool = False
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pixel columns [P] int, rows [P] int, ok [P] bool). ok: in front of the camera and in its
    frame; with clamp, in front only, and pixels outside the frame move to the nearest edge pixel."""
    pix, z = cam.project(pts)
    with np.errstate(invalid="ignore"):
        u, v = np.floor(pix[:, 0]), np.floor(pix[:, 1])
        front = z > 1e-6
        ok = front if clamp else front & (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)
        u = np.clip(np.where(ok, u, 0), 0, cam.width - 1)
        v = np.clip(np.where(ok, v, 0), 0, cam.height - 1)
    return u.astype(np.int64), v.astype(np.int64), ok


def required_views(n: int, min_views: int, min_fraction: float = 0.5) -> int:
    """How many of n views must frame a voxel: at least min_views and min_fraction of them."""
    return min(n, max(min_views, int(np.ceil(min_fraction * n))))


def carve(cameras: list[Camera], masks: list[np.ndarray], lo: np.ndarray, hi: np.ndarray,
          resolution: int, min_views: int, dilate_px: int = 2) -> HullGrid:
    """Voxels of the box [lo, hi] whose centre falls inside the silhouette of every view it is in
    front of, with at least `required_views` such views. Objects are often cut by the image
    border, so a silhouette continues beyond the frame as its edge pixels do (a voxel projecting
    below the frame is inside when the mask's bottom row is, there). Masks are dilated by
    `dilate_px` so thin parts survive the voxel-centre test."""
    extent = float(np.max(hi - lo))
    voxel = extent / resolution
    dims = np.maximum(np.ceil((hi - lo) / voxel).astype(int), 1)
    ijk = np.stack(np.meshgrid(*[np.arange(d) for d in dims], indexing="ij"), -1).reshape(-1, 3)
    pts = lo + (ijk + 0.5) * voxel
    keep = np.ones(len(pts), dtype=bool)
    seen = np.zeros(len(pts), dtype=np.int32)
    for cam, mask in zip(cameras, masks):
        m = ndimage.binary_dilation(mask, iterations=dilate_px) if dilate_px > 0 else mask
        u, v, ok = _project(cam, pts, clamp=True)
        seen += ok
        keep &= ~ok | m[v, u]
    keep &= seen >= required_views(len(cameras), min_views)
    return HullGrid(keep.reshape(tuple(dims)), np.asarray(lo, dtype=np.float64), voxel)


def visual_hull(scene: Scene, resolution: int = 128, min_views: int = 2, dilate_px: int = 2,
                box_scale: float = 2.0) -> HullGrid:
    """Carve coarse over a generous box around the scene bounds (centre ± box_scale·radius), then
    at `resolution` over the coarse hull's bounding box. Raises ValueError without masks."""
    if not scene.has_masks:
        raise ValueError("visual hull needs a mask for every view")
    cams, masks = scene.cameras, [v.mask for v in scene.views]
    centre, radius = scene.bounds()
    lo, hi = centre - box_scale * radius, centre + box_scale * radius
    coarse = carve(cams, masks, lo, hi, max(resolution // 3, 16), min_views, dilate_px + 1)
    occ = np.argwhere(coarse.occupied)
    if len(occ) == 0:
        raise ValueError("the silhouettes do not intersect: no voxel is inside every mask")
    lo2 = coarse.origin + (occ.min(0) - 1) * coarse.voxel
    hi2 = coarse.origin + (occ.max(0) + 2) * coarse.voxel
    return carve(cams, masks, lo2, hi2, resolution, min_views, dilate_px)


def sample_hull(grid: HullGrid, n: int, rng: np.random.Generator, surface_fraction: float = 0.8
                ) -> np.ndarray:
    """n points [n,3]: `surface_fraction` of them jittered inside surface voxels, the rest inside
    any occupied voxel (interior seeds fill what a loose hull's surface misses)."""
    surf = grid.surface()
    allv = np.argwhere(grid.occupied)
    n_s = int(round(n * surface_fraction)) if len(surf) else 0
    picks = [surf[rng.integers(0, len(surf), n_s)]] if n_s else []
    picks.append(allv[rng.integers(0, len(allv), n - n_s)])
    ijk = np.concatenate(picks)
    return (grid.origin + (ijk + rng.random(ijk.shape)) * grid.voxel).astype(np.float32)


def visible_colors(points: np.ndarray, scene: Scene, depth_tol: float) -> np.ndarray:
    """Colours [P,3] of points [P,3]: the mean over the views where the point is the front-most
    thing along its pixel (a z-buffer of the points themselves, min-filtered to close gaps),
    falling back to the mean over every view that frames it."""
    acc = np.zeros((len(points), 3))
    cnt = np.zeros(len(points))
    acc_any = np.zeros((len(points), 3))
    cnt_any = np.zeros(len(points))
    for view in scene.views:
        cam = view.camera
        u, v, ok = _project(cam, points)
        _, z = cam.project(points)
        zbuf = np.full((cam.height, cam.width), np.inf)
        np.minimum.at(zbuf, (v[ok], u[ok]), z[ok])
        zbuf = ndimage.minimum_filter(zbuf, size=5)
        vis = ok & (z <= zbuf[v, u] + depth_tol)
        col = view.image[v, u]
        acc[vis] += col[vis]
        cnt[vis] += 1
        acc_any[ok] += col[ok]
        cnt_any[ok] += 1
    out = np.where(cnt[:, None] > 0, acc / np.maximum(cnt, 1)[:, None],
                   acc_any / np.maximum(cnt_any, 1)[:, None])
    out[(cnt == 0) & (cnt_any == 0)] = 0.5
    return out.astype(np.float32)


def hull_silhouette(grid: HullGrid, cam: Camera, surface: np.ndarray | None = None) -> np.ndarray:
    """[H,W] bool: the pixels the hull covers in `cam`. Its surface voxels (pass
    `grid.centres(grid.surface())` as `surface` [S,3] to reuse them) are drawn as squares as wide
    as their projection, so the silhouette has no gaps between voxel centres."""
    pts = grid.centres(grid.surface()) if surface is None else surface
    pix, z = cam.project(pts)
    front = z > 1e-6
    pix, z = pix[front], z[front]
    out = np.zeros((cam.height, cam.width), dtype=bool)
    # A (2r+1)-pixel square per voxel: the smallest that leaves no gap between neighbouring voxels
    # (capped at the image size: a voxel that near covers the view anyway).
    size = grid.voxel * cam.K[0, 0] / np.maximum(z, 1e-12)
    half = np.ceil(np.clip(size - 1, 0, max(cam.width, cam.height)) / 2).astype(np.int64)
    u, v = np.floor(pix[:, 0]), np.floor(pix[:, 1])
    inside = (u >= -half) & (u < cam.width + half) & (v >= -half) & (v < cam.height + half)
    for r in np.unique(half[inside]):
        sel = inside & (half == r)
        # Draw the centres on a canvas padded by r, so voxels just outside the frame still count.
        canvas = np.zeros((cam.height + 2 * r, cam.width + 2 * r), dtype=bool)
        canvas[(v[sel] + r).astype(np.int64), (u[sel] + r).astype(np.int64)] = True
        if r > 0:  # square dilation, separable: cheap even for big squares
            canvas = ndimage.maximum_filter(canvas, size=2 * r + 1)
        out |= canvas[r:r + cam.height, r:r + cam.width]
    return out
