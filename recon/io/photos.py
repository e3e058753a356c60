"""A plain folder of photos (no camera files) → an unposed Scene for the poses stage.

Each view gets a placeholder identity pose and a pinhole K guessed from EXIF: the 35 mm-equivalent
focal length when the camera wrote one, else the focal length with the sensor's pixel pitch, else
a 50° field of view across the longer side. The poses stage refines K and recovers the poses;
photos of one size and one focal end up sharing a camera there. scene.meta["posed"] is False.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from recon.errors import ReconError
from recon.io.images import image_size, load_image, target_size
from recon.scene import Camera, Scene, View

DEFAULT_FOV_DEG = 50.0
_FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
# EXIF tags (Exif sub-IFD)
_EXIF_IFD = 0x8769
_FOCAL_LENGTH, _FOCAL_35MM = 0x920A, 0xA405
_PLANE_X_RES, _PLANE_RES_UNIT, _EXIF_WIDTH = 0xA20E, 0xA210, 0xA002
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}  # FocalPlaneResolutionUnit → mm per unit


def exif_focal_px(path: Path, width: int, height: int) -> tuple[float | None, str]:
    """(focal length in pixels for the image as displayed at width x height, its source).

    Sources: "exif35" (FocalLengthIn35mmFilm, defined on the 43.3 mm full-frame diagonal),
    "exif" (FocalLength with FocalPlaneXResolution), or (None, "default").
    """
    try:
        with Image.open(path) as im:
            exif = im.getexif().get_ifd(_EXIF_IFD)
            raw_w = max(im.size)
    except (OSError, ValueError, SyntaxError):
        return None, "default"
    f35 = exif.get(_FOCAL_35MM)
    if f35 and float(f35) > 0:
        return float(f35) * math.hypot(width, height) / _FULL_FRAME_DIAGONAL_MM, "exif35"
    f_mm, res = exif.get(_FOCAL_LENGTH), exif.get(_PLANE_X_RES)
    if f_mm and res and float(f_mm) > 0 and float(res) > 0:
        unit_mm = _UNIT_MM.get(int(exif.get(_PLANE_RES_UNIT, 2)), 25.4)
        # FocalPlaneXResolution counts pixels of the sensor's full-size image per unit.
        full_w = float(exif.get(_EXIF_WIDTH) or raw_w)
        sensor_w_mm = full_w / float(res) * unit_mm
        return float(f_mm) / sensor_w_mm * max(width, height), "exif"
    return None, "default"


def default_focal_px(width: int, height: int, fov_deg: float = DEFAULT_FOV_DEG) -> float:
    """Focal length giving `fov_deg` across the longer image side."""
    return max(width, height) / 2.0 / math.tan(math.radians(fov_deg) / 2.0)


def _grey(image: np.ndarray, size: int) -> np.ndarray:
    grey = image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.asarray(Image.fromarray(grey.astype(np.float32)).resize((size, size), Image.BOX))


def constant_photo(image: np.ndarray, tol: float = 2 / 255) -> str | None:
    """"all black", "all white" or "a single colour" for a photo with no content (every pixel
    within `tol` of the mean), else None."""
    if float(image.std(axis=(0, 1)).max()) > tol:
        return None
    level = float(image.mean())
    return "all black" if level < 0.02 else "all white" if level > 0.98 else "a single colour"


def find_duplicates(names: list[str], images: list[np.ndarray], tol: float = 1.5 / 255) -> list[tuple[str, str]]:
    """Pairs of views that show the same picture: 16×16 thumbnails within `tol` mean absolute
    difference, and 64×64 ones that correlate (so two photos of noise, whose thumbnails are
    both flat grey, are not the same picture: their problem is that nothing matches).

    Duplicates break SfM (a zero-baseline pair) and waste a view, so they are refused by name.
    """
    thumbs = [_grey(im, 16) for im in images]  # equal for the same picture re-encoded or resized
    detail = [_grey(im, 64) for im in images]
    aspect = [round(im.shape[1] / im.shape[0], 2) for im in images]
    dups = []
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            if aspect[i] == aspect[j] and float(np.abs(thumbs[i] - thumbs[j]).mean()) < tol \
                    and _correlation(detail[i], detail[j]) > 0.9:
                dups.append((names[i], names[j]))
    return dups


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / max(np.sqrt((a * a).sum() * (b * b).sum()), 1e-12))


def _view_names(paths: list[Path]) -> list[str]:
    """File stems, or full file names where two files share a stem (a.jpg and a.png)."""
    stems = [p.stem for p in paths]
    return [p.stem if stems.count(p.stem) == 1 else p.name for p in paths]


def load_photos(folder: str | Path, max_size: int | None = None) -> Scene:
    """Read every photo in `folder` into an unposed Scene (see the module docstring).

    Raises ReconError for a missing folder, fewer than 2 photos, or duplicate photos (naming them).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ReconError("not a folder of photos", folder)
    from recon.io.detect import find_images  # detect imports readers; keep this module light

    paths = find_images(folder)
    if len(paths) < 2:
        found = "no photos" if not paths else f"only one photo ({paths[0].name})"
        raise ReconError(f"found {found}; recovering cameras needs at least 2 overlapping photos (3–9 work best)",
                         folder)
    names = _view_names(paths)
    views, focal_source = [], {}
    for idx, (name, path) in enumerate(zip(names, paths)):
        w0, h0 = image_size(path)
        w, h = target_size(w0, h0, 1, max_size)
        image = load_image(path, (w, h))  # EXIF rotation applied; gray/RGBA/16-bit → RGB float32
        f, source = exif_focal_px(path, w, h)
        if f is None:
            f = default_focal_px(w, h)
        focal_source[name] = source
        K = np.array([[f, 0.0, w / 2.0], [0.0, f, h / 2.0], [0.0, 0.0, 1.0]])
        views.append(View(name=name, index=idx, camera=Camera(K, np.eye(4), w, h), image=image))
    blank = [(v.name, what) for v in views if (what := constant_photo(v.image)) is not None]
    if blank:
        listed = ", ".join(f"{paths[names.index(n)].name} is {what}" for n, what in blank)
        raise ReconError(f"{listed}: a photo without content has nothing to reconstruct (or match); "
                         "remove it", folder)
    dups = find_duplicates(names, [v.image for v in views])
    if dups:
        listed = "; ".join(f"{a} and {b}" for a, b in dups)
        raise ReconError(f"duplicate photos ({listed}) show the same picture: remove the copies — "
                         "every view must be taken from a different position", folder)
    meta = {"format": "photos", "posed": False, "image_files": {n: str(p) for n, p in zip(names, paths)},
            "focal_source": focal_source}
    return Scene(views=views, source=str(folder), meta=meta)
