"""`recon view RUN_DIR | FILE.ply | FILE.spz`: open a finished run or any 3DGS .ply (plain or SuperSplat's
compressed layout) or Niantic .spz in the viewer."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import viser

from recon.errors import ReconError
from recon.gaussians import Gaussians
from recon.io.ply import read_ply
from recon.io.splat_formats import read_splat
from recon.scene import Camera

from .app import ViewerApp
from .server import (
    DEFAULT_HOST, DEFAULT_PORT, start_server, stop_on_signals, stop_server, viewer_url, wait_until_stopped,
)
from .splats import camera_framing, frame_bounds, robust_bounds, to_splat_arrays


@dataclass
class Loaded:
    """What `view` shows: the splat, and the training cameras (with photos) when the run has them."""

    ply: Path
    gaussians: Gaussians
    cameras: list[Camera] = field(default_factory=list)
    images: list[np.ndarray | None] = field(default_factory=list)
    unstyled: Gaussians | None = None
    """A stylised run's splat before stylisation (splat_unstyled.ply beside splat.ply)."""
    pictures: dict[str, list[np.ndarray]] = field(default_factory=dict)
    """The run's pictures by title, as the live viewer showed them (filters' trust maps, the last
    repair round)."""


UNSTYLED_PLY = "splat_unstyled.ply"
"""What the export stage (recon/stages/export.py) names the unstylised splat of a stylised run."""


