"""The poses stage on a synthetic scene with known cameras: a ray-cast textured box on a textured
floor, photographed from a short arc. Also the written COLMAP / transforms.json files (read back
with recon's own readers) and the failure message when a view cannot register."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recon.errors import ReconError
from recon.events import Observer
from recon.io.colmap import read_colmap
from recon.io.nerfstudio import read_nerfstudio
from recon.io.photos import load_photos
from recon.poses.metrics import pose_errors
from recon.stages.poses import PosesConfig, run_poses

os.environ.setdefault("GLOG_minloglevel", "2")
W, H, F = 320, 240, 280.0


def look_at(eye: np.ndarray, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """OpenCV world-to-camera [4,4] for a camera at `eye` looking at `target`."""
    z = np.asarray(target, float) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    R = np.stack([x, np.cross(z, x), z])
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = R, -R @ eye
    return m


def arc_cameras(n: int = 4, step_deg: float = 18.0, radius: float = 5.0, height: float = 2.5) -> list[np.ndarray]:
    az = np.radians(np.arange(n) * step_deg)
    return [look_at(np.array([radius * np.cos(a), radius * np.sin(a), height])) for a in az]


class _Noise:
    """Colour value noise in 3D (several octaves on a random periodic lattice): SIFT-friendly texture."""

    def __init__(self, seed: int = 0, n: int = 64) -> None:
        self.lattice = np.random.default_rng(seed).random((n, n, n, 3)).astype(np.float32)
        self.n = n

    def _octave(self, p: np.ndarray) -> np.ndarray:
        i = np.floor(p).astype(np.int64)
        f = (p - i).astype(np.float32)
        f = f * f * (3 - 2 * f)  # smoothstep: no lattice-aligned creases
        flat = self.lattice.reshape(-1, 3)
        n = self.n
        out = np.zeros((len(p), 3), np.float32)
        for dx in (0, 1):
            for dy in (0, 1):
                for dz in (0, 1):
                    w = (f[:, 0] if dx else 1 - f[:, 0]) * (f[:, 1] if dy else 1 - f[:, 1]) * (f[:, 2] if dz else 1 - f[:, 2])
                    idx = (((i[:, 0] + dx) % n) * n + (i[:, 1] + dy) % n) * n + (i[:, 2] + dz) % n
                    out += w[:, None] * flat[idx]
        return out

    def __call__(self, p: np.ndarray) -> np.ndarray:
        acc = sum(self._octave(p * f) * a for f, a in ((1.5, 0.4), (3.0, 0.3), (6.0, 0.2), (12.0, 0.1)))
        return np.clip((acc - 0.5) * 2.2 + 0.5, 0, 1)


def cast(w2c: np.ndarray, width: int = W, height: int = H, f: float = F) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast a box [-1,1]^3 on a floor z=-1, |x|,|y| < 6: (world points [H*W,3], NaN on the sky;
    True where the box was hit [H*W]). Rays through pixel centres (+0.5), OpenCV axes."""
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    d_cam = np.stack([(u - width / 2) / f, (v - height / 2) / f, np.ones_like(u)], -1).reshape(-1, 3)
    R, t = w2c[:3, :3], w2c[:3, 3]
    o, d = -R.T @ t, d_cam @ R  # world ray origins / directions
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (-1 - o) / d, (1 - o) / d
        tmin = np.nanmax(np.minimum(t1, t2), axis=1)
        tmax = np.nanmin(np.maximum(t1, t2), axis=1)
        t_box = np.where((tmax >= np.maximum(tmin, 0)), tmin, np.inf)
        t_floor = np.where(d[:, 2] < 0, (-1 - o[2]) / d[:, 2], np.inf)
        on_floor = np.abs(o[:2] + d[:, :2] * np.where(np.isfinite(t_floor), t_floor, 0)[:, None]).max(1) < 6
    t_floor = np.where(on_floor, t_floor, np.inf)  # a finite floor: no aliased texture at the horizon
    t_hit = np.minimum(t_box, t_floor)
    pts = np.where(np.isfinite(t_hit)[:, None], o + d * np.where(np.isfinite(t_hit), t_hit, 0)[:, None], np.nan)
    return pts, t_box <= t_floor


def render(w2c: np.ndarray, noise: _Noise, width: int = W, height: int = H, f: float = F) -> np.ndarray:
    """The textured scene of `cast` as RGB float [H,W,3] (sky flat grey, the box a bit brighter)."""
    pts, box = cast(w2c, width, height, f)
    col = np.full((len(pts), 3), 0.6, np.float32)
    hit = np.isfinite(pts[:, 0])
    col[hit] = noise(pts[hit] + 7.3) * np.where(box[hit], 1.0, 0.8)[:, None]
    return col.reshape(height, width, 3)


def write_views(folder: Path, cams: list[np.ndarray], seed: int = 0) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    noise, names = _Noise(seed), []
    for i, w2c in enumerate(cams):
        name = f"view{i}"
        Image.fromarray((render(w2c, noise) * 255).round().astype(np.uint8)).save(folder / f"{name}.png")
        names.append(name)
    return names


