"""Shared helpers for the io tests: where the real datasets are, and small generated scenes.

(Named test_io_* so it sits with the tests it serves; it holds no tests itself.)
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from recon.scene import Camera, Scene, View

# ../shared/data beside the repository root (present on dev/CI machines only).
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def real(name: str) -> Path:
    """Path of a real dataset under ../shared/data, or skip the test with the reason."""
    p = DATA / name
    if not p.exists():
        pytest.skip(f"real dataset {p} is not present (../shared/data lives beside the repo on dev machines only)")
    return p


def look_at(center: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """OpenCV world_to_cam [4,4] for a camera at `center` looking at `target` (image y ≈ -up)."""
    f = target - center
    f = f / np.linalg.norm(f)
    r = np.cross(f, up)
    r = r / np.linalg.norm(r)
    d = np.cross(f, r)  # down = forward × right keeps (right, down, forward) right-handed
    R = np.stack([r, d, f])
    w2c = np.eye(4)
    w2c[:3, :3], w2c[:3, 3] = R, -R @ center
    return w2c


def gradient_image(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth, view-specific float32 RGB image (survives 8-bit PNG storage to 1/255)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    a = rng.uniform(0.2, 0.8, size=3)
    img = np.stack([a[0] + 0.2 * x, a[1] + 0.2 * y, a[2] * np.ones_like(x)], axis=-1)
    return np.round(np.clip(img, 0, 1) * 255).astype(np.float32) / 255


def synthetic_scene(n: int = 3, w: int = 40, h: int = 30, *, masks: bool = True, points: int = 20) -> Scene:
    """n cameras on a circle of radius 4 looking at the origin, 8-bit-exact images, disc masks."""
    views = []
    for i in range(n):
        a = 2 * np.pi * i / n
        w2c = look_at(np.array([4 * np.cos(a), 4 * np.sin(a), 1.0]), np.zeros(3))
        K = np.array([[50.0 + i, 0, w / 2 + 0.25 * i], [0, 51.0 + i, h / 2 - 0.5], [0, 0, 1]])
        yy, xx = np.mgrid[0:h, 0:w]
        mask = (xx - w / 2) ** 2 + (yy - h / 2) ** 2 < (h / 3) ** 2 if masks else None
        views.append(View(f"view_{i:02d}", i, Camera(K, w2c, w, h), gradient_image(h, w, i), mask))
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1, 1, size=(points, 3))
    cols = np.round(rng.uniform(0, 1, size=(points, 3)) * 255) / 255
    return Scene(views=views, points=pts, point_colors=cols.astype(np.float32), source="synthetic")


def write_png16(path: Path, array: np.ndarray) -> None:
    """Write uint16 [H,W] or [H,W,C] (C in 1, 3, 4) as a 16-bit PNG (Pillow cannot write 16-bit RGB)."""
    a = array if array.ndim == 3 else array[..., None]
    h, w, c = a.shape
    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 3: 2, 4: 6}[c], 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def assert_same_camera(a: Camera, b: Camera, *, tol: float = 1e-9) -> None:
    assert (a.width, a.height) == (b.width, b.height)
    np.testing.assert_allclose(a.K, b.K, rtol=tol, atol=tol)
    np.testing.assert_allclose(a.world_to_cam, b.world_to_cam, rtol=tol, atol=tol)


def assert_one_line_naming(err: Exception, path: Path | str) -> None:
    """A user-facing error: one line, naming the file."""
    msg = str(err)
    assert "\n" not in msg, msg
    assert str(path) in msg, f"{path} not in {msg!r}"


def photo_consistency(a: View, b: View, near: float, far: float, *, points: int = 80, seed: int = 0) -> float:
    """How well two posed views agree, independent of any file convention: for textured pixels of
    `a`, sweep depths in [near, far], map a 7x7 patch into `b` through the plane at that depth, and
    keep the best normalised cross-correlation. Returns the median over pixels (1 = perfect).
    Right cameras score high; a flipped axis, a transposed rotation or a wrong focal do not."""
    ga, gb = a.image.mean(axis=2), b.image.mean(axis=2)
    h, w = ga.shape
    r = 3
    gy, gx = np.gradient(ga)
    mag = np.hypot(gx, gy)
    mag[:r + 1], mag[-r - 1:], mag[:, :r + 1], mag[:, -r - 1:] = 0, 0, 0, 0
    if a.mask is not None:
        mag[~a.mask] = 0
    top = np.argsort(mag.ravel())[-2000:]
    pick = np.random.default_rng(seed).choice(top, size=min(points, len(top)), replace=False)
    py, px = np.unravel_index(pick, ga.shape)
    oy, ox = np.mgrid[-r:r + 1, -r:r + 1]
    qx = px[:, None] + ox.ravel()  # [N, P] integer pixels of the patches in a
    qy = py[:, None] + oy.ravel()
    patch_a = ga[qy, qx]
    rays = np.stack([qx + 0.5, qy + 0.5, np.ones_like(qx, dtype=float)], -1) @ np.linalg.inv(a.camera.K).T
    depths = 1.0 / np.linspace(1.0 / near, 1.0 / far, 96)
    c2w = a.camera.cam_to_world
    X = rays[:, None] * depths[None, :, None, None]  # [N, D, P, 3] in a's camera frame
    Xw = X @ c2w[:3, :3].T + c2w[:3, 3]
    Xb = Xw @ b.camera.world_to_cam[:3, :3].T + b.camera.world_to_cam[:3, 3]
    z = Xb[..., 2]
    uv = Xb @ b.camera.K.T
    with np.errstate(divide="ignore", invalid="ignore"):
        u, v = uv[..., 0] / uv[..., 2] - 0.5, uv[..., 1] / uv[..., 2] - 0.5  # to array coordinates
    inside = (z > 0) & (u >= 0) & (u <= w - 2) & (v >= 0) & (v <= h - 2)
    u, v = np.nan_to_num(u), np.nan_to_num(v)
    u0 = np.clip(np.floor(u), 0, w - 2).astype(int)
    v0 = np.clip(np.floor(v), 0, h - 2).astype(int)
    fu, fv = np.clip(u - u0, 0, 1), np.clip(v - v0, 0, 1)
    patch_b = (gb[v0, u0] * (1 - fu) * (1 - fv) + gb[v0, u0 + 1] * fu * (1 - fv)
               + gb[v0 + 1, u0] * (1 - fu) * fv + gb[v0 + 1, u0 + 1] * fu * fv)
    za = patch_a - patch_a.mean(-1, keepdims=True)
    zb = patch_b - patch_b.mean(-1, keepdims=True)
    ncc = (za[:, None] * zb).sum(-1) / (np.linalg.norm(za, axis=-1)[:, None] * np.linalg.norm(zb, axis=-1) + 1e-8)
    ncc[~inside.all(-1)] = -1
    return float(np.median(ncc.max(axis=1)))
