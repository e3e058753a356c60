"""Cameras for photos taken all around an object, from the object's silhouettes alone.

Photos 60–120° apart share too little for matches to pose them, but their silhouettes still
constrain the cameras: the visual hull carved from every silhouette, drawn back into each view,
fills that view's silhouette only when the cameras are right (silhouette coherence; Hernández,
Schmitt and Cipolla, PAMI 2007). The cameras are modelled as an orbit, the way people and
turntables take such photos (NeRS and SAMURAI start from the same coarse labels):

- the world's z axis is the orbit's axis, the object sits at the origin, every camera is at
  distance 1 (the gauge), on one elevation, at its own azimuth;
- every camera looks at one target point near the origin (a turntable's fixed camera, whose
  optical axis need not cross the turntable's axis, is this orbit seen from the object);
- one roll for every photo (a camera held sideways); the photos' own focal lengths (fitted to
  the silhouettes, the focal ran to 0.7× the squirrel's and cost its six views 3° → 12°).

The start is the capture order: the photos in file-name order at equal azimuth steps. A discrete
search then picks the direction of travel, the elevation and the roll (0° or 90°; 180° and 270°
are the same orbits seen with the axis flipped), and a Nelder–Mead search refines every
continuous unknown, with coarse, then finer sampling along the rays. The score (`coherence`) asks
of each silhouette's outline pixels whether their rays meet every other view's cone; it is
smooth enough for the search because the cones are soft (the masks fall off outside).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage, optimize

from recon.scene import Camera


@dataclass
class Orbit:
    """Orbit cameras (module docstring). Angles in radians."""

    azimuths: np.ndarray  # [N], the first is 0 (the gauge)
    elevation: float
    roll: float
    target: np.ndarray  # [3]


def look_at(centre: np.ndarray, target: np.ndarray, roll: float) -> np.ndarray:
    """world_to_cam [4,4] (OpenCV) of a camera at `centre` looking at `target`, the world's +z up
    in the image, then turned by `roll` about its optical axis."""
    z = target - centre
    z = z / np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x = x / max(np.linalg.norm(x), 1e-12)
    y = np.cross(z, x)
    c, s = np.cos(roll), np.sin(roll)
    R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.stack([x, y, z])
    w2c = np.eye(4)
    w2c[:3, :3], w2c[:3, 3] = R, -R @ centre
    return w2c


def orbit_cameras(orbit: Orbit, cameras: list[Camera]) -> list[Camera]:
    """The orbit's cameras, with the intrinsics of `cameras`."""
    out = []
    ce = np.cos(orbit.elevation)
    for a, cam in zip(orbit.azimuths, cameras):
        centre = np.array([np.cos(a) * ce, np.sin(a) * ce, np.sin(orbit.elevation)])
        out.append(Camera(cam.K.copy(), look_at(centre, orbit.target, orbit.roll), cam.width, cam.height))
    return out


@dataclass
class Silhouettes:
    """Masks shrunk for scoring, blurred so the score changes smoothly with the cameras."""

    soft: list[np.ndarray]  # [h,w] float32 in [0,1]
    hard: list[np.ndarray]  # [h,w] bool
    pixels: list[np.ndarray]  # [M,2] pixel centres (x, y) on each silhouette's outline, a fixed sample
    scale: float  # the shrunk size over the masks' size

    @staticmethod
    def from_masks(masks: list[np.ndarray], long_side: int = 128, blur_px: float = 1.0,
                   max_pixels: int = 400) -> "Silhouettes":
        h, w = masks[0].shape
        scale = long_side / max(h, w)
        zoom = (max(1, round(h * scale)) / h, max(1, round(w * scale)) / w)
        hard = [ndimage.zoom(m.astype(np.float32), zoom, order=1) >= 0.5 for m in masks]
        # 1 inside, falling off with the distance outside: right cameras score exactly 1 (a blur
        # that also dimmed the inside biased the fit towards wrong elevations).
        soft = [np.exp(-0.5 * (ndimage.distance_transform_edt(~m) / blur_px) ** 2).astype(np.float32) for m in hard]
        rng = np.random.default_rng(0)  # the same pixels for every candidate: a deterministic score
        pixels = []
        for m in hard:
            # The outline's pixels: an interior ray meets the hull under almost any cameras, the
            # outline's rays are the ones wrong cameras miss.
            v, u = np.nonzero(m & ~ndimage.binary_erosion(m, iterations=2))
            pick = rng.choice(len(u), min(max_pixels, len(u)), replace=False) if len(u) else np.zeros(0, int)
            pixels.append(np.stack([u[pick] + 0.5, v[pick] + 0.5], -1).astype(np.float64))
        return Silhouettes(soft, hard, pixels, scale)

    def cameras(self, cameras: list[Camera]) -> list[Camera]:
        h, w = self.hard[0].shape
        return [c.resized(w, h) for c in cameras]


