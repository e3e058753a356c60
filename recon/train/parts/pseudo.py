"""Pseudo views: cameras between the training cameras, where no photo constrains the splat.

Few-view methods regularise what the splat looks like from such viewpoints (RegNeRF: depth
smoothness; CoR-GS: agreement of two models; FSGS: a depth prior). A pseudo camera blends two
training cameras: its centre on the segment between theirs, its rotation on the arc between theirs
(quaternion slerp), intrinsics from the first, plus a small random offset of the centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from recon import losses
from recon.scene import Camera
from recon.train.part import Part, TrainerView


def _rot_to_quat(R: np.ndarray) -> np.ndarray:
    """wxyz unit quaternion of a rotation matrix [3,3]."""
    w = np.sqrt(max(0.0, 1 + R[0, 0] + R[1, 1] + R[2, 2])) / 2
    x = np.sqrt(max(0.0, 1 + R[0, 0] - R[1, 1] - R[2, 2])) / 2
    y = np.sqrt(max(0.0, 1 - R[0, 0] + R[1, 1] - R[2, 2])) / 2
    z = np.sqrt(max(0.0, 1 - R[0, 0] - R[1, 1] + R[2, 2])) / 2
    x = np.copysign(x, R[2, 1] - R[1, 2])
    y = np.copysign(y, R[0, 2] - R[2, 0])
    z = np.copysign(z, R[1, 0] - R[0, 1])
    q = np.array([w, x, y, z])
    return q / np.linalg.norm(q)


def _quat_to_rot(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation of unit quaternions (the short way round)."""
    d = float(np.dot(q0, q1))
    if d < 0:
        q1, d = -q1, -d
    if d > 0.9995:
        q = q0 + t * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = np.arccos(d)
    return (np.sin((1 - t) * theta) * q0 + np.sin(t * theta) * q1) / np.sin(theta)


def interpolate_camera(a: Camera, b: Camera, t: float, offset: np.ndarray | None = None) -> Camera:
    """The camera a fraction t of the way from a to b (t=0 is a), its centre moved by `offset` [3]."""
    Ra, Rb = a.world_to_cam[:3, :3], b.world_to_cam[:3, :3]
    R = _quat_to_rot(slerp(_rot_to_quat(Ra), _rot_to_quat(Rb), t))
    c = (1 - t) * a.center + t * b.center
    if offset is not None:
        c = c + offset
    w2c = np.eye(4)
    w2c[:3, :3] = R
    w2c[:3, 3] = -R @ c
    return Camera(a.K.copy(), w2c, a.width, a.height)


def sample_pseudo_camera(cameras: list[Camera], rng: np.random.Generator, jitter: float = 0.05,
                         scale: float = 1.0) -> Camera:
    """A random pseudo camera between two random training cameras (any camera with itself when
    there is one), its centre jittered by `jitter` × their distance, its image `scale`× the size."""
    i, j = rng.choice(len(cameras), 2, replace=len(cameras) < 2)
    a, b = cameras[i], cameras[j]
    dist = max(float(np.linalg.norm(a.center - b.center)), 1e-6)
    cam = interpolate_camera(a, b, float(rng.uniform(0.2, 0.8)), rng.normal(size=3) * jitter * dist)
    if scale != 1.0:
        cam = cam.resized(max(int(round(cam.width * scale)), 8), max(int(round(cam.height * scale)), 8))
    return cam


@dataclass
class PseudoConfig:
    every: int = 0
    """Render a pseudo view between two training cameras every this many steps (0 = never)."""
    start: int = 0
    """First step with pseudo views."""
    scale: float = 0.5
    """Pseudo views are rendered at this fraction of the training resolution (cheap on CPU)."""
    jitter: float = 0.05
    """Random offset of the pseudo camera's centre, as a fraction of the two cameras' distance."""
    depth_smooth: float = 0.0
    """Weight of edge-aware depth smoothness in the pseudo view (RegNeRF's unobserved-view prior)."""
    hull_alpha: float = 0.0
    """With masks: weight of the L1 between the pseudo view's alpha and the visual hull's
    silhouette there. The object is solid wherever the hull is, so holes between Gaussians that
    the training views do not show get filled, and haze outside the hull goes."""
    hull_resolution: int = 96
    """Voxels along the longest side of that hull."""

    @property
    def enabled(self) -> bool:
        return self.every > 0 and (self.depth_smooth > 0 or self.hull_alpha > 0)


class PseudoViews(Part):
    """Every `every` steps, one pseudo view: edge-aware depth smoothness of its render and, with
    masks, its alpha against the visual hull's silhouette (which fills holes no photo shows)."""

    name = "pseudo views"

    def __init__(self, cfg: PseudoConfig) -> None:
        self.cfg = cfg
        self.hull = None

    def setup(self, trainer: TrainerView) -> None:
        if self.cfg.hull_alpha > 0 and trainer.scene.has_masks:
            from recon.init.visual_hull import visual_hull

            grid = visual_hull(trainer.scene, self.cfg.hull_resolution)
            self.hull = (grid, grid.centres(grid.surface()))

    def extra_loss(self, trainer: TrainerView) -> Tensor | None:
        p = self.cfg
        if trainer.step < p.start or trainer.step % p.every != 0:
            return None
        cam = sample_pseudo_camera(trainer.scene.cameras, trainer.rng, p.jitter, p.scale)
        out, alpha, _ = trainer.render_camera(cam, "RGB+D" if p.depth_smooth > 0 else "RGB")
        total = out.new_zeros(())
        if p.depth_smooth > 0:
            rgb, depth = out[..., :3], out[..., 3:4] / alpha.clamp_min(1e-6)
            total = total + p.depth_smooth * losses.depth_smoothness(depth, rgb.detach(), alpha)
        if self.hull is not None:
            from recon.init.visual_hull import hull_silhouette

            grid, surface = self.hull
            silhouette = torch.from_numpy(hull_silhouette(grid, cam, surface)).float().to(trainer.dev)
            total = total + p.hull_alpha * (alpha - silhouette[None, ..., None]).abs().mean()
        return total