class Log(Observer):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, message: str) -> None:
        self.lines.append(message)


CFG = PosesConfig(features="sift", feature_max_size=640, matcher="sift")  # the weights-free path


@pytest.fixture(scope="module")
def estimated(tmp_path_factory):
    """Four rendered photos → run_poses; returns (truth, posed scene, out dir, log)."""
    root = tmp_path_factory.mktemp("synthetic")
    cams = arc_cameras()
    names = write_views(root / "photos", cams)
    scene = load_photos(root / "photos")
    assert scene.meta["posed"] is False
    log = Log()
    out = run_poses(CFG, scene, root / "out", log)
    return dict(zip(names, cams)), out, root / "out", log


def test_recovers_known_cameras(estimated):
    truth, scene, _, log = estimated
    assert scene.meta["posed"] is True and len(scene) == 4
    err = pose_errors({v.name: v.camera.world_to_cam for v in scene.views}, truth)
    assert err.pairs == 6
    assert err.rot_max < 1.0, err  # 320x240 renders, ~250 inliers per pair: a few tenths of a degree
    assert err.trans_max < 2.0, err
    # the 50° guess (f=343) must have been refined towards the true focal length
    assert abs(scene.views[0].camera.K[0, 0] - F) < 0.03 * F
    assert any("weights-free" in line for line in log.lines)


def test_registration_info_and_points(estimated):
    _, scene, _, _ = estimated
    reg = scene.meta["registration"]
    assert set(reg) == {v.name for v in scene.views}
    for r in reg.values():
        assert r["registered"] and r["observations"] > 50 and 0 <= r["reproj_error"] < 1.0
    assert scene.points is not None and len(scene.points) > 100
    assert scene.point_colors.shape == scene.points.shape and 0 <= scene.point_colors.min() <= scene.point_colors.max() <= 1
    # the points are the scene the cameras see: in front of every camera, mostly inside its image
    for v in scene.views:
        pix, z = v.camera.project(scene.points)
        inside = (pix[:, 0] >= 0) & (pix[:, 0] < W) & (pix[:, 1] >= 0) & (pix[:, 1] < H)
        assert np.mean(z > 0) > 0.99 and np.mean(inside) > 0.5


def test_written_models_read_back(estimated):
    _, scene, out, _ = estimated
    assert (out / "sparse" / "0" / "cameras.txt").is_file() and (out / "transforms.json").is_file()
    for reader in (read_colmap, read_nerfstudio):
        back = reader(out)
        assert [v.name for v in back.views] == [v.name for v in scene.views]
        for a, b in zip(scene.views, back.views):
            np.testing.assert_allclose(b.camera.world_to_cam, a.camera.world_to_cam, atol=1e-6)
            np.testing.assert_allclose(b.camera.K, a.camera.K, atol=1e-6)
            assert b.image.shape == a.image.shape
    assert read_colmap(out).points.shape[0] == scene.points.shape[0]


def test_unmatched_view_is_named_or_skipped(tmp_path):
    cams = arc_cameras(3)
    write_views(tmp_path / "photos", cams)
    # a photo of something else: the same kind of texture, but no shared structure
    other = render(look_at(np.array([0.0, 0.0, 9.0]) + 0.01, target=(0, 0, -1)), _Noise(seed=5))
    Image.fromarray((other * 255).astype(np.uint8)).save(tmp_path / "photos" / "stranger.png")
    scene = load_photos(tmp_path / "photos")
    with pytest.raises(ReconError) as e:
        run_poses(CFG, scene, tmp_path / "out", Log())
    msg = str(e.value)
    assert "stranger" in msg and "view0" not in msg.split(":")[-1].split("Try")[0]
    for hint in ("overlap", "camera files", "--config.poses.matcher", "allow-partial"):
        assert hint in msg
    partial = run_poses(PosesConfig(features="sift", feature_max_size=640, allow_partial=True, matcher="sift"), scene,
                        tmp_path / "out", Log())
    assert [v.name for v in partial.views] == ["view0", "view1", "view2"]
    assert partial.meta["registration"]["stranger"]["registered"] is False
    assert "stranger" not in read_colmap(tmp_path / "out").meta["image_files"]


def test_known_cameras_pass_through(tmp_path):
    from recon.scene import Camera, Scene, View

    K = np.array([[F / 4, 0, W / 8], [0, F / 4, H / 8], [0, 0, 1]])
    noise = _Noise(0)
    views = [View(f"v{i}", i, Camera(K, w2c, W // 4, H // 4), render(w2c, noise, W // 4, H // 4, F / 4))
             for i, w2c in enumerate(arc_cameras(3))]
    scene = Scene(views, source="posed dataset", meta={"posed": True})
    assert run_poses(PosesConfig(), scene, tmp_path, Log()) is scene
    assert run_poses(PosesConfig(method="known"), scene, tmp_path, Log()) is scene
    for v in views:
        Image.fromarray((v.image * 255).astype(np.uint8)).save(tmp_path / f"{v.name}.png")
    with pytest.raises(ReconError, match="method=known"):
        run_poses(PosesConfig(method="known"), load_photos(tmp_path), tmp_path, Log())
