"""COLMAP models: read `sparse/0` (text or binary, through pycolmap) and write a text model.

COLMAP's camera is already OpenCV's (x right, y down, z forward; pixel centres at +0.5), and its
`cam_from_world` is our world_to_cam, so poses need no axis change. Lens distortion is NOT undone:
K keeps the pinhole part and the coefficients go to `scene.meta["distortion"][view.name]` as
OpenCV-named values {"model", "k1", "k2", "p1", "p2"} for stages that want to undistort.

Layout: DATASET/images/NAME + DATASET/sparse/0/{cameras,images,points3D}.{txt,bin}. Also accepted:
the model folder itself, DATASET/sparse/, or any direct subfolder holding a model (e.g. lund_door's
colmap_ground_truth/). Masks, optional: DATASET/masks/NAME.png or DATASET/masks/STEM.png.
View.index is the image's position in the name-sorted image folder (registered or not).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from recon.cache import atomic_write_text
from recon.errors import ReconError
from recon.io.images import ImageSpec, is_image_file, load_views, save_image, save_mask, select
from recon.scene import Camera, Scene

# model name → (names of its parameters in COLMAP order); the first entries are the pinhole part.
SUPPORTED_MODELS: dict[str, tuple[str, ...]] = {
    "SIMPLE_PINHOLE": ("f", "cx", "cy"),
    "PINHOLE": ("fx", "fy", "cx", "cy"),
    "SIMPLE_RADIAL": ("f", "cx", "cy", "k1"),
    "RADIAL": ("f", "cx", "cy", "k1", "k2"),
    "OPENCV": ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2"),
}
_MODEL_FILES = ("cameras", "images", "points3D")


def is_colmap_model(folder: Path) -> bool:
    """True if `folder` holds cameras/images(/points3D) in text or binary form."""
    return any(all((folder / f"{n}.{ext}").is_file() for n in _MODEL_FILES[:2]) for ext in ("txt", "bin"))


def find_colmap_model(folder: str | Path) -> Path | None:
    """The model folder for a dataset folder: itself, sparse/0, sparse, any sparse/*, or any direct
    subfolder holding a model (first in that order), else None."""
    folder = Path(folder)
    candidates = [folder, folder / "sparse" / "0", folder / "sparse"]
    if (folder / "sparse").is_dir():
        candidates += sorted(p for p in (folder / "sparse").iterdir() if p.is_dir())
    if folder.is_dir():
        candidates += sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    return next((c for c in candidates if c.is_dir() and is_colmap_model(c)), None)


def _intrinsics(model: str, params: np.ndarray, where: Path, camera_id: int) -> tuple[np.ndarray, dict | None]:
    """(K [3,3], OpenCV-named distortion dict or None) from a COLMAP camera."""
    if model not in SUPPORTED_MODELS:
        raise ReconError(
            f"camera {camera_id} uses the {model} model; recon reads {', '.join(SUPPORTED_MODELS)} "
            "(undistort the images first, e.g. with `colmap image_undistorter`)",
            where,
        )
    p = dict(zip(SUPPORTED_MODELS[model], (float(x) for x in params)))
    fx, fy = (p["f"], p["f"]) if "f" in p else (p["fx"], p["fy"])
    K = np.array([[fx, 0.0, p["cx"]], [0.0, fy, p["cy"]], [0.0, 0.0, 1.0]])
    if model in ("SIMPLE_PINHOLE", "PINHOLE"):
        return K, None
    dist = {"model": model, **{k: p.get(k, 0.0) for k in ("k1", "k2", "p1", "p2")}}
    return K, dist


def _missing_points_lines(images_txt: Path) -> bool:
    """True for an images.txt that leaves out the POINTS2D line after every image line (some
    converters write only the image lines). COLMAP's reader takes every second line as the
    previous image's points, so such a file would load half its images, silently."""
    lines = [ln.split() for ln in images_txt.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    def is_image_line(f: list[str]) -> bool:
        return len(f) == 10 and f[0].isdigit() and f[8].isdigit() and "." in f[9]
    return len(lines) >= 2 and all(is_image_line(f) for f in lines)


def _load_reconstruction(model_dir: Path):  # -> pycolmap.Reconstruction (imported lazily: heavy)
    images_txt = model_dir / "images.txt"
    if images_txt.is_file() and not (model_dir / "images.bin").is_file() and _missing_points_lines(images_txt):
        import shutil
        import tempfile

        # Read a copy with the empty POINTS2D lines put back, rather than half the images.
        tmp = Path(tempfile.mkdtemp(prefix="recon-colmap-"))
        for name in ("cameras.txt", "points3D.txt"):
            if (model_dir / name).is_file():
                shutil.copy(model_dir / name, tmp / name)
        body = [ln for ln in images_txt.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        (tmp / "images.txt").write_text("".join(f"{ln}\n\n" for ln in body))
        try:
            return _read_model(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return _read_model(model_dir)


def _read_model(model_dir: Path):
    import pycolmap

    try:
        return pycolmap.Reconstruction(str(model_dir))
    except Exception as e:  # pycolmap raises ValueError/RuntimeError with a C++ file:line prefix
        msg = str(e).split("] ", 1)[-1].splitlines()[0]
        raise ReconError(f"cannot read the COLMAP model: {msg}", model_dir) from None


def _images_folder(root: Path, model_dir: Path, downscale: float) -> tuple[Path, float]:
    """(folder with the images, downscale still to apply). Prefers a pre-shrunk `images_N`."""
    bases = [root, model_dir.parent, model_dir.parent.parent]
    if float(downscale).is_integer() and downscale > 1:
        for b in bases:
            if (b / f"images_{int(downscale)}").is_dir():
                return b / f"images_{int(downscale)}", 1
    for b in bases:
        if (b / "images").is_dir():
            return b / "images", downscale
    raise ReconError("no images/ folder next to the COLMAP model", root)


def _mask_file(root: Path, image_name: str) -> Path:
    masks = root / "masks"
    for cand in (masks / f"{image_name}.png", masks / Path(image_name).with_suffix(".png")):
        if cand.is_file():
            return cand
    return masks / Path(image_name).with_suffix(".png")


def read_colmap(
    path: str | Path,
    *,
    downscale: float = 1,
    max_size: int | None = None,
    with_masks: bool | None = None,
    indices: Sequence[int] | None = None,
) -> Scene:
    """Read a COLMAP dataset (see the module docstring for the layout) into a Scene.

    Only registered images (with a pose) become views. Points and their colours come from
    points3D. meta: "format", "model_dir", "distortion" (per view name, when the model has any),
    "image_files" (view name → path).
    """
    path = Path(path)
    model_dir = find_colmap_model(path)
    if model_dir is None:
        raise ReconError("no COLMAP model (cameras/images .txt or .bin) found here or in sparse/0", path)
    root = path if path != model_dir else model_dir.parent.parent
    rec = _load_reconstruction(model_dir)
    images = sorted((im for im in rec.images.values() if im.has_pose), key=lambda im: im.name)
    if not images:
        raise ReconError("the COLMAP model has no registered images", model_dir)
    img_dir, rest = _images_folder(root, model_dir, downscale)
    cam_file = next((model_dir / f"cameras.{e}" for e in ("txt", "bin") if (model_dir / f"cameras.{e}").is_file()))

    # Index = position in the image folder's name order, so that an unregistered photo does not
    # shift the indices of the others (the LLFF protocol counts that way too).
    listed = {p.name for p in img_dir.iterdir() if is_image_file(p)} | {im.name for im in images}
    position = {n: i for i, n in enumerate(sorted(listed))}
    specs, distortion, files = [], {}, {}
    for im in images:
        idx = position[im.name]
        cam = rec.cameras[im.camera_id]
        K, dist = _intrinsics(cam.model.name, np.asarray(cam.params), cam_file, im.camera_id)
        w2c = np.eye(4)
        w2c[:3] = im.cam_from_world().matrix()
        name = Path(im.name).stem
        image_path = img_dir / im.name
        if not image_path.is_file():
            raise ReconError(f"image {im.name!r} of the COLMAP model is missing from {img_dir}", image_path)
        specs.append(ImageSpec(name, idx, Camera(K, w2c, cam.width, cam.height), image_path, _mask_file(root, im.name)))
        files[name] = str(image_path)
        if dist is not None:
            distortion[name] = dist

    specs = select(specs, indices, path)
    views = load_views(specs, downscale=rest, max_size=max_size, with_masks=with_masks)
    pts = [rec.points3D[i] for i in sorted(rec.points3D)]  # id order: deterministic, survives a round trip
    points = np.array([p.xyz for p in pts], dtype=np.float64).reshape(-1, 3)
    colors = np.array([p.color for p in pts], dtype=np.float32).reshape(-1, 3) / 255.0
    meta = {"format": "colmap", "model_dir": str(model_dir), "image_files": files}
    if distortion:
        meta["distortion"] = {v.name: distortion[v.name] for v in views if v.name in distortion}
    return Scene(views=views, points=points if len(points) else None, point_colors=colors if len(points) else None,
                 source=str(path), meta=meta)


def _camera_line(camera: Camera, dist: dict | None) -> tuple[str, tuple[float, ...]]:
    """(model, params) for a Camera: PINHOLE, or OPENCV when distortion is known."""
    K = camera.K
    pinhole = (K[0, 0], K[1, 1], K[0, 2], K[1, 2])
    if dist is None or not any(dist.get(k, 0.0) for k in ("k1", "k2", "p1", "p2")):
        return "PINHOLE", pinhole
    return "OPENCV", pinhole + tuple(float(dist.get(k, 0.0)) for k in ("k1", "k2", "p1", "p2"))


def write_colmap_text(
    model_dir: str | Path,
    cameras: Sequence[tuple[str, Camera]],
    *,
    points: np.ndarray | None = None,
    point_colors: np.ndarray | None = None,
    image_names: Mapping[str, str] | None = None,
    distortion: Mapping[str, dict] | None = None,
) -> Path:
    """Write `model_dir/{cameras,images,points3D}.txt` for (view name, Camera) pairs; return model_dir.

    Cameras with equal intrinsics and size share one COLMAP camera: PINHOLE, or OPENCV where
    `distortion[name]` has coefficients (k1 k2 p1 p2). Image ids follow the order given. Images carry
    no 2D observations and points no tracks (both legal in COLMAP's text format). Image file names:
    `image_names[name]`, else NAME.png. Points [P,3] with colours [P,3] in [0,1] (grey if None).
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    image_names, distortion = image_names or {}, distortion or {}
    cam_ids: dict[tuple, int] = {}
    cam_lines, img_lines = [], []
    for i, (name, cam) in enumerate(cameras, start=1):
        model, params = _camera_line(cam, distortion.get(name))
        key = (model, cam.width, cam.height, *np.round(params, 9))
        if key not in cam_ids:
            cam_ids[key] = len(cam_ids) + 1
            values = " ".join(f"{p:.17g}" for p in params)
            cam_lines.append(f"{cam_ids[key]} {model} {cam.width} {cam.height} {values}")
        R, t = cam.world_to_cam[:3, :3], cam.world_to_cam[:3, 3]
        q = Rotation.from_matrix(R).as_quat(scalar_first=True)  # COLMAP stores QW QX QY QZ
        fname = image_names.get(name, f"{name}.png")
        # The empty second line is the (absent) list of 2D observations.
        img_lines.append(f"{i} " + " ".join(f"{x:.17g}" for x in (*q, *t)) + f" {cam_ids[key]} {fname}\n\n")

    header = "# written by recon\n"
    atomic_write_text(model_dir / "cameras.txt",
                      header + "# CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n" + "".join(line + "\n" for line in cam_lines))
    atomic_write_text(model_dir / "images.txt",
                      header + "# IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n"
                      "#   POINTS2D[] as (X, Y, POINT3D_ID)\n" + "".join(img_lines))
    pts = np.zeros((0, 3)) if points is None else np.asarray(points, dtype=np.float64).reshape(-1, 3)
    cols = np.full((len(pts), 3), 0.5) if point_colors is None else np.asarray(point_colors).reshape(-1, 3)
    rgb = np.clip(np.round(cols * 255), 0, 255).astype(int)
    rows = "".join(f"{j} {p[0]:.17g} {p[1]:.17g} {p[2]:.17g} {c[0]} {c[1]} {c[2]} 0\n"
                   for j, (p, c) in enumerate(zip(pts, rgb), start=1))
    atomic_write_text(model_dir / "points3D.txt",
                      header + "# POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n" + rows)
    return model_dir


def write_colmap(scene: Scene, folder: str | Path, *, save_images: bool = False) -> Path:
    """Write `scene` as a COLMAP dataset: `folder/sparse/0/*.txt` (see `write_colmap_text`), with
    distortion from scene.meta["distortion"] and image names from meta["image_files"] (else
    NAME.png). `save_images=True` also writes `folder/images/NAME.png` (and `folder/masks/NAME.png`)
    and names those, so the folder reads back with `read_colmap`. Returns the model folder."""
    folder = Path(folder)
    files = scene.meta.get("image_files", {})
    names = {v.name: f"{v.name}.png" if save_images or v.name not in files else Path(files[v.name]).name
             for v in scene.views}
    model_dir = write_colmap_text(
        folder / "sparse" / "0",
        [(v.name, v.camera) for v in scene.views],
        points=scene.points,
        point_colors=scene.point_colors,
        image_names=names,
        distortion=scene.meta.get("distortion"),
    )
    if save_images:
        _save_pngs(scene, folder)
    return model_dir


def _save_pngs(scene: Scene, folder: Path) -> None:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for v in scene.views:
        save_image(folder / "images" / f"{v.name}.png", v.image)
        if v.mask is not None:
            (folder / "masks").mkdir(exist_ok=True)
            save_mask(folder / "masks" / f"{v.name}.png", v.mask)
