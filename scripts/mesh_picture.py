"""A picture of a triangle mesh from a recon camera, for benchmarks and eyeballing: a small numba
z-buffer rasterizer (flat Lambert shading, or the vertex colours), no GPU or display needed.

    python scripts/mesh_picture.py MESH.ply RUN_DIR OUT.png [--view NAME]
"""

from __future__ import annotations

import numba
import numpy as np

from recon.scene import Camera


@numba.njit(cache=True)
def _raster(px, py, pz, tris, shade, colors, width, height):  # pragma: no cover - numba
    depth = np.full((height, width), np.inf)
    out = np.zeros((height, width, 3))
    for f in range(tris.shape[0]):
        a, b, c = tris[f, 0], tris[f, 1], tris[f, 2]
        if pz[a] <= 0 or pz[b] <= 0 or pz[c] <= 0:
            continue
        x0, y0, x1, y1, x2, y2 = px[a], py[a], px[b], py[b], px[c], py[c]
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if abs(area) < 1e-12:
            continue
        lo_x, hi_x = max(int(np.floor(min(x0, x1, x2))), 0), min(int(np.ceil(max(x0, x1, x2))), width - 1)
        lo_y, hi_y = max(int(np.floor(min(y0, y1, y2))), 0), min(int(np.ceil(max(y0, y1, y2))), height - 1)
        for y in range(lo_y, hi_y + 1):
            for x in range(lo_x, hi_x + 1):
                sx, sy = x + 0.5, y + 0.5
                w0 = ((x1 - sx) * (y2 - sy) - (x2 - sx) * (y1 - sy)) / area
                w1 = ((x2 - sx) * (y0 - sy) - (x0 - sx) * (y2 - sy)) / area
                w2 = 1.0 - w0 - w1
                if w0 < 0 or w1 < 0 or w2 < 0:
                    continue
                z = w0 * pz[a] + w1 * pz[b] + w2 * pz[c]
                if z < depth[y, x]:
                    depth[y, x] = z
                    for k in range(3):
                        out[y, x, k] = shade[f] * (w0 * colors[a, k] + w1 * colors[b, k] + w2 * colors[c, k])
    return out, depth


def render_mesh(vertices: np.ndarray, triangles: np.ndarray, cam: Camera, colors: np.ndarray | None = None,
                background: float = 1.0) -> np.ndarray:
    """[H,W,3] picture of the mesh from `cam`: the vertex colours when given, else grey with
    flat shading by the angle between each face and the viewing ray (a headlight)."""
    pc = vertices @ cam.world_to_cam[:3, :3].T + cam.world_to_cam[:3, 3]
    z = pc[:, 2]
    px = cam.K[0, 0] * pc[:, 0] / np.where(z > 0, z, 1) + cam.K[0, 2]
    py = cam.K[1, 1] * pc[:, 1] / np.where(z > 0, z, 1) + cam.K[1, 2]
    a, b, c = (pc[triangles[:, i]] for i in range(3))
    n = np.cross(b - a, c - a)
    centre = (a + b + c) / 3
    cos = np.abs((n * centre).sum(1)) / np.maximum(np.linalg.norm(n, axis=1) * np.linalg.norm(centre, axis=1), 1e-12)
    shade = np.ones(len(triangles)) if colors is not None else 0.25 + 0.75 * cos
    cols = colors if colors is not None else np.full((len(vertices), 3), 0.8)
    img, depth = _raster(px, py, z, triangles.astype(np.int64), shade, cols.astype(np.float64), cam.width,
                         cam.height)
    img[~np.isfinite(depth)] = background
    return img


def main() -> None:
    import argparse
    import json
    from pathlib import Path

    import imageio.v3 as iio
    import open3d as o3d

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mesh", type=Path)
    p.add_argument("run", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--view", default=None)
    a = p.parse_args()
    records = json.loads((a.run / "cameras.json").read_text())
    r = next((r for r in records if r["name"] == a.view), records[0])
    cam = Camera(np.array(r["K"]), np.array(r["world_to_cam"]), r["width"], r["height"])
    mesh = o3d.io.read_triangle_mesh(str(a.mesh))
    v, t = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    panels = [render_mesh(v, t, cam), render_mesh(v, t, cam, np.asarray(mesh.vertex_colors))]
    iio.imwrite(a.out, (np.concatenate(panels, axis=1) * 255 + 0.5).astype(np.uint8))


if __name__ == "__main__":
    main()
