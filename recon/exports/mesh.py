"""A coloured triangle mesh of a splat: TSDF fusion (open3d) of the depth and colour recon renders
from the training cameras and from orbits about the object, optionally re-surfaced by Poisson,
then cleaned (only the large connected pieces kept). Written as .ply, .obj or .glb.

Depth is the splat's ray depth (`recon.render.views`), kept only where the render's alpha is over
`alpha_min` and the depth map is not on an edge (`max_slant`): the transparent background and the
rims where the depth blends the object with what is behind it fuse no surface. The voxel is the
splat's robust extent over `resolution`, the truncation `trunc_voxels` voxels. Vertex colours
come from the training views where they see the vertex (`recolour`), else from the fusion.

open3d is optional (`pip install 'recon[open3d]'`, about 900 MB) and imported only here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from recon.cache import atomic_write_bytes
from recon.errors import ReconError
from recon.exports.bar import progress_bar
from recon.exports.camera_paths import at_size, orbit_cameras, scene_frame
from recon.render.views import SplatRenderer
from recon.gaussians import Gaussians
from recon.scene import Camera

MESH_SUFFIXES = (".ply", ".obj", ".glb")
INSTALL_HINT = ("--format mesh needs open3d: pip install 'recon[open3d]' "
                "(about 900 MB; on Debian/Ubuntu also apt-get install libusb-1.0-0)")


@dataclass
class MeshSettings:
    method: str = "tsdf"
    """tsdf: the fused surface itself; poisson: a Poisson surface through its points, trimmed to
    them (`poisson_trim`)."""
    resolution: int = 256
    """Voxels along the longest side of the splat's robust box (16-512; the grid is dense, about 48
    bytes a voxel in open3d 0.20: 0.8 GB at 256)."""
    trunc_voxels: float = 5.0
    """TSDF truncation distance, in voxels."""
    alpha_min: float = 0.5
    """Pixels whose render alpha is below this fuse no depth."""
    orbit_views: int = 12
    """Views on each orbit ring, besides the training cameras."""
    orbit_elevations: tuple[float, ...] = (-60.0, -30.0, 0.0, 30.0, 60.0)
    """Elevations of the orbit rings, degrees relative to the training cameras' mean elevation."""
    max_side: int = 800
    """Renders for fusion are at most this many pixels on their longer side."""
    keep_fraction: float = 0.05
    """Connected pieces with fewer triangles than this fraction of the largest are dropped."""
    max_slant: float = 85.0
    """Pixels seeing the surface more obliquely than this (degrees between the ray and the normal
    of the depth map) fuse no depth: at depth edges the map jumps from the object to what is
    behind it, and the blend in between is no surface."""
    poisson_trim: float = 2.0
    """Poisson: vertices farther than this many voxels from every fused surface point (surface
    that Poisson guessed across space no view saw) are removed."""


