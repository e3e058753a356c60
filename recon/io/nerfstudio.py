"""nerfstudio / instant-ngp / Blender `transforms.json`: read and write.

Poses: `transform_matrix` is camera-to-world in OpenGL axes (x right, y up, z back). OpenCV flips
y and z: c2w_cv = c2w_gl @ diag(1, -1, -1, 1), and world_to_cam is its inverse. The world frame
is kept as the file has it (nerfstudio's `applied_transform` is recorded in meta, not undone).

Intrinsics: keys on a frame override the same keys at the top level (nerfstudio's per-frame
cameras). Focal: `fl_x`/`fl_y`, else Blender's `camera_angle_x` (horizontal FOV, radians; and
`camera_angle_y` if present, else fl_y = fl_x). `cx`/`cy` default to the image centre; `w`/`h` to
the image file's size. Distortion (k1 k2 k3 k4 p1 p2) is kept out of K, in
meta["distortion"][view.name]; fisheye and equirectangular camera models are refused.

Images: `file_path` relative to the json's folder (Blender omits the ".png"). RGBA frames are
composited over white (meta["background"]) and their alpha is the mask; otherwise `mask_path`.
View.index is the frame's position in the file; View.name the file stem.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from recon.cache import atomic_write_text
from recon.errors import ReconError
from recon.io.images import ImageSpec, load_views, save_image, save_mask, select
from recon.scene import Camera, Scene

GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])  # flips y and z; its own inverse
_DIST_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


def opengl_c2w_to_w2c(c2w_gl: np.ndarray) -> np.ndarray:
    """OpenGL camera-to-world [4,4] → OpenCV world-to-camera [4,4]."""
    return np.linalg.inv(np.asarray(c2w_gl, dtype=np.float64) @ GL_TO_CV)


def w2c_to_opengl_c2w(world_to_cam: np.ndarray) -> np.ndarray:
    """OpenCV world-to-camera [4,4] → OpenGL camera-to-world [4,4] (what transforms.json stores)."""
    return np.linalg.inv(world_to_cam) @ GL_TO_CV


def find_transforms(folder: Path) -> Path | None:
    """transforms.json, else Blender's transforms_train.json, in `folder`."""
    return next((folder / n for n in ("transforms.json", "transforms_train.json") if (folder / n).is_file()), None)


def _resolve_image(base: Path, file_path: str, downscale: float) -> tuple[Path, float]:
    """(image file, downscale left). Adds Blender's missing ".png"; uses nerfstudio's pre-shrunk
    images_N/ copy (same relative name) when the downscale asks for it and it exists."""
    p = base / file_path
    if not p.suffix and not p.is_file() and p.with_suffix(".png").is_file():
        p = p.with_suffix(".png")
    parts = Path(file_path).parts
    if float(downscale).is_integer() and downscale > 1 and parts and parts[0] == "images":
        small = base / f"images_{int(downscale)}" / Path(*parts[1:])
        if small.is_file():
            return small, 1
    return p, downscale


