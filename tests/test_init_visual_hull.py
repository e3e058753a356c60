"""Visual hull init: the hull of a rendered sphere is a sphere; seeds sit on it with its colours."""

from __future__ import annotations

import numpy as np
import pytest

from recon.gaussians import Gaussians
from recon.init.visual_hull import hull_silhouette, sample_hull, visible_colors, visual_hull
from recon.scene import Camera

from synthetic import look_at, render_scene


def sphere_cameras(n: int = 10, dist: float = 4.0, size: tuple[int, int] = (64, 48)) -> list[Camera]:
    """n cameras looking at the origin from directions spread over the sphere (no poles)."""
    w, h = size
    f = 0.5 * w / np.tan(np.radians(25))
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])
    cams = []
    for i in range(n):
        z = 0.8 * (1 - 2 * (i + 0.5) / n)
        r = np.sqrt(1 - z * z)
        a = i * np.pi * (3 - np.sqrt(5))
        eye = dist * np.array([r * np.cos(a), r * np.sin(a), z])
        cams.append(Camera(K, look_at(eye, np.zeros(3)), w, h))
    return cams


def sphere_splat(radius: float = 1.0, n: int = 3000) -> Gaussians:
    """Opaque Gaussians on a sphere's surface, red on top (z > 0), blue below."""
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    a = i * np.pi * (3 - np.sqrt(5))
    pts = radius * np.stack([np.sqrt(1 - z * z) * np.cos(a), np.sqrt(1 - z * z) * np.sin(a), z], 1)
    colors = np.where(pts[:, 2:] > 0, [[1.0, 0.1, 0.1]], [[0.1, 0.1, 1.0]])
    return Gaussians.from_points(pts.astype(np.float32), colors.astype(np.float32), sh_degree=0,
                                 opacity=0.99, scale=0.05)


@pytest.fixture(scope="module")
def sphere_scene():
    return render_scene(sphere_splat(), sphere_cameras())


def test_hull_of_a_rendered_sphere_is_a_sphere(sphere_scene):
    grid = visual_hull(sphere_scene, resolution=48, min_views=2, dilate_px=1)
    centres = grid.centres(np.argwhere(grid.occupied))
    r = np.linalg.norm(centres, axis=1)
    # The silhouettes are discs of radius ≈ 1 (+ the Gaussians' extent): the hull hugs the sphere
    # from outside — ten views carve it to within a few voxels everywhere.
    assert r.max() < 1.3, f"hull reaches {r.max():.2f}, beyond the sphere"
    inner = np.random.default_rng(0).normal(size=(2000, 3))
    inner = inner / np.linalg.norm(inner, axis=1, keepdims=True) * np.random.default_rng(1).uniform(0, 0.9, (2000, 1))
    assert grid.contains(inner).all(), "every point inside the sphere must be in the hull"
    surf = np.linalg.norm(grid.centres(grid.surface()), axis=1)
    assert abs(np.median(surf) - 1.05) < 0.1 and surf.std() < 0.08, (np.median(surf), surf.std())
    # Spherical, not a box or a cylinder: the extents agree along every axis.
    extent = centres.max(0) - centres.min(0)
    assert extent.max() / extent.min() < 1.1


def test_hull_seeds_on_the_surface_with_the_views_colours(sphere_scene):
    grid = visual_hull(sphere_scene, resolution=40, dilate_px=1)
    pts = sample_hull(grid, 2000, np.random.default_rng(0), surface_fraction=1.0)
    r = np.linalg.norm(pts, axis=1)
    assert np.all((r > 0.85) & (r < 1.3)), (r.min(), r.max())
    colors = visible_colors(pts, sphere_scene, 2 * grid.voxel)
    top, bottom = pts[:, 2] > 0.4, pts[:, 2] < -0.4
    assert colors[top, 0].mean() > 0.6 and colors[top, 2].mean() < 0.4, "top of the sphere is red"
    assert colors[bottom, 2].mean() > 0.6 and colors[bottom, 0].mean() < 0.4, "bottom is blue"


def test_hull_silhouette_covers_the_mask_in_a_new_view(sphere_scene):
    train = sphere_scene.subset([v.index for v in sphere_scene.views[:-1]])
    grid = visual_hull(train, resolution=48, dilate_px=1)
    held_out = sphere_scene.views[-1]
    sil = hull_silhouette(grid, held_out.camera)
    m = held_out.mask
    assert (sil & m).sum() / m.sum() > 0.98, "the hull contains the object, so its silhouette covers the mask"
    # and hugs it: at 64×48 the sphere is a ~18-pixel-radius disc, so a 2-pixel ring (masks dilated
    # by 1, a loose hull between the views) already costs 20% of IoU.
    assert (sil & m).sum() / (sil | m).sum() > 0.7
    assert not sil[0, 0] and not sil[-1, -1], "corners are background"


def test_hull_needs_masks(sphere_scene):
    from dataclasses import replace

    views = [replace(v, mask=None) for v in sphere_scene.views]
    with pytest.raises(ValueError, match="mask"):
        visual_hull(replace(sphere_scene, views=views))
