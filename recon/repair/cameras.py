"""Pseudo cameras for the repair rounds: around and between the training cameras, nearest first.

Each pseudo camera is a training camera orbited about the point it looks at (its optical axis at
the scene centre's depth), so the object stays where that camera framed it: toward a neighbouring
training camera (between them), out of the plane the two span (above and below) or away from the
neighbour (beyond the training views). Round r of R moves `spread`·(r+1)/R of the angle to the
nearest neighbour: the first rounds stay close to the photos, where a repair is most reliable,
and later rounds go farther. Deterministic, so a rerun repairs the same views.
"""

from __future__ import annotations

import numpy as np

from recon.scene import Camera

# With a single training camera there is no neighbour: orbit by this angle instead.
LONE_CAMERA_DEG = 10.0


def rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """[3,3] rotation by `angle` radians about the unit `axis` (Rodrigues)."""
    x, y, z = axis / np.linalg.norm(axis)
    K = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


def orbit(cam: Camera, pivot: np.ndarray, axis: np.ndarray, angle: float, scale: float = 1.0) -> Camera:
    """`cam` moved rigidly by a rotation of `angle` about the line through `pivot` [3] along `axis`
    [3]: what it saw at X it now sees at pivot + Rot (X - pivot). Image `scale`× the size."""
    rot = rotation(axis, angle)
    R, c = cam.world_to_cam[:3, :3], cam.center
    w2c = np.eye(4)
    w2c[:3, :3] = R @ rot.T
    w2c[:3, 3] = -w2c[:3, :3] @ (pivot + rot @ (c - pivot))
    out = Camera(cam.K.copy(), w2c, cam.width, cam.height)
    if scale != 1.0:
        out = out.resized(max(int(round(cam.width * scale)), 8), max(int(round(cam.height * scale)), 8))
    return out


def pivot_of(cam: Camera, centre: np.ndarray) -> np.ndarray:
    """The point on `cam`'s optical axis at the depth of `centre` (at least a small positive one)."""
    depth = max(float((centre - cam.center) @ cam.forward), 1e-3)
    return cam.center + depth * cam.forward


def _unit(v: np.ndarray) -> np.ndarray | None:
    n = float(np.linalg.norm(v))
    return None if n < 1e-9 else v / n


def _moves(cams: list[Camera], i: int, centre: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """(axis, full angle) of each direction a pseudo camera may leave camera i in, in the order
    they are used: toward its nearest neighbour, above and below that pair's plane, toward the
    other cameras, and away from the nearest (beyond the photos)."""
    p = pivot_of(cams[i], centre)
    r = cams[i].center - p
    others = sorted((j for j in range(len(cams)) if j != i),
                    key=lambda j: float(np.linalg.norm(cams[j].center - cams[i].center)))
    toward = []
    for j in others:
        d = cams[j].center - p
        n = _unit(np.cross(r, d))
        if n is not None:
            toward.append((n, float(np.arccos(np.clip(r @ d / (np.linalg.norm(r) * np.linalg.norm(d)), -1, 1)))))
    if not toward:  # one camera (or all on one ray): orbit about the camera's own up and right axes
        R = cams[i].world_to_cam[:3, :3]
        lone = np.radians(LONE_CAMERA_DEG)
        return [(R[1], lone), (R[0], lone), (R[0], -lone), (R[1], -lone)]
    n, angle = toward[0]
    tangent = _unit(np.cross(n, r))
    return [toward[0], (tangent, angle), (tangent, -angle), *toward[1:], (n, -angle)]


def pseudo_cameras(cameras: list[Camera], centre: np.ndarray, round_index: int, rounds: int, count: int,
                   spread: float = 0.5, scale: float = 1.0) -> list[Camera]:
    """`count` pseudo cameras for round `round_index` (0-based) of `rounds`: each a training camera
    orbited by spread·(round_index+1)/rounds of its angle to its nearest neighbour, the directions
    taken in turn across the cameras (see `_moves`); cameras that would coincide are kept once."""
    if not cameras or count <= 0:
        return []
    frac = spread * (round_index + 1) / max(rounds, 1)
    moves = [_moves(cameras, i, centre) for i in range(len(cameras))]
    baseline = min((float(np.linalg.norm(a.center - b.center)) for k, a in enumerate(cameras)
                    for b in cameras[k + 1:]), default=1.0)
    out: list[Camera] = []
    for d in range(max(len(m) for m in moves)):
        for i, cam in enumerate(cameras):
            if d >= len(moves[i]) or len(out) == count:
                continue
            axis, angle = moves[i][d]
            new = orbit(cam, pivot_of(cam, centre), axis, frac * angle, scale)
            if all(np.linalg.norm(new.center - o.center) > 0.05 * max(baseline, 1e-6) for o in out):
                out.append(new)
    return out


def nearest_sources(target: Camera, cameras: list[Camera], k: int) -> list[int]:
    """Indices of the k training cameras nearest `target`: by the angle between the viewing
    directions, then by the distance between the centres (a photo that looks the same way from
    close by sees the most of what the pseudo view sees)."""
    def score(cam: Camera) -> float:
        angle = float(np.arccos(np.clip(cam.forward @ target.forward, -1, 1)))
        return angle + float(np.linalg.norm(cam.center - target.center)) / max(np.linalg.norm(target.center), 1e-6)

    return sorted(range(len(cameras)), key=lambda i: score(cameras[i]))[:k]