def _sample(image: np.ndarray, pix: np.ndarray) -> np.ndarray:
    """Bilinear samples [P] of image [h,w] at pixels [P,2] (x, y; centres at +0.5), clamped to the
    edge: an object cut by the frame goes on beyond it as its edge pixels do."""
    h, w = image.shape
    x = np.clip(pix[:, 0] - 0.5, 0, w - 1)
    y = np.clip(pix[:, 1] - 0.5, 0, h - 1)
    x0, y0 = np.minimum(x.astype(np.int64), w - 2), np.minimum(y.astype(np.int64), h - 2)
    fx, fy = x - x0, y - y0
    top = image[y0, x0] * (1 - fx) + image[y0, x0 + 1] * fx
    bottom = image[y0 + 1, x0] * (1 - fx) + image[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def coherence(cameras: list[Camera], sil: Silhouettes, half: float, samples: int = 48) -> np.ndarray:
    """Per view [N]: the share of its silhouette's pixels whose ray meets the other views' cones
    together (their soft product, the best point along the ray). 1 for right cameras and exact
    masks, whatever the object's shape: the hull lies inside each cone, and the object inside
    the hull. Rays are sampled at `samples` depths through the cube [-half, half]³ (the cameras
    sit at distance about 1 from its centre); a point behind a camera is outside its cone."""
    scores = np.zeros(len(cameras))
    reach = np.sqrt(3.0) * half
    depths = np.linspace(max(0.05, 1.0 - reach), 1.0 + reach, samples)
    for i, cam in enumerate(cameras):
        pix = sil.pixels[i]
        if len(pix) == 0:
            continue
        rays = np.stack([(pix[:, 0] - cam.K[0, 2]) / cam.K[0, 0], (pix[:, 1] - cam.K[1, 2]) / cam.K[1, 1],
                         np.ones(len(pix))], -1)
        # Points at camera depth z along each ray, in world coordinates: C + R^T (ray · z).
        R = cam.world_to_cam[:3, :3]
        pts = cam.center + (rays[:, None, :] * depths[None, :, None]) @ R
        pts = pts.reshape(-1, 3)
        occ = np.ones(len(pts))
        for j, (other, soft) in enumerate(zip(cameras, sil.soft)):
            if j == i:
                continue
            p, z = other.project(pts)
            front = z > 1e-6
            occ *= np.where(front, _sample(soft, np.where(front[:, None], p, 0.0)), 0.0)
        scores[i] = occ.reshape(len(pix), samples).max(1).mean()
    return scores


def object_half_size(cameras: list[Camera], sil: Silhouettes, margin: float = 1.3) -> float:
    """Half the edge of a cube at the origin that holds the object, for cameras at distance 1:
    the widest angle from a view's centre to its silhouette, times a margin (at most 0.7, so no
    camera is inside)."""
    widest = 0.0
    for cam, hard in zip(sil.cameras(cameras), sil.hard):
        v, u = np.nonzero(hard)
        if len(u) == 0:
            continue
        dx = (u + 0.5 - cam.K[0, 2]) / cam.K[0, 0]
        dy = (v + 0.5 - cam.K[1, 2]) / cam.K[1, 1]
        widest = max(widest, float(np.sqrt(dx ** 2 + dy ** 2).max()))
    return float(min(0.7, max(0.1, margin * np.sin(np.arctan(widest)))))


@dataclass
class OrbitFit:
    orbit: Orbit
    cameras: list[Camera]  # at the photos' size
    scores: np.ndarray  # [N] coherence per view, at the finest sampling
    evaluations: int


def _unpack(x: np.ndarray, base: Orbit, n: int) -> Orbit:
    """Parameter vector → Orbit: elevation, roll, target (3), then the N-1 steps."""
    az = np.concatenate([[0.0], np.cumsum(x[5:5 + n - 1])])
    return replace(base, elevation=float(x[0]), roll=float(x[1]), target=np.asarray(x[2:5], float), azimuths=az)


def _pack(o: Orbit) -> np.ndarray:
    return np.concatenate([[o.elevation, o.roll], o.target, np.diff(o.azimuths)])


def fit_orbit(cameras: list[Camera], masks: list[np.ndarray], *, log=lambda msg: None,
              max_evals: int = 600) -> OrbitFit:
    """Orbit cameras for photos in capture order around an object (masks [H,W] bool per photo)."""
    n = len(cameras)
    sil = Silhouettes.from_masks(masks)
    small = sil.cameras(cameras)
    half = object_half_size(cameras, sil)
    evals = 0

    def score(o: Orbit, samples: int) -> float:
        nonlocal evals
        evals += 1
        return float(coherence(orbit_cameras(o, small), sil, half, samples).mean())

    # Discrete start: direction of travel x roll 0/90° x elevation, coarsely sampled.
    step = 2 * np.pi / n
    starts = []
    for direction in (1.0, -1.0):
        for roll in (0.0, np.pi / 2):
            for elev in np.radians([-40, -20, 0, 20, 40]):
                o = Orbit(direction * step * np.arange(n), float(elev), roll, np.zeros(3))
                starts.append((score(o, 24), o))
    starts.sort(key=lambda t: -t[0])
    best_s, best = starts[0]
    log(f"orbit start: elevation {np.degrees(best.elevation):.0f}°, roll {np.degrees(best.roll):.0f}°, "
        f"{'reversed ' if best.azimuths[-1] < 0 else ''}order (coherence {best_s:.3f})")

    lo = np.concatenate([[-np.pi / 2 + 0.05, -np.pi], [-half] * 3, [-np.pi] * (n - 1)])
    hi = np.concatenate([[np.pi / 2 - 0.05, np.pi], [half] * 3, [np.pi] * (n - 1)])
    # Candidates within a few per cent of the best are refined too: coarse sampling cannot tell them apart.
    candidates = [o for s, o in starts[:4] if s >= best_s - 0.03]
    for samples, budget in ((32, max_evals // 2), (64, max_evals // 2)):
        refined = []
        for o in candidates:
            x0 = _pack(o)
            simplex = [x0] + [x0 + np.eye(len(x0))[k] * d for k, d in enumerate(_steps(n, half, samples))]
            r = optimize.minimize(lambda x: -score(_unpack(np.clip(x, lo, hi), o, n), samples), x0,
                                  method="Nelder-Mead",
                                  options=dict(maxfev=budget // max(len(candidates), 1), initial_simplex=simplex,
                                               xatol=1e-4, fatol=1e-5, adaptive=True))
            refined.append((-r.fun, _unpack(np.clip(r.x, lo, hi), o, n)))
        candidates = [_most_level(refined)]
    final = candidates[0]
    scores = coherence(orbit_cameras(final, small), sil, half, 96)
    log(f"orbit fit: elevation {np.degrees(final.elevation):.1f}°, roll {np.degrees(final.roll):.1f}°, "
        f"steps {', '.join(f'{np.degrees(s):.0f}' for s in np.diff(final.azimuths))}°, "
        f"coherence {scores.mean():.3f} (worst {scores.min():.3f}), {evals} evaluations")
    return OrbitFit(final, orbit_cameras(final, cameras), scores, evals)


TIE = 0.01
"""Coherences this close cannot tell orbits apart: four views 90° apart barely constrain the
elevation (the squirrel's four scored within 0.02 from 0° to 40°)."""


def _most_level(scored: list[tuple[float, Orbit]]) -> Orbit:
    """Of the orbits that tie with the best (within TIE), the one whose cameras are most level:
    people and turntables photograph an object from near its height far more often than from above."""
    best = max(s for s, _ in scored)
    return min((o for s, o in scored if s >= best - TIE), key=lambda o: abs(o.elevation))


def _steps(n: int, half: float, samples: int) -> list[float]:
    """Nelder–Mead's first steps per parameter: a few depth samples' worth of each."""
    ang = max(np.radians(3.0), 4 * 2 * half / samples)
    return [ang, ang, half / 8, half / 8, half / 8] + [ang] * (n - 1)
