"""Gaussians → the arrays viser's splat node takes, and where to put the camera to see them.

viser stores each Gaussian as a float32 centre, six float16 covariance terms and RGBA8. We convert
from recon's pre-activation parameters with numpy only (no autograd, no copies of the SH bands),
because this runs every few hundred milliseconds next to the optimiser.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon.gaussians import SH_C0, Gaussians
from recon.scene import Camera

# float16 tops out at 65504: a huge floater's covariance would become inf and then NaN in the
# browser's sort/bounding sphere, so clip (a Gaussian that large covers the screen either way).
_F16_MAX = 6.0e4


@dataclass
class SplatArrays:
    """What `GaussianSplatHandle.set_gaussians` takes: centers [N,3], covariances [N,3,3],
    rgbs [N,3] in [0,1], opacities [N,1] in [0,1] (all float32)."""

    centers: np.ndarray
    covariances: np.ndarray
    rgbs: np.ndarray
    opacities: np.ndarray

    def __len__(self) -> int:
        return int(self.centers.shape[0])


def _rotation_entries(quats: np.ndarray) -> list[list[np.ndarray]]:
    """[N,4] wxyz (any norm) → R as a 3x3 nested list of [N] arrays. A zero quaternion → identity.

    Structure-of-arrays on purpose: numpy's batched 3x3 matmul is ~10x slower than nine
    elementwise products over N, and this runs on every live update.
    """
    q = np.asarray(quats, dtype=np.float32)
    norm = np.sqrt((q * q).sum(1))
    zero = norm == 0
    w, x, y, z = (q[:, i] / np.where(zero, 1.0, norm) for i in range(4))
    w = np.where(zero, 1.0, w)
    return [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]


def covariances(quats: np.ndarray, log_scales: np.ndarray) -> np.ndarray:
    """Σ = R diag(s²) Rᵀ with s = exp(log_scales): [N,4] wxyz, [N,3] → [N,3,3] float32."""
    R = _rotation_entries(quats)
    s2 = np.exp(2 * np.clip(np.asarray(log_scales, dtype=np.float32), -30.0, 30.0))
    out = np.empty((s2.shape[0], 3, 3), dtype=np.float32)
    for i in range(3):
        for j in range(i, 3):
            v = R[i][0] * R[j][0] * s2[:, 0] + R[i][1] * R[j][1] * s2[:, 1] + R[i][2] * R[j][2] * s2[:, 2]
            np.clip(v, -_F16_MAX, _F16_MAX, out=v)
            out[:, i, j] = v
            out[:, j, i] = v
    return out


def _numpy(t: object) -> np.ndarray:
    """A torch tensor or array → float32 numpy, without autograd."""
    if hasattr(t, "detach"):
        t = t.detach().cpu().numpy()  # type: ignore[union-attr]
    return np.asarray(t, dtype=np.float32)


def finite_mask(g: Gaussians) -> np.ndarray:
    """[N] bool: Gaussians whose position, scale and opacity are all finite."""
    ok = np.isfinite(_numpy(g.means)).all(1)
    ok &= np.isfinite(_numpy(g.scales)).all(1)
    ok &= np.isfinite(_numpy(g.opacities))
    return ok


def to_splat_arrays(g: Gaussians) -> SplatArrays:
    """recon Gaussians (pre-activation) → viser arrays. Colour is the view-independent SH band
    (viser has no SH); non-finite Gaussians are dropped so the browser never sees a NaN."""
    keep = finite_mask(g)
    everything = bool(keep.all())  # the usual case: skip five fancy-indexing copies

    def take(t: object) -> np.ndarray:
        a = _numpy(t)
        return a if everything else a[keep]

    sh0 = take(g.sh0)[:, 0, :]
    rgbs = np.nan_to_num(np.clip(sh0 * SH_C0 + 0.5, 0.0, 1.0), nan=0.5)
    opacity_logit = np.clip(take(g.opacities), -30.0, 30.0)
    opacities = (1.0 / (1.0 + np.exp(-opacity_logit)))[:, None]
    return SplatArrays(
        centers=np.ascontiguousarray(take(g.means), dtype=np.float32),
        covariances=covariances(np.nan_to_num(take(g.quats)), take(g.scales)),
        rgbs=rgbs.astype(np.float32),
        opacities=opacities.astype(np.float32),
    )


def robust_bounds(
    centers: np.ndarray,
    opacities: np.ndarray | None = None,
    *,
    lo_pct: float = 5.0,
    hi_pct: float = 95.0,
) -> tuple[np.ndarray, float]:
    """(centre [3], radius) of where the bulk of the splat is.

    Floaters and far background Gaussians are common in splats (and in random init), so the
    centre is the per-axis median and the radius half the diagonal of the 5–95 percentile box,
    counting only Gaussians that are visible (opacity ≥ 0.1) when at least 8 of them are.
    """
    pts = np.asarray(centers, dtype=np.float64).reshape(-1, 3)
    ok = np.isfinite(pts).all(1)
    if opacities is not None:
        op = np.asarray(opacities, dtype=np.float64).reshape(-1)
        visible = ok & (op >= 0.1)
        if visible.sum() >= 8:
            ok = visible
    pts = pts[ok]
    if len(pts) == 0:
        return np.zeros(3), 1.0
    centre = np.median(pts, axis=0)
    lo, hi = np.percentile(pts, [lo_pct, hi_pct], axis=0)
    radius = float(np.linalg.norm(hi - lo) / 2)
    if not np.isfinite(radius) or radius <= 0:
        # One point or all coincident: any positive radius keeps the camera math defined.
        radius = max(float(np.abs(centre).max()) * 0.1, 1e-3)
    return centre, radius


@dataclass
class Framing:
    """An initial camera: where it is, what it looks at, which way is up, vertical fov (rad)."""

    position: np.ndarray
    look_at: np.ndarray
    up: np.ndarray
    fov: float


def frame_bounds(
    centre: np.ndarray,
    radius: float,
    *,
    up: np.ndarray | None = None,
    forward: np.ndarray | None = None,
    fov: float = np.deg2rad(50.0),
    margin: float = 1.8,
) -> Framing:
    """A camera that sees the sphere (centre, radius) whole.

    `forward` is the viewing direction (default: +z, where OpenCV cameras look, tilted a little
    towards the ground so the view is not edge-on); `up` defaults to -y, OpenCV's up.
    """
    up_v = np.asarray(up if up is not None else (0.0, -1.0, 0.0), dtype=np.float64)
    up_v = up_v / max(np.linalg.norm(up_v), 1e-12)
    if forward is None:
        forward = np.array([0.0, 0.0, 1.0]) - 0.35 * up_v
    fwd = np.asarray(forward, dtype=np.float64)
    fwd = fwd / max(np.linalg.norm(fwd), 1e-12)
    if abs(fwd @ up_v) > 0.99:  # looking straight along up: the orbit controls would spin
        fwd = fwd + 0.3 * np.cross(up_v, [1.0, 0.0, 0.0] if abs(up_v[0]) < 0.9 else [0.0, 1.0, 0.0])
        fwd /= np.linalg.norm(fwd)
    distance = margin * radius / np.sin(fov / 2)
    c = np.asarray(centre, dtype=np.float64)
    return Framing(position=c - fwd * distance, look_at=c, up=up_v, fov=float(fov))


def up_from_cameras(world_to_cams: list[np.ndarray]) -> np.ndarray | None:
    """The scene's up: the mean of the cameras' −y axes in world coordinates (OpenCV y is down)."""
    if not world_to_cams:
        return None
    ups = np.stack([-np.asarray(w, dtype=np.float64)[1, :3] for w in world_to_cams])
    mean = ups.mean(0)
    n = np.linalg.norm(mean)
    return mean / n if n > 1e-6 else None


def camera_framing(cameras: list[Camera], target: np.ndarray, *, back: float = 1.4,
                   lift_deg: float = 20.0) -> Framing:
    """Start behind and above the first training camera, looking at `target` with its vertical fov.

    Not at the camera itself: its frustum's photo would fill the view and hide the splat. From
    `back` times its distance and `lift_deg` higher, the camera and its photo sit below the object.
    The look-at point is on the camera's axis at the target's depth, so orbiting turns around
    the scene.
    """
    cam = cameras[0]
    depth = max(float((np.asarray(target) - cam.center) @ cam.forward), 1e-3)
    look_at = cam.center + cam.forward * depth
    up = up_from_cameras([c.world_to_cam for c in cameras])
    if up is None:
        up = -cam.world_to_cam[1, :3]
    offset = cam.center - look_at  # from the look-at point back to the camera
    side = np.cross(offset, up)
    if np.linalg.norm(side) > 1e-9:
        # Rodrigues about side = offset × up: a positive angle turns the offset towards up,
        # since side × offset = up·|offset|² − offset·(offset·up).
        side /= np.linalg.norm(side)
        a = np.deg2rad(lift_deg)
        offset = offset * np.cos(a) + np.cross(side, offset) * np.sin(a)  # side ⟂ offset
    fov = float(2 * np.arctan(cam.height / 2 / cam.K[1, 1]))
    return Framing(position=look_at + back * offset, look_at=look_at, up=up, fov=fov)