def find_ply(path: Path) -> Path:
    """The splat file of `path`: itself, RUN/splat.ply, the last iteration of an Inria/gsplat
    output folder (point_cloud/iteration_N/point_cloud.ply), or the only .ply in the folder."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise ReconError("no such file or folder", path)
    if (path / "splat.ply").is_file():
        return path / "splat.ply"
    iterations = sorted(path.glob("point_cloud/iteration_*/point_cloud.ply"),
                        key=lambda p: int(p.parent.name.split("_")[-1]) if p.parent.name.split("_")[-1].isdigit() else -1)
    if iterations:
        return iterations[-1]
    plys = sorted(path.glob("*.ply"))
    if len(plys) == 1:
        return plys[0]
    found = ", ".join(p.name for p in plys) or "none"
    raise ReconError(f"expected splat.ply or a single .ply here (found: {found}); pass the file itself", path)


def _matrix(entry: dict[str, Any], *keys: str, shape: tuple[int, int]) -> np.ndarray | None:
    for key in keys:
        if key in entry:
            m = np.asarray(entry[key], dtype=np.float64)
            if m.size == shape[0] * shape[1]:
                return m.reshape(shape)
    return None


def camera_from_json(entry: dict[str, Any]) -> Camera | None:
    """One cameras.json entry → Camera; None when it lacks what a camera needs (tolerant reader)."""
    K = _matrix(entry, "K", "intrinsics", shape=(3, 3))
    if K is None and {"fx", "fy"} <= entry.keys():
        K = np.array([[entry["fx"], 0, entry.get("cx", entry["width"] / 2)],
                      [0, entry["fy"], entry.get("cy", entry["height"] / 2)], [0, 0, 1]], dtype=np.float64)
    w2c = _matrix(entry, "world_to_cam", "w2c", "viewmat", shape=(4, 4))
    if w2c is None:
        w2c = _matrix(entry, "world_to_cam", "w2c", shape=(3, 4))
        w2c = np.vstack([w2c, [0, 0, 0, 1]]) if w2c is not None else None
    if w2c is None:
        c2w = _matrix(entry, "cam_to_world", "c2w", shape=(4, 4))
        w2c = np.linalg.inv(c2w) if c2w is not None else None
    if K is None or w2c is None or "width" not in entry or "height" not in entry:
        return None
    return Camera(K=K, world_to_cam=w2c, width=int(entry["width"]), height=int(entry["height"]))


def _load_image(entry: dict[str, Any], root: Path, cam: Camera) -> np.ndarray | None:
    """The photo of a cameras.json entry: a path under "image"/"file_path", else the right half
    of RUN/renders/<name>.png (recon's export writes render | photo side by side)."""
    import imageio.v3 as iio

    paths = [root / entry[k] for k in ("image", "image_path", "file_path") if isinstance(entry.get(k), str)]
    side_by_side = root / "renders" / f"{entry.get('name', '')}.png"
    try:
        for path in paths:
            if path.is_file():
                return np.asarray(iio.imread(path))[..., :3]
        if entry.get("name") and side_by_side.is_file():
            img = np.asarray(iio.imread(side_by_side))[..., :3]
            if img.shape[1] == 2 * cam.width:
                return img[:, cam.width:]
    except Exception:  # an unreadable photo only costs the frustum its thumbnail
        return None
    return None


def load_cameras(run_dir: Path) -> tuple[list[Camera], list[np.ndarray | None]]:
    """RUN/cameras.json (a list, or {"cameras": [...]}) → cameras and photos; [] when absent."""
    path = run_dir / "cameras.json"
    if not path.is_file():
        return [], []
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return [], []
    entries = data.get("cameras", data.get("frames", [])) if isinstance(data, dict) else data
    cameras, images = [], []
    for entry in entries if isinstance(entries, list) else []:
        cam = camera_from_json(entry) if isinstance(entry, dict) else None
        if cam is not None:
            cameras.append(cam)
            images.append(_load_image(entry, run_dir, cam))
    return cameras, images


def run_pictures(run_dir: Path) -> dict[str, list[np.ndarray]]:
    """RUN/filters/VIEW.png (photo | trust | removed) and the last RUN/repair/round_R/, by the
    titles the live viewer gave them; {} for a run without them or a bare .ply."""
    from recon.io.images import load_image

    found = {}
    trust = sorted(p for p in (run_dir / "filters").glob("*.png") if p.name != "contact.png")
    if trust:
        found["filters: photo | trust | removed"] = [load_image(p) for p in trust]
    rounds = sorted((run_dir / "repair").glob("round_*"), key=lambda p: int(p.name.split("_")[-1])
                    if p.name.split("_")[-1].isdigit() else -1)
    if rounds and list(rounds[-1].glob("*.png")):
        found[f"repair: {rounds[-1].name.replace('_', ' ')} (render | repaired | confidence)"] = [
            load_image(p) for p in sorted(rounds[-1].glob("*.png"))]
    return found


def load(path: str | Path) -> Loaded:
    """A run folder or a .ply → the splat and, for a run folder, its cameras."""
    path = Path(path)
    ply = find_ply(path)
    cameras, images = load_cameras(path if path.is_dir() else ply.parent)
    unstyled = ply.parent / UNSTYLED_PLY
    return Loaded(ply=ply, gaussians=read_splat(ply), cameras=cameras, images=images,
                  unstyled=read_ply(unstyled) if ply.name == "splat.ply" and unstyled.is_file() else None,
                  pictures=run_pictures(ply.parent) if ply.name == "splat.ply" else {})


def show(server: viser.ViserServer, loaded: Loaded) -> ViewerApp:
    """Put `loaded` into `server`, framed: the splat's robust bounds, seen from the first training
    camera when there is one, else from the front (OpenCV +z)."""
    app = ViewerApp(server, live=False)
    arrays = to_splat_arrays(loaded.gaussians)
    centre, radius = robust_bounds(arrays.centers, arrays.opacities)
    app.frustum_scale = 0.15 * radius
    if loaded.cameras:
        app.set_cameras(loaded.cameras, loaded.images)
        app.set_framing(camera_framing(loaded.cameras, centre))
    else:
        app.set_framing(frame_bounds(centre, radius))
    if loaded.unstyled is not None:
        app.set_splat_choices({"Stylised": loaded.gaussians, "Original": loaded.unstyled})
    else:
        app.set_gaussians(loaded.gaussians)
    for title, pictures in loaded.pictures.items():
        app.set_images(title, pictures)
    return app


class ViewSession:
    """A running `view`: the server and its content. `close()` stops both (idempotent)."""

    def __init__(self, path: str | Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        loaded = load(path)  # before the server: a bad path should not leave a server behind
        self.server = start_server(host, port, label=f"recon · {loaded.ply.name}")
        self.app = show(self.server, loaded)
        self.loaded = loaded
        self._closed = False

    @property
    def url(self) -> str:
        return viewer_url(self.server)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.app.close()
            stop_server(self.server)

    def __enter__(self) -> "ViewSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def view(path: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve `path` (a run folder or a .ply) until Ctrl-C, SIGTERM or SIGHUP; then stop cleanly."""
    stop = threading.Event()
    with stop_on_signals(stop), ViewSession(path, host, port) as session:
        n = len(session.loaded.gaussians)
        print(f"recon viewer: showing {n:,} Gaussians from {session.loaded.ply} — Ctrl-C to stop", flush=True)
        wait_until_stopped(stop)
