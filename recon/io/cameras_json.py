"""A run's cameras.json: one record per training view, {name, width, height, K, world_to_cam},
in recon's own conventions (OpenCV axes, world-to-camera 4×4, pixel centres at +0.5). The export
stage writes it; `recon export` reads it back for the camera formats, the mesh and the video."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from recon.cache import atomic_write_json
from recon.errors import ReconError
from recon.scene import Camera


def camera_record(name: str, cam: Camera) -> dict:
    """One view's record in cameras.json."""
    return {"name": name, "width": cam.width, "height": cam.height,
            "K": cam.K.tolist(), "world_to_cam": cam.world_to_cam.tolist()}


def write_cameras_json(path: Path, cameras: list[tuple[str, Camera]]) -> None:
    """Atomically write (name, camera) pairs as a cameras.json."""
    atomic_write_json(path, [camera_record(name, cam) for name, cam in cameras])


def read_cameras_json(path: Path) -> list[tuple[str, Camera]]:
    """The (name, camera) pairs of a cameras.json; a one-line error naming the file when it is not one."""
    try:
        records = json.loads(path.read_text())
        return [(r["name"], Camera(np.array(r["K"]), np.array(r["world_to_cam"]), r["width"], r["height"]))
                for r in records]
    except (ValueError, KeyError, TypeError) as e:
        raise ReconError(f"not a recon cameras.json ({type(e).__name__}: {e})", path) from None
