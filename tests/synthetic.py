"""Small synthetic scenes the tests make themselves: a ground-truth splat rendered from known cameras."""

from __future__ import annotations

import numpy as np
import torch

from recon.gaussians import Gaussians
from recon.scene import Camera, Scene, View


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """OpenCV world-to-camera [4,4] for a camera at `eye` looking at `target` (y down in the image)."""
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(z, np.asarray(up, dtype=float))
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    w2c = np.eye(4)
    w2c[:3, :3] = R
    w2c[:3, 3] = -R @ eye
    return w2c


def ring_cameras(n: int, width: int = 48, height: int = 36, radius: float = 4.0, elevation: float = 1.0,
                 fov_deg: float = 50.0) -> list[Camera]:
    f = 0.5 * width / np.tan(np.radians(fov_deg) / 2)
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]])
    cams = []
    for a in np.linspace(0, 2 * np.pi, n, endpoint=False):
        eye = np.array([radius * np.cos(a), radius * np.sin(a), elevation])
        cams.append(Camera(K, look_at(eye, np.zeros(3)), width, height))
    return cams


def colored_blob(n: int = 400, seed: int = 0) -> Gaussians:
    """A ball of opaque Gaussians of radius ~1 with position-dependent colours."""
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(n, 3))
    pts = pts / np.linalg.norm(pts, axis=1, keepdims=True) * rng.uniform(0.3, 1.0, (n, 1))
    colors = np.clip(0.5 + 0.5 * pts, 0, 1)
    return Gaussians.from_points(pts.astype(np.float32), colors.astype(np.float32), sh_degree=0,
                                 opacity=0.9, scale=0.15)


def render_scene(g: Gaussians, cameras: list[Camera], with_masks: bool = True) -> Scene:
    from recon.render import rasterize

    means, quats, scales, opac = g.activated()
    views = []
    for i, cam in enumerate(cameras):
        with torch.no_grad():
            img, alpha, _ = rasterize(means, quats, scales, opac, g.colors_sh,
                                      torch.tensor(cam.world_to_cam, dtype=torch.float32)[None],
                                      torch.tensor(cam.K, dtype=torch.float32)[None],
                                      cam.width, cam.height, sh_degree=g.sh_degree, backend="cpu")
        mask = alpha[0, ..., 0].numpy() > 0.5 if with_masks else None
        views.append(View(f"view{i:03d}", i, cam, img[0].clamp(0, 1).numpy().astype(np.float32), mask))
    return Scene(views, source="synthetic", meta={"posed": True})


def synthetic_scene(n_views: int = 4, width: int = 48, height: int = 36) -> Scene:
    return render_scene(colored_blob(), ring_cameras(n_views, width, height))


def random_init(n: int, seed: int = 0) -> Gaussians:
    """A start for a short optimisation: n grey Gaussians scattered around the blob."""
    rng = np.random.default_rng(seed)
    return Gaussians.from_points(rng.normal(size=(n, 3)).astype(np.float32) * 0.6, None, sh_degree=0,
                                 opacity=0.5, scale=0.2)
