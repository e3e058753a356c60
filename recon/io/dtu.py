"""DTU in its two common layouts.

NeuS/IDR: SCAN/cameras_sphere.npz (world_mat_i, scale_mat_i), SCAN/images/NNNNNN.png,
SCAN/mask/NNN.png. world_mat_i is the DTU projection K[R|t] (4x4, last row 0 0 0 1) and scale_mat_i
maps the unit sphere around the object to DTU's world, so P = world_mat @ scale_mat projects points
of the *normalised* frame: the scene comes out in that frame (object inside the unit sphere,
meta["object_sphere"]), which is what NeuS/IDR-based evaluations use.

RegNeRF/SpaRe (the raw DTU MVS release): ROOT/Rectified/scanN/rect_XXX_3_r5000.png,
ROOT/Calibration/cal18/pos_XXX.txt (3x4 projection matrices), ROOT/idrmasks/scanN/[mask/]NNN.png.
XXX is 1-based; View.index = XXX - 1 so both layouts index the same photo alike. The scene stays in
DTU's world frame (millimetres), as RegNeRF uses it.

Both: View.index 0..48, name = file stem, OpenCV cameras from an RQ decomposition of P.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recon.errors import ReconError
from recon.io.images import ImageSpec, image_size, is_image_file, load_views
from recon.scene import Camera, Scene

# DTU ships light condition 3 of 0..6 as the "max lighting" image sparse-view papers use.
REGNERF_LIGHT = 3


def rq3(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RQ decomposition of a 3x3 matrix: M = R @ Q, R upper triangular, Q orthogonal.

    Done with numpy's QR on the row-reversed transpose (no OpenCV needed): with the exchange
    matrix E, (E M)^T = Q' R' gives M = (E R'^T E)(E Q'^T).
    """
    E = np.eye(3)[::-1]
    Qp, Rp = np.linalg.qr((E @ M).T)
    return E @ Rp.T @ E, E @ Qp.T


