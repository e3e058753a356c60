"""Camera paths for videos and mesh fusion: a smooth spline through the training cameras, and
orbits about the object the cameras look at. All cameras are OpenCV (world_to_cam, K)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon.errors import ReconError
from recon.scene import Camera, look_at_bounds


@dataclass
class SceneFrame:
    """Where the cameras look: the centre [3], the world's up [3] (unit), the cameras' mean
    distance from the centre and their mean elevation above the plane through it (radians)."""

    centre: np.ndarray
    up: np.ndarray
    distance: float
    elevation: float


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """OpenCV world-to-camera [4,4] at `eye` looking at `target`, the image's up along `up`."""
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:  # looking straight along up: any sideways axis will do
        x = np.cross(z, np.eye(3)[np.argmin(np.abs(z))])
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    w2c = np.eye(4)
    w2c[:3, :3] = np.stack([x, y, z])
    w2c[:3, 3] = -w2c[:3, :3] @ eye
    return w2c


def world_up(cameras: list[Camera]) -> np.ndarray:
    """[3] unit up of the world. Photographers keep the horizon level, so up is the direction most
    nearly at right angles to every camera's x axis, signed like the cameras' up (−y) axes. Where
    the x axes are all alike (a camera slid sideways, a single camera), that direction is not
    determined, and up is the cameras' mean up made square to their x axis."""
    xs = np.stack([c.world_to_cam[0, :3] for c in cameras])
    ups = -np.stack([c.world_to_cam[1, :3] for c in cameras])
    mean_up = ups.mean(axis=0)
    values, vectors = np.linalg.eigh(xs.T @ xs / len(cameras))  # ascending
    if values[1] > 1e-3 and values[1] > 20 * values[0]:
        up = vectors[:, 0]
    else:
        x = vectors[:, 2]
        up = mean_up - (mean_up @ x) * x
    up = up / np.linalg.norm(up)
    return up if up @ mean_up >= 0 else -up


def scene_frame(cameras: list[Camera]) -> SceneFrame:
    """The frame the orbits use: the point the cameras look at, the world's up (`world_up`), the
    cameras' mean distance from that point and their mean elevation above it."""
    if not cameras:
        raise ReconError("no cameras to frame the scene from")
    centre, _ = look_at_bounds(cameras)
    up = world_up(cameras)
    offsets = np.stack([c.center for c in cameras]) - centre
    dist = np.linalg.norm(offsets, axis=1)
    elevation = float(np.mean(np.arcsin(np.clip(offsets @ up / np.maximum(dist, 1e-12), -1, 1))))
    return SceneFrame(centre, up, float(dist.mean()), elevation)


def at_size(cam: Camera, width: int, height: int) -> Camera:
    """`cam` rendering a width × height image with square pixels: focal lengths scale with the
    width, the principal point keeps its offset from the image centre (a different aspect ratio
    crops or widens the view vertically rather than stretching it)."""
    s = width / cam.width
    K = cam.K.copy()
    K[0, 0], K[1, 1] = cam.K[0, 0] * s, cam.K[1, 1] * s
    K[0, 2] = width / 2 + (cam.K[0, 2] - cam.width / 2) * s
    K[1, 2] = height / 2 + (cam.K[1, 2] - cam.height / 2) * s
    return Camera(K, cam.world_to_cam.copy(), width, height)


def orbit_cameras(frame: SceneFrame, like: Camera, n: int, elevation: float | None = None,
                  start: np.ndarray | None = None) -> list[Camera]:
    """n cameras on a circle about frame.up through frame.centre, at the cameras' distance and
    `elevation` (radians; default theirs), each looking at the centre with `like`'s intrinsics.
    The first stands at the azimuth of `start` [3] (a point, e.g. the first camera's centre)."""
    up = frame.up
    ref = (start if start is not None else frame.centre + np.cross(up, np.eye(3)[np.argmin(np.abs(up))])) - frame.centre
    e1 = ref - (ref @ up) * up
    if np.linalg.norm(e1) < 1e-9:
        e1 = np.cross(up, np.eye(3)[np.argmin(np.abs(up))])
    e1 = e1 / np.linalg.norm(e1)
    e2 = np.cross(up, e1)
    phi = np.clip(frame.elevation if elevation is None else elevation, -np.radians(85), np.radians(85))
    cams = []
    for theta in 2 * np.pi * np.arange(n) / n:
        eye = frame.centre + frame.distance * (np.cos(phi) * (np.cos(theta) * e1 + np.sin(theta) * e2)
                                               + np.sin(phi) * up)
        cams.append(Camera(like.K.copy(), look_at(eye, frame.centre, up), like.width, like.height))
    return cams


def order_around(cameras: list[Camera], frame: SceneFrame) -> list[Camera]:
    """The cameras by azimuth about frame.up, starting after the widest gap between neighbours, so
    that an arc of cameras is walked end to end (and a ring once round) without doubling back."""
    up, ref = frame.up, cameras[0].center - frame.centre
    e1 = ref - (ref @ up) * up
    e1 = e1 / max(np.linalg.norm(e1), 1e-12)
    e2 = np.cross(up, e1)
    offsets = np.stack([c.center for c in cameras]) - frame.centre
    az = np.arctan2(offsets @ e2, offsets @ e1)
    order = np.argsort(az)
    gaps = np.diff(np.concatenate([az[order], az[order[:1]] + 2 * np.pi]))
    first = (int(np.argmax(gaps)) + 1) % len(order)
    return [cameras[i] for i in np.roll(order, -first)]


def camera_spline(cameras: list[Camera], n: int, frame: SceneFrame) -> list[Camera]:
    """n cameras along a C2 spline through `cameras` (in that order), all with the first camera's
    image size: centres by a natural cubic spline, rotations by scipy's RotationSpline, both over
    the chord length (distance moved plus turn × the scene's distance), intrinsics linearly.
    The first and last are the first and last cameras."""
    from scipy.interpolate import CubicSpline
    from scipy.spatial.transform import Rotation, RotationSpline

    w, h = cameras[0].width, cameras[0].height
    cams = [at_size(c, w, h) for c in cameras]
    rots = Rotation.from_matrix(np.stack([c.world_to_cam[:3, :3] for c in cams]))
    centres = np.stack([c.center for c in cams])
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1) + frame.distance * (rots[1:] * rots[:-1].inv()).magnitude()
    keep = np.concatenate([[True], steps > 1e-9])  # a repeated camera adds no knot
    if keep.sum() < 2:
        raise ReconError("--path cameras needs two distinct cameras; use --path orbit")
    t = np.concatenate([[0.0], np.cumsum(steps)])[keep]
    t = t / t[-1]
    pos = CubicSpline(t, centres[keep], bc_type="natural")
    rot = RotationSpline(t, rots[np.flatnonzero(keep)])
    Ks = np.stack([c.K for c in cams])[keep].reshape(-1, 9)
    out = []
    for s in np.linspace(0.0, 1.0, n):
        R = rot(s).as_matrix()
        w2c = np.eye(4)
        w2c[:3, :3] = R
        w2c[:3, 3] = -R @ pos(s)
        K = np.array([np.interp(s, t, Ks[:, j]) for j in range(9)]).reshape(3, 3)
        out.append(Camera(K, w2c, w, h))
    return out
