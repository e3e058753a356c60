"""Recognise a dataset's format from its folder and read it: `load_scene(path)`.

Checked in this order (the first match wins):
  nerfstudio   transforms.json / transforms_train.json
  dtu_idr      cameras_sphere.npz / cameras.npz (+ images/, mask/)
  dtu_regnerf  Rectified/scanN/ + Calibration/ (+ idrmasks/)
  llff         poses_bounds.npy (+ images[_N]/)
  middlebury   *_par.txt
  colmap       sparse/0, sparse/ or a subfolder with cameras/images .txt|.bin (+ images/)
A path to one of those camera files works too. A folder of photos without any of them raises
`NoCameras` (a ReconError): the poses stage reads such folders through its own entry point, using
`find_images` to list them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from recon.errors import NoCameras, ReconError
from recon.io.colmap import find_colmap_model, is_colmap_model, read_colmap
from recon.io.dtu import find_idr_cameras, find_regnerf_root, read_dtu_idr, read_dtu_regnerf
from recon.io.images import is_image_file
from recon.io.llff import read_llff
from recon.io.middlebury import find_par_file, read_middlebury
from recon.io.nerfstudio import find_transforms, read_nerfstudio
from recon.scene import Scene

Reader = Callable[..., Scene]

READERS: dict[str, Reader] = {
    "nerfstudio": read_nerfstudio,
    "dtu_idr": read_dtu_idr,
    "dtu_regnerf": read_dtu_regnerf,
    "llff": read_llff,
    "middlebury": read_middlebury,
    "colmap": read_colmap,
}

CAMERA_FILES_HINT = (
    "transforms.json, cameras_sphere.npz, Rectified/+Calibration/, poses_bounds.npy, *_par.txt, "
    "or a COLMAP sparse/0"
)


def find_images(folder: str | Path) -> list[Path]:
    """The image files (png, jpg, jpeg, tif, tiff, bmp, webp; any case) directly in `folder`,
    sorted by name; if there are none, those in `folder/images`. Hidden files are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ReconError("not a folder", folder)
    for d in (folder, folder / "images"):
        if d.is_dir():
            found = sorted(p for p in d.iterdir() if is_image_file(p))
            if found:
                return found
    return []


def _detect_file(path: Path) -> str | None:
    name = path.name.lower()
    if name.startswith("transforms") and name.endswith(".json"):
        return "nerfstudio"
    if name.endswith(".npz") and name.startswith("cameras"):
        return "dtu_idr"
    if name == "poses_bounds.npy":
        return "llff"
    if name.endswith("_par.txt"):
        return "middlebury"
    return None


def detect_format(path: str | Path) -> str | None:
    """The format name (a key of READERS) of a dataset folder or camera file, or None."""
    path = Path(path)
    if path.is_file():
        return _detect_file(path)
    if not path.is_dir():
        return None
    if find_transforms(path) is not None:
        return "nerfstudio"
    if find_idr_cameras(path) is not None:
        return "dtu_idr"
    if find_regnerf_root(path) is not None:
        return "dtu_regnerf"
    if (path / "poses_bounds.npy").is_file():
        return "llff"
    if find_par_file(path) is not None:
        return "middlebury"
    if find_colmap_model(path) is not None:
        return "colmap"
    return None


def load_scene(
    path: str | Path,
    *,
    downscale: int = 1,
    max_size: int | None = None,
    with_masks: bool | None = None,
    indices: Sequence[int] | None = None,
) -> Scene:
    """Read the dataset at `path` (folder or camera file), format auto-detected.

    downscale: shrink every image by this factor (area filter; a pre-shrunk images_N copy is used
      when the format has one). max_size: then cap the longer side at this many pixels.
    with_masks: None = masks when the dataset has them for every view; True = require them;
      False = ignore them. indices: load only the views with these dataset indices, in that order.
    Raises ReconError (one line naming the file) for a missing or empty folder, unreadable images,
    camera/image count mismatches, missing masks and unknown formats; NoCameras for a folder of
    photos without camera files.
    """
    path = Path(path)
    if not path.exists():
        raise ReconError("no such file or folder", path)
    fmt = detect_format(path)
    if fmt is None:
        if path.is_file():
            if path.parent.is_dir() and is_colmap_model(path.parent):
                return _read(read_colmap, path.parent, downscale, max_size, with_masks, indices, "colmap")
            raise ReconError(f"unknown format: not a camera file recon reads ({CAMERA_FILES_HINT})", path)
        images = find_images(path)
        if images:
            raise NoCameras(
                f"{len(images)} images but no camera files found (looked for {CAMERA_FILES_HINT})", path
            )
        if any(not p.name.startswith(".") for p in path.iterdir()):
            raise ReconError(f"unknown format: no images and no camera files ({CAMERA_FILES_HINT})", path)
        raise ReconError("empty folder: no images found", path)
    return _read(READERS[fmt], path, downscale, max_size, with_masks, indices, fmt)


def _read(reader: Reader, path: Path, downscale, max_size, with_masks, indices, fmt: str) -> Scene:
    scene = reader(path, downscale=downscale, max_size=max_size, with_masks=with_masks, indices=indices)
    if not scene.views:
        raise ReconError("the dataset has no views", path)
    scene.meta.setdefault("format", fmt)
    return scene
