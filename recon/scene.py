"""The data model every stage shares. ONE convention: OpenCV.

- world_to_cam is a 4x4 matrix mapping world points to camera coordinates with
  x right, y down, z forward (the camera looks along +z).
- K is the 3x3 pinhole intrinsic matrix in pixels; pixel centres are at +0.5
  (the pixel (0, 0) covers [0, 1) x [0, 1)), as in COLMAP and gsplat.
- Images are float32 RGB in [0, 1], shape [H, W, 3]; masks are bool [H, W].
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass
class Camera:
    """A pinhole camera: intrinsics K [3,3], extrinsics world_to_cam [4,4], image size."""

    K: np.ndarray
    world_to_cam: np.ndarray
    width: int
    height: int

    def __post_init__(self) -> None:
        self.K = np.asarray(self.K, dtype=np.float64).reshape(3, 3)
        self.world_to_cam = np.asarray(self.world_to_cam, dtype=np.float64).reshape(4, 4)
        self.width, self.height = int(self.width), int(self.height)

    @property
    def cam_to_world(self) -> np.ndarray:
        """[4,4] camera-to-world (OpenCV axes)."""
        return np.linalg.inv(self.world_to_cam)

    @property
    def center(self) -> np.ndarray:
        """[3] camera centre in world coordinates."""
        R, t = self.world_to_cam[:3, :3], self.world_to_cam[:3, 3]
        return -R.T @ t

    @property
    def forward(self) -> np.ndarray:
        """[3] unit viewing direction (+z of the camera) in world coordinates."""
        return self.world_to_cam[2, :3] / np.linalg.norm(self.world_to_cam[2, :3])

    def resized(self, width: int, height: int) -> "Camera":
        """The same camera for an image resized to width x height (pixel-centre-correct scaling)."""
        sx, sy = width / self.width, height / self.height
        K = self.K.copy()
        K[0, :] *= sx
        K[1, :] *= sy
        return Camera(K=K, world_to_cam=self.world_to_cam.copy(), width=width, height=height)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project world points [P,3] → (pixels [P,2], depths [P])."""
        cam = points @ self.world_to_cam[:3, :3].T + self.world_to_cam[:3, 3]
        z = cam[:, 2]
        uv = cam @ self.K.T
        with np.errstate(divide="ignore", invalid="ignore"):
            pix = uv[:, :2] / uv[:, 2:3]
        return pix, z


@dataclass
class View:
    """One photo with its camera. `index` is the dataset's own image index (used in file names)."""

    name: str
    index: int
    camera: Camera
    image: np.ndarray  # [H,W,3] float32 in [0,1]
    mask: np.ndarray | None = None  # [H,W] bool, True on the object

    def __post_init__(self) -> None:
        h, w = self.image.shape[:2]
        if (w, h) != (self.camera.width, self.camera.height):
            raise ValueError(
                f"view {self.name}: image is {w}x{h} but its camera says "
                f"{self.camera.width}x{self.camera.height}"
            )
        if self.mask is not None and self.mask.shape != (h, w):
            raise ValueError(f"view {self.name}: mask shape {self.mask.shape} != image {(h, w)}")


@dataclass
class Scene:
    """Views plus what is known about the geometry: optional sparse points and the scene bounds."""

    views: list[View]
    points: np.ndarray | None = None  # [P,3] float, e.g. SfM points
    point_colors: np.ndarray | None = None  # [P,3] float in [0,1]
    source: str = ""  # the folder or format this came from, for messages
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.views)

    @property
    def cameras(self) -> list[Camera]:
        return [v.camera for v in self.views]

    @property
    def has_masks(self) -> bool:
        return all(v.mask is not None for v in self.views)

    def subset(self, indices: list[int]) -> "Scene":
        """The scene restricted to the views whose dataset `index` is in `indices`, in that order."""
        by_index = {v.index: v for v in self.views}
        missing = [i for i in indices if i not in by_index]
        if missing:
            raise KeyError(f"views {missing} not in scene {self.source}")
        return replace(self, views=[by_index[i] for i in indices])

    def bounds(self) -> tuple[np.ndarray, float]:
        """(centre [3], radius) of the region the cameras look at.

        With points: their robust (5–95 percentile) box. Otherwise the point closest to all
        camera optical axes (least squares), with a radius that keeps it inside every view.
        """
        if self.points is not None and len(self.points) >= 8:
            lo, hi = np.percentile(self.points, [5, 95], axis=0)
            return (lo + hi) / 2, float(np.linalg.norm(hi - lo) / 2)
        return look_at_bounds(self.cameras)


def look_at_bounds(cameras: list[Camera]) -> tuple[np.ndarray, float]:
    """Centre = least-squares point nearest all optical axes; radius = half the mean camera
    distance to it (a loose guess for an object the cameras orbit or face)."""
    centers = np.stack([c.center for c in cameras])
    dirs = np.stack([c.forward for c in cameras])
    A = np.zeros((3, 3))
    b = np.zeros(3)
    for o, d in zip(centers, dirs):
        P = np.eye(3) - np.outer(d, d)
        A += P
        b += P @ o
    if len(cameras) >= 2 and np.linalg.cond(A) < 1e6:
        centre = np.linalg.solve(A, b)
        # An axis-intersection behind the cameras (forward-facing captures) is useless.
        if np.mean([(centre - o) @ d for o, d in zip(centers, dirs)]) <= 0:
            centre = centers.mean(0) + dirs.mean(0)
    else:
        centre = centers.mean(0) + dirs.mean(0)
    dist = float(np.mean(np.linalg.norm(centers - centre, axis=1)))
    return centre, max(dist * 0.5, 1e-3)
