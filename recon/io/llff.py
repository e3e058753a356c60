"""LLFF scenes: SCENE/poses_bounds.npy + SCENE/images[_N]/.

poses_bounds.npy is [N, 17]: per image a row-major 3x5 matrix [R | t | hwf] then (near, far).
R's columns are the camera's (down, right, back) axes in world coordinates and t its centre; hwf
is (height, width, focal) at the full resolution. OpenCV axes are (right, down, forward), so
cam_to_world = [col1, col0, -col2 | t]. The principal point is the image centre.

`images_N` holds the images shrunk N times; focal and principal point are scaled to the pixels
actually loaded (`downscale=8` reads images_8 when it exists, else shrinks images/ by 8).
View.index is the image's position in name order, as the LLFF protocol (every 8th = test) uses.
Nothing is rescaled: near/far stay in the file's units, in meta["near"], meta["far"] and
meta["view_bounds"] (per view [near, far]).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recon.errors import ReconError
from recon.io.images import ImageSpec, is_image_file, load_views, select
from recon.scene import Camera, Scene


def llff_to_opencv(pose: np.ndarray) -> np.ndarray:
    """LLFF 3x5 [down right back | centre | hwf] → OpenCV world_to_cam [4,4]."""
    R = np.stack([pose[:, 1], pose[:, 0], -pose[:, 2]], axis=1)
    c2w = np.eye(4)
    c2w[:3, :3], c2w[:3, 3] = R, pose[:, 3]
    return np.linalg.inv(c2w)


def opencv_to_llff(world_to_cam: np.ndarray, height: int, width: int, focal: float) -> np.ndarray:
    """Inverse of `llff_to_opencv`: OpenCV world_to_cam → LLFF 3x5 with hwf appended."""
    c2w = np.linalg.inv(world_to_cam)
    R = c2w[:3, :3]
    cols = [R[:, 1], R[:, 0], -R[:, 2], c2w[:3, 3], np.array([height, width, focal], dtype=np.float64)]
    return np.stack(cols, axis=1)


def _image_folders(folder: Path) -> dict[int, Path]:
    """Available image folders keyed by shrink factor: images → 1, images_8 → 8."""
    out = {}
    for p in folder.iterdir():
        m = re.fullmatch(r"images(?:_(\d+))?", p.name)
        if p.is_dir() and m:
            out[int(m.group(1) or 1)] = p
    return out


def _pick_folder(folder: Path, downscale: float) -> tuple[Path, float]:
    """(image folder, downscale left to apply). The largest pre-shrunk factor not above the
    request wins; if all are above it (e.g. only images_8 shipped), the smallest is used as is."""
    folders = _image_folders(folder)
    if not folders:
        raise ReconError("no images/ or images_N/ folder next to poses_bounds.npy", folder)
    below = [k for k in folders if k <= downscale]
    k = max(below) if below else min(folders)
    return folders[k], (downscale / k if below else 1)


def read_llff(
    path: str | Path,
    *,
    downscale: float = 1,
    max_size: int | None = None,
    with_masks: bool | None = None,
    indices: Sequence[int] | None = None,
) -> Scene:
    """Read an LLFF scene folder (or its poses_bounds.npy) into a Scene (conventions: module docstring)."""
    path = Path(path)
    folder = path.parent if path.is_file() else path
    pb_file = folder / "poses_bounds.npy"
    try:
        pb = np.load(pb_file)
    except Exception as e:
        raise ReconError(f"cannot read poses_bounds.npy ({type(e).__name__})", pb_file) from None
    if pb.ndim != 2 or pb.shape[1] != 17:
        raise ReconError(f"expected an [N, 17] array, got shape {list(pb.shape)}", pb_file)
    img_dir, rest = _pick_folder(folder, downscale)
    files = sorted(p for p in img_dir.iterdir() if is_image_file(p))
    if len(files) != len(pb):
        raise ReconError(f"{len(pb)} poses in poses_bounds.npy but {len(files)} images in {img_dir.name}/", img_dir)
    poses, bounds = pb[:, :15].reshape(-1, 3, 5), pb[:, 15:17]
    specs = []
    for i, (pose, f) in enumerate(zip(poses, files)):
        h, w, focal = pose[:, 4]
        K = np.array([[focal, 0, w / 2], [0, focal, h / 2], [0, 0, 1]], dtype=np.float64)
        cam = Camera(K, llff_to_opencv(pose), round(w), round(h))
        # LLFF ships no masks; masks/STEM.png is used when someone adds them.
        specs.append(ImageSpec(f.stem, i, cam, f, folder / "masks" / f"{f.stem}.png"))
    views = load_views(select(specs, indices, path), downscale=rest, max_size=max_size, with_masks=with_masks)
    meta = {
        "format": "llff",
        "near": float(bounds[:, 0].min()),
        "far": float(bounds[:, 1].max()),
        "view_bounds": {s.name: bounds[s.index].tolist() for s in specs},
        "image_files": {s.name: str(s.image_path) for s in specs},
    }
    return Scene(views=views, source=str(path), meta=meta)