def _has_alpha(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            return im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info
    except Exception:
        return False  # the loader reports unreadable files with a proper message


def _intrinsics(get, image: Path, where: Path) -> tuple[np.ndarray, int, int, dict | None]:
    """(K, w, h, distortion or None) from the merged frame/top-level keys; `image` is the
    full-size file (the focal belongs to its size when w/h are not given)."""
    model = str(get("camera_model", "OPENCV")).upper()
    if model not in ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE"):
        raise ReconError(f"camera_model {model} is not supported (recon reads pinhole/OPENCV cameras)", where)
    w, h = get("w"), get("h")
    if w is None or h is None:
        from recon.io.images import image_size

        w, h = image_size(image)
    w, h = int(round(float(w))), int(round(float(h)))
    fx, fy = get("fl_x"), get("fl_y")
    if fx is None:
        angle_x = get("camera_angle_x")
        if angle_x is None:
            raise ReconError("no focal length: neither fl_x nor camera_angle_x is given", where)
        fx = 0.5 * w / math.tan(0.5 * float(angle_x))
    if fy is None:
        angle_y = get("camera_angle_y")
        fy = 0.5 * h / math.tan(0.5 * float(angle_y)) if angle_y is not None and get("fl_x") is None else fx
    cx, cy = float(get("cx", w / 2)), float(get("cy", h / 2))
    K = np.array([[float(fx), 0, cx], [0, float(fy), cy], [0, 0, 1]])
    coeffs = {k: float(get(k, 0.0)) for k in _DIST_KEYS}
    dist = {"model": "OPENCV", **coeffs} if any(coeffs.values()) else None
    return K, w, h, dist


def read_nerfstudio(
    path: str | Path,
    *,
    downscale: float = 1,
    max_size: int | None = None,
    with_masks: bool | None = None,
    indices: Sequence[int] | None = None,
) -> Scene:
    """Read a transforms.json (or a folder holding one, or Blender's transforms_train.json).

    meta: "format", "distortion" (when any), "background" (RGBA frames), "applied_transform",
    "image_files".
    """
    path = Path(path)
    json_file = path if path.is_file() else find_transforms(path)
    if json_file is None:
        raise ReconError("no transforms.json found", path)
    try:
        meta_in = json.loads(json_file.read_text())
        frames = meta_in["frames"]
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ReconError(f"not valid JSON ({e})", json_file) from None
    except (KeyError, TypeError):
        raise ReconError("no 'frames' list", json_file) from None
    if not frames:
        raise ReconError("'frames' is empty", json_file)
    base = json_file.parent

    specs, rests, distortion, alpha_seen = [], set(), {}, False
    for i, fr in enumerate(frames):
        def get(key, default=None, fr=fr):
            return fr.get(key, meta_in.get(key, default))

        if "file_path" not in fr or "transform_matrix" not in fr:
            raise ReconError(f"frame {i} lacks file_path or transform_matrix", json_file)
        image, rest = _resolve_image(base, fr["file_path"], downscale)
        if not image.is_file():
            raise ReconError(f"image of frame {i} ({fr['file_path']}) not found", image)
        K, w, h, dist = _intrinsics(get, _resolve_image(base, fr["file_path"], 1)[0], json_file)
        try:
            c2w = np.asarray(fr["transform_matrix"], dtype=np.float64).reshape(4, 4)
        except ValueError:
            raise ReconError(f"frame {i}: transform_matrix is not 4x4", json_file) from None
        alpha = _has_alpha(image)
        alpha_seen |= alpha
        mask = base / fr["mask_path"] if "mask_path" in fr else None
        specs.append(ImageSpec(image.stem, i, Camera(K, opengl_c2w_to_w2c(c2w), w, h), image, mask,
                               alpha_mask=alpha and mask is None))
        rests.add(rest)
        if dist is not None:
            distortion[image.stem] = dist
    if len(rests) > 1:
        # Only some frames have a pre-shrunk copy: load every original, shrunk the same way.
        specs = [replace(s, image_path=_resolve_image(base, frames[s.index]["file_path"], 1)[0]) for s in specs]
        rest = downscale
    else:
        rest = rests.pop()
    chosen = select(specs, indices, path)
    views = load_views(chosen, downscale=rest, max_size=max_size, with_masks=with_masks)
    meta: dict = {"format": "nerfstudio", "image_files": {s.name: str(s.image_path) for s in specs}}
    if distortion:
        meta["distortion"] = {v.name: distortion[v.name] for v in views if v.name in distortion}
    if alpha_seen:
        meta["background"] = [1.0, 1.0, 1.0]
    if "applied_transform" in meta_in:
        meta["applied_transform"] = meta_in["applied_transform"]
    points, colors = _read_points(base, meta_in.get("ply_file_path"))
    return Scene(views=views, points=points, point_colors=colors, source=str(path), meta=meta)


def _read_points(base: Path, ply_name: str | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Points and colours of nerfstudio's sparse_pc.ply, when the json names one."""
    if not ply_name or not (base / ply_name).is_file():
        return None, None
    from plyfile import PlyData

    try:
        v = PlyData.read(str(base / ply_name))["vertex"]
    except Exception as e:
        raise ReconError(f"cannot read the point cloud ({type(e).__name__})", base / ply_name) from None
    pts = np.stack([v["x"], v["y"], v["z"]], axis=1).astype(np.float64)
    names = v.data.dtype.names
    if all(c in names for c in ("red", "green", "blue")):
        cols = np.stack([v["red"], v["green"], v["blue"]], axis=1).astype(np.float32) / 255.0
    else:
        cols = np.full((len(pts), 3), 0.5, dtype=np.float32)
    return pts, cols


def _intrinsic_keys(cam: Camera, dist: Mapping | None) -> dict:
    K = cam.K
    keys = {"w": cam.width, "h": cam.height, "fl_x": K[0, 0], "fl_y": K[1, 1], "cx": K[0, 2], "cy": K[1, 2]}
    for k in ("k1", "k2", "k3", "k4", "p1", "p2"):
        keys[k] = float((dist or {}).get(k, 0.0))
    return {k: (float(v) if k not in ("w", "h") else int(v)) for k, v in keys.items()}


def write_transforms(
    path: str | Path,
    cameras: Sequence[tuple[str, Camera]],
    *,
    image_paths: Mapping[str, str] | None = None,
    mask_paths: Mapping[str, str] | None = None,
    distortion: Mapping[str, Mapping] | None = None,
    ply_file_path: str | None = None,
) -> Path:
    """Write a nerfstudio transforms.json at `path` for (view name, Camera) pairs; return the path.

    As nerfstudio's ns-process-data does: camera_model OPENCV; intrinsics (w h fl_x fl_y cx cy k1 k2
    k3 k4 p1 p2) at the top level when every camera shares them, else on each frame; frames with
    `file_path` (default images/NAME.png, relative to the json) and an OpenGL camera-to-world
    `transform_matrix`; `mask_path` and `ply_file_path` when given.
    """
    path = Path(path)
    distortion = distortion or {}
    intr = [_intrinsic_keys(cam, distortion.get(name)) for name, cam in cameras]
    shared = len({tuple(sorted(d.items())) for d in intr}) == 1
    out: dict = {"camera_model": "OPENCV"}
    if shared and intr:
        out.update(intr[0])
    frames = []
    for (name, cam), d in zip(cameras, intr):
        fr = {"file_path": (image_paths or {}).get(name, f"images/{name}.png"),
              "transform_matrix": w2c_to_opengl_c2w(cam.world_to_cam).tolist()}
        if not shared:
            fr.update(d)
        if mask_paths and name in mask_paths:
            fr["mask_path"] = mask_paths[name]
        frames.append(fr)
    out["frames"] = frames
    if ply_file_path:
        out["ply_file_path"] = ply_file_path
    atomic_write_text(path, json.dumps(out, indent=2))
    return path


def write_nerfstudio(scene: Scene, folder: str | Path, *, save_images: bool = True) -> Path:
    """Write `scene` as a nerfstudio dataset: folder/transforms.json, images/NAME.png,
    masks/NAME.png (views with masks) and sparse_pc.ply (when the scene has points). With
    save_images=False the frames point at the files in meta["image_files"]. Returns the json path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = scene.meta.get("image_files", {})
    image_paths, mask_paths = {}, {}
    for v in scene.views:
        if save_images:
            (folder / "images").mkdir(exist_ok=True)
            save_image(folder / "images" / f"{v.name}.png", v.image)
            image_paths[v.name] = f"images/{v.name}.png"
            if v.mask is not None:
                (folder / "masks").mkdir(exist_ok=True)
                save_mask(folder / "masks" / f"{v.name}.png", v.mask)
                mask_paths[v.name] = f"masks/{v.name}.png"
        elif v.name in files:
            image_paths[v.name] = str(Path(files[v.name]).resolve())
    ply = None
    if scene.points is not None and len(scene.points):
        _write_points(folder / "sparse_pc.ply", scene.points, scene.point_colors)
        ply = "sparse_pc.ply"
    return write_transforms(folder / "transforms.json", [(v.name, v.camera) for v in scene.views],
                            image_paths=image_paths, mask_paths=mask_paths,
                            distortion=scene.meta.get("distortion"), ply_file_path=ply)


def _write_points(path: Path, points: np.ndarray, colors: np.ndarray | None) -> None:
    from plyfile import PlyData, PlyElement

    cols = np.full((len(points), 3), 0.5) if colors is None else np.asarray(colors)
    fields = [("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    v = np.empty(len(points), dtype=fields)
    for i, k in enumerate("xyz"):
        v[k] = points[:, i]
    for i, k in enumerate(("red", "green", "blue")):
        v[k] = np.clip(np.round(cols[:, i] * 255), 0, 255)
    PlyData([PlyElement.describe(v, "vertex")]).write(str(path))
