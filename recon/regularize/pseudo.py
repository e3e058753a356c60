"""Pseudo views: cameras between the training cameras, where no photo constrains the splat.

Few-view methods regularise what the splat looks like from such viewpoints (RegNeRF: depth
smoothness; CoR-GS: agreement of two models; FSGS: a depth prior). A pseudo camera blends two
training cameras: its centre on the segment between theirs, its rotation on the arc between theirs
(quaternion slerp), intrinsics from the first, plus a small random offset of the centre.
"""

from __future__ import annotations

import numpy as np

from recon.scene import Camera


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


def orbit_camera(cam: Camera, pivot: np.ndarray, axis: np.ndarray, degrees: float) -> Camera:
    """`cam` turned by `degrees` about the line through `pivot` [3] along `axis` [3]: it keeps
    looking at the same point of the object from another side."""
    axis = axis / np.linalg.norm(axis)
    t = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    R = np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k  # Rodrigues
    c2w = cam.cam_to_world.copy()
    c2w[:3, :3] = R @ c2w[:3, :3]
    c2w[:3, 3] = pivot + R @ (c2w[:3, 3] - pivot)
    return Camera(cam.K.copy(), np.linalg.inv(c2w), cam.width, cam.height)


def sample_pseudo_camera(cameras: list[Camera], rng: np.random.Generator, jitter: float = 0.05,
                         scale: float = 1.0, orbit_deg: float = 0.0, pivot: np.ndarray | None = None) -> Camera:
    """A random pseudo camera between two random training cameras (any camera with itself when
    there is one), its centre jittered by `jitter` × their distance, its image `scale`× the size.
    With orbit_deg > 0 it is then turned about `pivot` (the object's centre) by up to that many
    degrees about a random axis, to see the object from sides no photo shows."""
    i, j = rng.choice(len(cameras), 2, replace=len(cameras) < 2)
    a, b = cameras[i], cameras[j]
    dist = max(float(np.linalg.norm(a.center - b.center)), 1e-6)
    cam = interpolate_camera(a, b, float(rng.uniform(0.2, 0.8)), rng.normal(size=3) * jitter * dist)
    if orbit_deg > 0 and pivot is not None:
        cam = orbit_camera(cam, np.asarray(pivot, float), rng.normal(size=3), float(rng.uniform(-orbit_deg, orbit_deg)))
    if scale != 1.0:
        cam = cam.resized(max(int(round(cam.width * scale)), 8), max(int(round(cam.height * scale)), 8))
    return cam