def import_open3d():
    try:  # (numba's warning about open3d's older TBB is silenced in recon/__init__.py)
        import open3d
    except (ImportError, OSError) as e:  # a missing libusb is an OSError from the loader
        raise ReconError(f"{INSTALL_HINT} ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    open3d.utility.set_verbosity_level(open3d.utility.VerbosityLevel.Error)
    return open3d


def splat_box(g: Gaussians) -> tuple[np.ndarray, np.ndarray]:
    """(lo [3], hi [3]) of the opaque part of the splat: the 0.5-99.5 percentiles of the centres of
    Gaussians with opacity ≥ 0.5 (all of them when fewer than 8 are), so stray floaters do not
    stretch the voxel grid."""
    means = g.means.detach().numpy()
    opaque = torch.sigmoid(g.opacities.detach()).numpy() >= 0.5
    pts = means[opaque] if opaque.sum() >= 8 else means
    if len(pts) == 0:
        raise ReconError("the splat is empty: nothing to mesh")
    lo, hi = np.percentile(pts, [0.5, 99.5], axis=0)
    return lo, hi


def fusion_cameras(cameras: list[Camera], settings: MeshSettings) -> list[Camera]:
    """The training cameras and the orbit rings, all at most `max_side` pixels on a side."""
    first = cameras[0]
    s = min(1.0, settings.max_side / max(first.width, first.height))
    like = at_size(first, max(int(round(first.width * s)), 8), max(int(round(first.height * s)), 8))
    frame = scene_frame(cameras)
    views = [at_size(c, max(int(round(c.width * s)), 8), max(int(round(c.height * s)), 8)) for c in cameras]
    for offset in settings.orbit_elevations:
        views += orbit_cameras(frame, like, settings.orbit_views, frame.elevation + np.radians(offset), first.center)
    return views


def build_mesh(g: Gaussians, cameras: list[Camera], settings: MeshSettings | None = None,
               device: str = "auto", progress: bool = True):
    """The cleaned, coloured open3d TriangleMesh of the splat `g` seen from `cameras`."""
    settings = settings or MeshSettings()
    if settings.method not in ("tsdf", "poisson"):
        raise ReconError(f"unknown mesh method '{settings.method}' (tsdf or poisson)")
    if not 16 <= settings.resolution <= 512:
        raise ReconError(f"--mesh-resolution {settings.resolution}: 16 to 512 (a dense grid of that many voxels "
                         "a side: 0.8 GB at 256, 6.4 GB at 512)")
    if not cameras:
        raise ReconError("a mesh needs the run's cameras (cameras.json)")
    o3d = import_open3d()
    lo, hi = splat_box(g)
    margin = 0.1 * (hi - lo)  # percentiles cut the box's edges; the mesh is cropped to this box
    lo, hi = lo - margin, hi + margin
    if not float(np.max(hi - lo)) > 0:
        raise ReconError("the splat has no extent: nothing to mesh")
    views = fusion_cameras(cameras, settings)
    volume, training = _fuse(o3d, SplatRenderer(g, device), views, len(cameras), lo, hi, settings, progress)
    voxel = float(np.max(hi - lo)) / settings.resolution
    mesh = volume.extract_triangle_mesh() if settings.method == "tsdf" else _poisson(o3d, volume, voxel, settings)
    mesh = mesh.crop(o3d.geometry.AxisAlignedBoundingBox(lo, hi))
    mesh = clean_mesh(mesh, settings.keep_fraction)
    if len(mesh.triangles) == 0:
        raise ReconError(f"the mesh is empty: no render had alpha over {settings.alpha_min} inside the splat's box")
    recolour(mesh, training, settings.trunc_voxels * voxel)
    return mesh


def _fuse(o3d, renderer: SplatRenderer, views: list[Camera], n_training: int, lo: np.ndarray, hi: np.ndarray,
          settings: MeshSettings, progress: bool):
    """A dense TSDF cube over the box (open3d 0.20's hashed ScalableTSDFVolume and VoxelBlockGrid
    integrated nothing here, the dense UniformTSDFVolume works), `resolution` voxels a side; and
    the first `n_training` views' (camera, colour [H,W,3], fused depth [H,W]) for `recolour`."""
    integration = o3d.pipelines.integration
    side = float(np.max(hi - lo))
    voxel = side / settings.resolution
    volume = integration.UniformTSDFVolume(length=side, resolution=settings.resolution,
                                           sdf_trunc=settings.trunc_voxels * voxel,
                                           color_type=integration.TSDFVolumeColorType.RGB8,
                                           origin=((lo + hi) / 2 - side / 2).reshape(3, 1))
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    training = []
    with progress_bar("mesh: fusing views", len(views), progress) as step:
        for i, cam in enumerate(views):
            r = renderer.render(cam, depth=True)
            keep = square_pixels(r.depth, r.alpha > settings.alpha_min, cam.K, settings.max_slant)
            depth = np.where(keep, r.depth, 0.0).astype(np.float32)
            # the render is premultiplied (over black): divide by alpha for the surface's colour
            rgb = np.where(keep[..., None], r.rgb / np.maximum(r.alpha, 1e-6)[..., None], 0.0)
            color = np.ascontiguousarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8))
            far = float(np.linalg.norm(corners - cam.center, axis=1).max())
            image = o3d.geometry.RGBDImage.create_from_color_and_depth(
                o3d.geometry.Image(color), o3d.geometry.Image(depth), depth_scale=1.0, depth_trunc=far,
                convert_rgb_to_intensity=False)
            K = cam.K  # open3d puts pixel centres at integers, recon at +0.5
            intrinsic = o3d.camera.PinholeCameraIntrinsic(cam.width, cam.height, K[0, 0], K[1, 1], K[0, 2] - 0.5,
                                                          K[1, 2] - 0.5)
            volume.integrate(image, intrinsic, cam.world_to_cam)
            if i < n_training:
                training.append((cam, np.clip(rgb, 0, 1), depth))
            step()
    return volume, training


def recolour(mesh, views: list[tuple[Camera, np.ndarray, np.ndarray]], tolerance: float) -> None:
    """Vertex colours from the training cameras' renders where those see the vertex (its depth
    within `tolerance` of the fused depth at its pixel), weighted by cos² of the viewing angle.
    The TSDF's colour averages every fused view, the orbits' too, and a sparse-view splat's
    colours are sharpest where it was trained; vertices no training camera sees keep it."""
    v = np.asarray(mesh.vertices)
    mesh.compute_vertex_normals()
    normals = np.asarray(mesh.vertex_normals)
    total, weight = np.zeros((len(v), 3)), np.zeros(len(v))
    for cam, rgb, depth in views:
        pc = v @ cam.world_to_cam[:3, :3].T + cam.world_to_cam[:3, 3]
        z = pc[:, 2]
        safe = np.where(z > 1e-9, z, 1.0)
        u = np.floor(cam.K[0, 0] * pc[:, 0] / safe + cam.K[0, 2]).astype(np.int64)
        w = np.floor(cam.K[1, 1] * pc[:, 1] / safe + cam.K[1, 2]).astype(np.int64)
        inside = (z > 1e-9) & (u >= 0) & (u < cam.width) & (w >= 0) & (w < cam.height)
        u, w = np.where(inside, u, 0), np.where(inside, w, 0)
        d = depth[w, u]
        seen = inside & (d > 0) & (np.abs(z - d) < tolerance)
        ray = v - cam.center
        cos = np.abs((normals * ray).sum(1)) / np.maximum(np.linalg.norm(ray, axis=1), 1e-12)
        k = np.where(seen, cos**2, 0.0)
        total += k[:, None] * rgb[w, u]
        weight += k
    colours = np.asarray(mesh.vertex_colors).copy() if mesh.has_vertex_colors() else np.full((len(v), 3), 0.5)
    seen = weight > 1e-6
    colours[seen] = total[seen] / weight[seen, None]
    mesh.vertex_colors = type(mesh.vertex_colors)(colours)