def decompose_projection(P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """3x4 projection (any scale, any sign) → (K [3,3] with K[2,2]=1 and a positive diagonal,
    world_to_cam [4,4] with a proper rotation)."""
    P = np.asarray(P, dtype=np.float64)[:3, :4]
    K, R = rq3(P[:, :3])
    D = np.diag(np.sign(np.diag(K)))  # flip axes so that K's diagonal is positive
    K, R = K @ D, D @ R
    t = np.linalg.solve(K, P[:, 3])
    if np.linalg.det(R) < 0:  # P was given with a negative overall scale
        R, t = -R, -t
    w2c = np.eye(4)
    w2c[:3, :3], w2c[:3, 3] = R, t
    return K / K[2, 2], w2c


def _digits(stem: str) -> int | None:
    m = re.search(r"(\d+)$", stem)
    return int(m.group(1)) if m else None


def _images_by_index(folder: Path) -> dict[int, Path]:
    """Image files keyed by the number their stem ends with (sorted position if they have none)."""
    files = sorted(p for p in folder.iterdir() if is_image_file(p)) if folder.is_dir() else []
    nums = [_digits(p.stem) for p in files]
    if files and all(n is not None for n in nums) and len(set(nums)) == len(nums):
        return dict(zip(nums, files))  # type: ignore[arg-type]
    return dict(enumerate(files))


def find_idr_cameras(folder: Path) -> Path | None:
    """The NeuS/IDR camera file of a scan folder (cameras_sphere.npz preferred)."""
    names = ("cameras_sphere.npz", "cameras.npz", "cameras_large.npz")
    return next((folder / n for n in names if (folder / n).is_file()), None)


def read_dtu_idr(
    path: str | Path,
    *,
    downscale: float = 1,
    max_size: int | None = None,
    with_masks: bool | None = None,
    indices: Sequence[int] | None = None,
) -> Scene:
    """Read a NeuS/IDR DTU scan folder (or its cameras_*.npz) into a Scene in the normalised frame.

    meta: "format", "scale_mat" (normalised → DTU world, view 0's), "object_sphere", "image_files".
    """
    path = Path(path)
    folder = path.parent if path.is_file() else path
    cam_file = path if path.is_file() else find_idr_cameras(folder)
    if cam_file is None:
        raise ReconError("no cameras_sphere.npz / cameras.npz found", folder)
    try:
        cams = np.load(cam_file)  # lazy: an NpzFile reads an array on access
    except Exception as e:
        raise ReconError(f"cannot read the camera file ({type(e).__name__})", cam_file) from None
    images = _images_by_index(folder / "image") if (folder / "image").is_dir() else _images_by_index(folder / "images")
    if not images:
        raise ReconError("no images found in images/", folder / "images")
    cam_ids = sorted(int(k.split("_")[-1]) for k in cams.files if re.fullmatch(r"world_mat_\d+", k))
    if sorted(images) != cam_ids:
        raise ReconError(
            f"{len(cam_ids)} cameras (world_mat_*) but {len(images)} images in images/: they must match one to one",
            cam_file,
        )
    masks = _images_by_index(folder / "mask")
    specs = []
    for i in _chosen(cam_ids, indices, path):  # only the chosen views' arrays are read from the npz
        scale = cams[f"scale_mat_{i}"] if f"scale_mat_{i}" in cams else np.eye(4)
        K, w2c = decompose_projection(cams[f"world_mat_{i}"] @ scale)
        img = images[i]
        w, h = image_size(img)
        mask = masks.get(i, folder / "mask" / f"{i:03d}.png")
        specs.append(ImageSpec(img.stem, i, Camera(K, w2c, w, h), img, mask))
    views = load_views(specs, downscale=downscale, max_size=max_size, with_masks=with_masks)
    first = f"scale_mat_{cam_ids[0]}"
    meta = {
        "format": "dtu_idr",
        "scale_mat": (np.asarray(cams[first]) if first in cams else np.eye(4)).tolist(),
        "object_sphere": {"center": [0.0, 0.0, 0.0], "radius": 1.0},
        "image_files": {images[i].stem: str(images[i]) for i in cam_ids},
    }
    return Scene(views=views, source=str(path), meta=meta)


def find_regnerf_root(path: Path) -> tuple[Path, str] | None:
    """(ROOT, "scanN") for ROOT, ROOT/Rectified or ROOT/Rectified/scanN[_train] with a Calibration
    folder beside Rectified; None when the layout does not match. ROOT must hold one scan, unless
    the scan folder itself is given."""
    path = Path(path)
    if path.parent.name == "Rectified":
        root, scan = path.parent.parent, path.name
    else:
        root = path.parent if path.name == "Rectified" else path
        rect = root / "Rectified"
        scans = sorted(p.name for p in rect.glob("scan*") if p.is_dir()) if rect.is_dir() else []
        if not scans:
            return None
        if len(scans) > 1:
            raise ReconError(f"holds {len(scans)} scans ({', '.join(scans[:4])}, ...): pass Rectified/scanN", rect)
        scan = scans[0]
    if not (root / "Calibration").is_dir():
        return None
    return root, scan


def _calibration_dir(root: Path) -> Path:
    cal = root / "Calibration" / "cal18"
    return cal if cal.is_dir() else root / "Calibration"


def _regnerf_mask_dir(root: Path, scan: str) -> Path:
    # idrmasks ships scanN/mask/NNN.png for some scans and scanN/NNN.png for others.
    base = root / "idrmasks" / scan.removesuffix("_train")
    return base / "mask" if (base / "mask").is_dir() else base


def read_projection_txt(path: Path) -> np.ndarray:
    """A 3x4 projection matrix written as 12 numbers (DTU's pos_XXX.txt)."""
    try:
        P = np.loadtxt(path, dtype=np.float64).reshape(3, 4)
    except (ValueError, OSError):
        raise ReconError("expected a 3x4 projection matrix (12 numbers)", path) from None
    return P


def read_dtu_regnerf(
    path: str | Path,
    *,
    downscale: float = 1,
    max_size: int | None = None,
    with_masks: bool | None = None,
    indices: Sequence[int] | None = None,
    light: int = REGNERF_LIGHT,
) -> Scene:
    """Read DTU in the raw RegNeRF/SpaRe layout (module docstring) for one scan, DTU world frame.

    meta: "format", "scan", "image_files".
    """
    path = Path(path)
    found = find_regnerf_root(path)
    if found is None:
        raise ReconError("not a DTU Rectified/ + Calibration/ layout", path)
    root, scan = found
    scan_dir = root / "Rectified" / scan
    pattern = re.compile(rf"rect_(\d{{3}})_{light}_r5000\.png$")
    listing = sorted(scan_dir.iterdir()) if scan_dir.is_dir() else []
    images = {int(m.group(1)): p for p in listing if (m := pattern.match(p.name))}
    if not images:
        raise ReconError(f"no rect_XXX_{light}_r5000.png images", scan_dir)
    cal, masks = _calibration_dir(root), _regnerf_mask_dir(root, scan)
    for xxx, img in sorted(images.items()):
        if not (cal / f"pos_{xxx:03d}.txt").is_file():
            raise ReconError(f"image {img.name} has no projection matrix pos_{xxx:03d}.txt "
                             "(camera count does not match images)", cal / f"pos_{xxx:03d}.txt")
    specs = []
    for index in _chosen(sorted(x - 1 for x in images), indices, path):
        xxx, img = index + 1, images[index + 1]
        pos = cal / f"pos_{xxx:03d}.txt"
        K, w2c = decompose_projection(read_projection_txt(pos))
        w, h = image_size(img)
        specs.append(ImageSpec(img.stem, index, Camera(K, w2c, w, h), img, masks / f"{index:03d}.png"))
    views = load_views(specs, downscale=downscale, max_size=max_size, with_masks=with_masks)
    files = {p.stem: str(p) for p in images.values()}
    return Scene(views=views, source=str(path), meta={"format": "dtu_regnerf", "scan": scan, "image_files": files})


def _chosen(available: list[int], indices: Sequence[int] | None, source: Path) -> list[int]:
    """`indices` (in that order) after checking they exist; all available ones when None."""
    if indices is None:
        return available
    missing = sorted(set(indices) - set(available))
    if missing:
        raise ReconError(f"no views with index {missing} (the scan has {available[0]}..{available[-1]})", source)
    return list(indices)
