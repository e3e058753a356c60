"""Middlebury multi-view stereo sets (temple, dino): FOLDER/NAME_par.txt + the images beside it.

`*_par.txt`: a first line with the image count, then per image
`imgname.png k11 k12 k13 k21 k22 k23 k31 k32 k33 r11 .. r33 t1 t2 t3` with P = K [R | t], image
origin top-left, x right, y down: already OpenCV, so world_to_cam = [R | t].
View.index is the line's position in the file (0-based); View.name the image stem. The tight
bounding box the README.txt states, when present, goes to meta["bbox"] ([min xyz, max xyz]).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recon.errors import ReconError
from recon.io.images import ImageSpec, image_size, load_views, select
from recon.scene import Camera, Scene


def find_par_file(folder: Path) -> Path | None:
    """The single `*_par.txt` in `folder` (None if there is none)."""
    found = sorted(folder.glob("*_par.txt"))
    return found[0] if found else None


def _nearest_rotation(R: np.ndarray) -> np.ndarray:
    # The file's rotations carry ~1e-8 rounding; project onto SO(3) so inverses stay exact.
    U, _, Vt = np.linalg.svd(R)
    return U @ np.diag([1.0, 1.0, np.linalg.det(U @ Vt)]) @ Vt


def parse_par_file(par: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """[(image file name, K [3,3], world_to_cam [4,4])] in file order."""
    lines = [ln.split() for ln in par.read_text().splitlines() if ln.strip()]
    if not lines:
        raise ReconError("empty camera file", par)
    body = lines[1:] if len(lines[0]) == 1 else lines
    if len(lines[0]) == 1 and int(lines[0][0]) != len(body):
        raise ReconError(f"says {lines[0][0]} cameras but lists {len(body)}", par)
    out = []
    for n, row in enumerate(body, start=2):
        if len(row) != 22:
            raise ReconError(f"line {n}: expected a name and 21 numbers, got {len(row)} fields", par)
        try:
            vals = np.array([float(x) for x in row[1:]])
        except ValueError:
            raise ReconError(f"line {n}: not a number", par) from None
        w2c = np.eye(4)
        w2c[:3, :3], w2c[:3, 3] = _nearest_rotation(vals[9:18].reshape(3, 3)), vals[18:21]
        out.append((row[0], vals[:9].reshape(3, 3), w2c))
    return out


def _bbox(folder: Path) -> list[list[float]] | None:
    readme = folder / "README.txt"
    if not readme.is_file():
        return None
    triples = re.findall(r"\(\s*([-\d.eE]+)\s+([-\d.eE]+)\s+([-\d.eE]+)\s*\)", readme.read_text(errors="replace"))
    return [[float(x) for x in t] for t in triples[:2]] if len(triples) >= 2 else None


def read_middlebury(
    path: str | Path,
    *,
    downscale: float = 1,
    max_size: int | None = None,
    with_masks: bool | None = None,
    indices: Sequence[int] | None = None,
) -> Scene:
    """Read a Middlebury folder (or its *_par.txt) into a Scene. Masks, if someone made them, are
    read from masks/STEM.png; the benchmark ships none."""
    path = Path(path)
    par = path if path.is_file() else find_par_file(path)
    if par is None:
        raise ReconError("no *_par.txt camera file found", path)
    folder = par.parent
    specs = []
    for i, (fname, K, w2c) in enumerate(parse_par_file(par)):
        img = folder / fname
        if not img.is_file():
            raise ReconError(f"image {fname} listed in {par.name} is missing", img)
        w, h = image_size(img)
        specs.append(ImageSpec(img.stem, i, Camera(K, w2c, w, h), img, folder / "masks" / f"{img.stem}.png"))
    views = load_views(select(specs, indices, path), downscale=downscale, max_size=max_size, with_masks=with_masks)
    meta: dict = {"format": "middlebury", "image_files": {s.name: str(s.image_path) for s in specs}}
    if (bbox := _bbox(folder)) is not None:
        meta["bbox"] = bbox
    return Scene(views=views, source=str(path), meta=meta)