def square_pixels(depth: np.ndarray, keep: np.ndarray, K: np.ndarray, max_slant: float) -> np.ndarray:
    """[H,W] bool: pixels of `keep` whose four neighbours are kept too and whose surface (the normal
    of the depth map's points, by central differences) faces the ray within `max_slant` degrees."""
    h, w = depth.shape
    u, v = np.meshgrid((np.arange(w) + 0.5 - K[0, 2]) / K[0, 0], (np.arange(h) + 0.5 - K[1, 2]) / K[1, 1])
    rays = np.stack([u, v, np.ones_like(u)], axis=-1)
    pts = rays * depth[..., None]
    out = np.zeros_like(keep)
    inner = keep[1:-1, 1:-1] & keep[1:-1, 2:] & keep[1:-1, :-2] & keep[2:, 1:-1] & keep[:-2, 1:-1]
    n = np.cross(pts[1:-1, 2:] - pts[1:-1, :-2], pts[2:, 1:-1] - pts[:-2, 1:-1])
    r = rays[1:-1, 1:-1]
    cos = np.abs((n * r).sum(-1)) / np.maximum(np.linalg.norm(n, axis=-1) * np.linalg.norm(r, axis=-1), 1e-12)
    out[1:-1, 1:-1] = inner & (cos >= np.cos(np.radians(max_slant)))
    return out


def _poisson(o3d, volume, voxel: float, settings: MeshSettings):
    """Screened Poisson over the fused surface's points (normals from the TSDF's gradient), the
    octree as deep as the voxel grid is fine, trimmed back to the fused points."""
    from scipy.spatial import cKDTree

    points = volume.extract_point_cloud()
    if len(points.points) == 0:
        return o3d.geometry.TriangleMesh()
    if not points.has_normals():
        points.estimate_normals()
    depth = int(np.clip(np.ceil(np.log2(settings.resolution)), 6, 11))
    mesh, _ = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(points, depth=depth)
    gap, _ = cKDTree(np.asarray(points.points)).query(np.asarray(mesh.vertices))
    mesh.remove_vertices_by_mask(gap > settings.poisson_trim * voxel)
    return mesh


def clean_mesh(mesh, keep_fraction: float):
    """Merge duplicate vertices, drop degenerate triangles, and keep the connected pieces with at
    least `keep_fraction` × the largest piece's triangles."""
    mesh.remove_duplicated_vertices()
    mesh.remove_degenerate_triangles()
    mesh.remove_duplicated_triangles()
    if len(mesh.triangles):
        labels, counts, _ = mesh.cluster_connected_triangles()
        labels, counts = np.asarray(labels), np.asarray(counts)
        mesh.remove_triangles_by_mask(counts[labels] < keep_fraction * counts.max())
    mesh.remove_unreferenced_vertices()
    mesh.compute_vertex_normals()
    return mesh


def check_suffix(path: Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise ReconError(f"a mesh is written as {', '.join(MESH_SUFFIXES)}, not '{suffix}'", path)
    return suffix


def write_mesh(path: Path, mesh) -> None:
    """Write atomically as the suffix says: .ply (binary, vertex colours and normals), .obj (vertex
    colours as `v x y z r g b`, read by Blender, MeshLab and open3d) or .glb (our glTF writer)."""
    path = Path(path)
    suffix = check_suffix(path)
    vertices, triangles = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    colors = np.asarray(mesh.vertex_colors) if mesh.has_vertex_colors() else None
    if suffix == ".glb":
        from recon.io.glb import glb_bytes

        atomic_write_bytes(path, glb_bytes(vertices, triangles, colors, np.asarray(mesh.vertex_normals)))
        return
    o3d = import_open3d()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.stem}.{os.getpid()}.tmp{suffix}"  # open3d picks the format by suffix
    try:
        if not o3d.io.write_triangle_mesh(str(tmp), mesh, write_ascii=False, write_vertex_colors=True,
                                          write_vertex_normals=True, write_triangle_uvs=False):
            raise ReconError("open3d could not write the mesh", path)
        os.replace(tmp, path)
    except OSError as e:
        raise ReconError(f"cannot write ({e.strerror or e})", path) from None
    finally:
        if tmp.exists():
            tmp.unlink()
