"""Image and mask reading shared by every reader, and the 8-bit image writers.

Conventions:
- Images come back as float32 RGB [H, W, 3] in [0, 1] with the EXIF orientation applied, so the
  array is what a person sees. Grayscale is replicated to RGB; 16-bit grayscale keeps its full
  precision; 16-bit RGB PNGs are read by Pillow at 8-bit precision (Pillow has no 16-bit RGB mode).
- Alpha, when a file has it, is returned separately (float32 [H, W]); `load_image` composites
  RGBA over a background colour (white by default, as nerfstudio does for Blender scenes).
- Masks come back as bool [H, W], True on the object.
- Resizing uses an area filter (Pillow's BOX filter on float data), so an integer factor is an
  exact block average — the filter the DTU and LLFF protocols prescribe.

Readers describe each view with an `ImageSpec` (camera at some reference resolution, image path,
optional mask path) and call `load_views`, which rescales the camera to the pixels it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from recon.cache import atomic_write_bytes
from recon.errors import ReconError
from recon.scene import Camera, View

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


def is_image_file(path: Path) -> bool:
    """True for a visible file with a known image extension (case-insensitive)."""
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


MAX_PIXELS = 2 * 89_478_485
"""Larger images are refused: Pillow's own decompression-bomb limit (a 179-megapixel photo would
take over 2 GB as float32, and a crafted file could claim far more)."""
REDUCE_ABOVE = 24_000_000
"""Images with more pixels are shrunk by an integer box filter while still 8-bit, before the
float conversion, whenever they are loaded at half their size or less (memory stays bounded)."""


def _open(path: Path, oriented: bool = True, size: tuple[int, int] | None = None) -> Image.Image:
    """Open and fully decode an image (EXIF orientation applied if `oriented`), or raise ReconError.
    With `size` (the oriented size it will be resized to), a large image is decoded smaller: JPEG
    through its DCT scaling (`draft`), others by an 8-bit box reduction, never below 2× `size`."""
    if not path.is_file():
        raise ReconError("image file not found", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked here
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise ReconError(f"image is {w}x{h} ({w * h / 1e6:.0f} megapixels), over the limit of "
                                     f"{MAX_PIXELS / 1e6:.0f}: downscale it first", path)
                swap = oriented and im.getexif().get(0x0112, 1) in (5, 6, 7, 8)
                stored = None if size is None else ((size[1], size[0]) if swap else tuple(size))
                if stored is not None and im.format == "JPEG" and 2 * stored[0] <= w and 2 * stored[1] <= h:
                    im.draft(im.mode, (2 * stored[0], 2 * stored[1]))
                im.load()  # decode now: a truncated file only fails here
                if stored is not None and im.width * im.height > REDUCE_ABOVE:
                    f = min(im.width // (2 * stored[0]), im.height // (2 * stored[1]))
                    if f >= 2:
                        im = im.reduce(f)
                return ImageOps.exif_transpose(im) if oriented else im.copy()
    except Image.DecompressionBombError:
        raise ReconError(f"image is over the limit of {MAX_PIXELS / 1e6:.0f} megapixels: downscale it first",
                         path) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ReconError(f"cannot read image: {_reason(e)}", path) from None


def _reason(e: Exception) -> str:
    """One line saying why Pillow gave up (its messages sometimes span lines or name the path)."""
    text = str(e).splitlines()[0] if str(e) else ""
    if isinstance(e, UnidentifiedImageError) or "cannot identify" in text:
        return "not an image file Pillow can decode (corrupt or unsupported format)"
    return f"{type(e).__name__}: {text}" if text else f"{type(e).__name__} (corrupt or truncated file)"


def image_size(path: str | Path, *, oriented: bool = True) -> tuple[int, int]:
    """(width, height) after EXIF orientation (as stored if not `oriented`), reading only the header."""
    path = Path(path)
    if not path.is_file():
        raise ReconError("image file not found", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            w, h = im.size
            if not oriented:
                return w, h
            # Orientations 5-8 swap the axes. A PNG's getexif() decodes the whole file to look
            # for an eXIf chunk after the pixels; the header's chunk (the usual place) suffices.
            if im.format == "PNG":
                exif = Image.Exif()
                if im.info.get("exif"):
                    exif.load(im.info["exif"])
            else:
                exif = im.getexif()
            if exif.get(0x0112, 1) in (5, 6, 7, 8):
                w, h = h, w
            return w, h
    except Image.DecompressionBombError:
        raise ReconError(f"image is over the limit of {MAX_PIXELS / 1e6:.0f} megapixels: downscale it first",
                         path) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ReconError(f"cannot read image: {_reason(e)}", path) from None


def _to_float(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """PIL image of any common mode → (float32 [H,W,C] with C in {1, 3}, alpha [H,W] or None)."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return (np.asarray(im, dtype=np.float32) / 65535.0)[..., None], None
    if mode == "I":
        # 32-bit int containers hold 16-bit data in practice (Pillow's PNG/TIFF decoders).
        a = np.asarray(im, dtype=np.float32)
        return (a / (65535.0 if a.max() > 255 else 255.0))[..., None], None
    if mode == "F":
        return np.clip(np.asarray(im, dtype=np.float32), 0, 1)[..., None], None
    if mode == "1":
        return np.asarray(im, dtype=np.float32)[..., None], None
    alpha = None
    if mode in ("LA", "La", "PA") or (mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
    elif mode not in ("L", "RGB", "RGBA"):
        im = im.convert("RGB")  # P, CMYK, YCbCr, RGBX, ...
    a = np.asarray(im, dtype=np.float32) / 255.0
    if im.mode == "RGBA":
        a, alpha = a[..., :3], a[..., 3]
    elif a.ndim == 2:
        a = a[..., None]
    return a, alpha


def resize_area(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize float [H,W] or [H,W,C] to size=(width, height) with an area (box) filter."""
    h, w = array.shape[:2]
    if (w, h) == tuple(size):
        return array
    if w % size[0] == 0 and h % size[1] == 0 and w // size[0] == h // size[1]:
        f = w // size[0]  # exact integer factor: a block mean, no resampling arithmetic
        rest = array.shape[2:]
        # Two single-axis sums: ~3x faster than one mean over axes (1, 3) on a 5-D view.
        rows = array.reshape(size[1], f, w, *rest).sum(axis=1, dtype=np.float32)
        return rows.reshape(size[1], size[0], f, *rest).sum(axis=2) / np.float32(f * f)
    channels = array[..., None] if array.ndim == 2 else array
    out = [
        np.asarray(Image.fromarray(np.ascontiguousarray(channels[..., c], dtype=np.float32)).resize(size, Image.BOX))
        for c in range(channels.shape[2])
    ]
    res = np.stack(out, axis=-1)
    return res[..., 0] if array.ndim == 2 else res


def target_size(width: int, height: int, downscale: float = 1, max_size: int | None = None) -> tuple[int, int]:
    """The size an image of width x height is loaded at: divided by `downscale` (rounded), then
    shrunk (aspect kept) so that its longer side is at most `max_size`."""
    if downscale <= 0:
        raise ReconError(f"downscale must be positive, got {downscale}")
    w, h = max(1, round(width / downscale)), max(1, round(height / downscale))
    if max_size is not None and max(w, h) > max_size:
        s = max_size / max(w, h)
        w, h = max(1, round(w * s)), max(1, round(h * s))
    return w, h


def read_image(
    path: str | Path, size: tuple[int, int] | None = None, *, oriented: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """(RGB float32 [H,W,3], alpha float32 [H,W] or None), resized to size=(w, h) if given.
    oriented=False ignores the EXIF orientation (for cameras calibrated on the stored pixels)."""
    path = Path(path)
    rgb, alpha = _to_float(_open(path, oriented, size))
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    if size is not None:
        rgb = resize_area(rgb, size)
        alpha = resize_area(alpha, size) if alpha is not None else None
    return np.ascontiguousarray(rgb, dtype=np.float32), alpha


def load_image(
    path: str | Path,
    size: tuple[int, int] | None = None,
    *,
    factor: int = 1,
    background: Sequence[float] = (1.0, 1.0, 1.0),
) -> np.ndarray:
    """Float32 RGB [H,W,3] in [0,1]. `size`=(w, h) or an integer `factor` picks the output size;
    an alpha channel is composited over `background`."""
    path = Path(path)
    if size is None and factor != 1:
        size = target_size(*image_size(path), downscale=factor)
    rgb, alpha = read_image(path, size)
    if alpha is not None:
        bg = np.asarray(background, dtype=np.float32)
        rgb = rgb * alpha[..., None] + bg * (1.0 - alpha[..., None])
    return rgb.astype(np.float32)


def load_mask(
    path: str | Path, size: tuple[int, int] | None = None, *, threshold: float = 0.5, oriented: bool = True
) -> np.ndarray:
    """Bool [H,W], True on the object. Any non-black colour counts as object (DTU masks are RGB);
    a file with an alpha channel uses the alpha. Resized by area, then thresholded."""
    im = _open(Path(path), oriented)
    if im.mode in ("L", "RGB"):
        # Channel max on the 8-bit data: 3x less float work than converting every channel.
        a = np.asarray(im)
        m = (a.max(axis=2) if a.ndim == 3 else a).astype(np.float32) / 255.0
    else:
        rgb, alpha = _to_float(im)
        m = alpha if alpha is not None else rgb.max(axis=2)
    if size is not None:
        m = resize_area(m, size)
    return m > threshold


@dataclass
class ImageSpec:
    """What a reader knows about one view before any pixels are read.

    `camera` may be at any resolution with the image's aspect ratio (e.g. LLFF's full-resolution
    hwf for an `images_8` file): `load_views` rescales it to the pixels it returns.
    `alpha_mask`: use the image's alpha channel as the mask (Blender/nerfstudio RGBA frames).
    """

    name: str
    index: int
    camera: Camera
    image_path: Path
    mask_path: Path | None = None
    alpha_mask: bool = False


def _aspect_matches(camera: Camera, width: int, height: int) -> bool:
    # A downscaled copy rounds each side to whole pixels, so allow some slack per side.
    sx, sy = width / camera.width, height / camera.height
    return abs(sx * camera.height - height) <= 2.0 and abs(sy * camera.width - width) <= 2.0


def _fit_camera(camera: Camera, width: int, height: int, path: Path) -> Camera:
    """The camera for the file's native size; refuse a file whose aspect ratio does not match."""
    if (camera.width, camera.height) == (width, height):
        return camera
    if not _aspect_matches(camera, width, height):
        raise ReconError(
            f"image is {width}x{height} but its camera is {camera.width}x{camera.height} "
            "(different aspect ratio: wrong image for this camera?)",
            path,
        )
    return camera.resized(width, height)


def load_views(
    specs: Sequence[ImageSpec],
    *,
    downscale: float = 1,
    max_size: int | None = None,
    with_masks: bool | None = None,
    background: Sequence[float] = (1.0, 1.0, 1.0),
) -> list[View]:
    """Read every spec's image (and mask) at the size `target_size` gives, camera scaled to match.

    with_masks: True = every view must have a mask (ReconError naming the first missing file);
    False = ignore masks; None = load masks when every view has one.
    """
    has_mask = [s.alpha_mask or (s.mask_path is not None and s.mask_path.is_file()) for s in specs]
    if with_masks:
        for s, ok in zip(specs, has_mask):
            if not ok:
                where = s.mask_path if s.mask_path is not None else s.image_path
                raise ReconError("masks were requested but this view has no mask file", where)
    use_masks = bool(specs) and (with_masks or (with_masks is None and all(has_mask)))
    bg = np.asarray(background, dtype=np.float32)

    def load(s: ImageSpec) -> View:
        w0, h0 = image_size(s.image_path)
        # COLMAP and most calibration tools see the stored pixels, ignoring EXIF rotation: when
        # only the stored orientation fits the camera, read the file that way.
        oriented = True
        if not _aspect_matches(s.camera, w0, h0) and _aspect_matches(s.camera, h0, w0):
            stored = image_size(s.image_path, oriented=False)
            if stored == (h0, w0):
                oriented, (w0, h0) = False, stored
        cam = _fit_camera(s.camera, w0, h0, s.image_path)
        size = target_size(w0, h0, downscale, max_size)
        rgb, alpha = read_image(s.image_path, size, oriented=oriented)
        mask = None
        if alpha is not None:
            rgb = (rgb * alpha[..., None] + bg * (1.0 - alpha[..., None])).astype(np.float32)
        if use_masks:
            if s.alpha_mask:
                if alpha is None:
                    raise ReconError("masks were requested from the alpha channel, but the image has none",
                                     s.image_path)
                mask = alpha > 0.5
            else:
                assert s.mask_path is not None
                mask = load_mask(s.mask_path, size, oriented=oriented)
        return View(name=s.name, index=s.index, camera=cam.resized(*size), image=rgb, mask=mask)

    # Serial on purpose: a thread pool gained nothing measurable on the shared 2-core machine.
    return [load(s) for s in specs]


def select(specs: Sequence[ImageSpec], indices: Sequence[int] | None, source: str | Path) -> list[ImageSpec]:
    """The specs whose dataset index is in `indices` (in that order); all when None."""
    if indices is None:
        return list(specs)
    by_index = {s.index: s for s in specs}
    missing = [i for i in indices if i not in by_index]
    if missing:
        raise ReconError(f"no views with index {missing} (the dataset has {sorted(by_index)[:5]}...)", source)
    return [by_index[i] for i in indices]


def _save(path: str | Path, im: Image.Image) -> None:
    path = Path(path)
    buf = io.BytesIO()
    im.save(buf, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
    atomic_write_bytes(path, buf.getvalue())


def save_image(path: str | Path, rgb: np.ndarray) -> None:
    """Atomically write float RGB [H,W,3] in [0,1] as an 8-bit image (format from the suffix)."""
    _save(path, Image.fromarray(np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)))


def write_png(path: Path, image: np.ndarray) -> None:
    """Atomically write a float [H,W,3] image in [0,1] as an 8-bit PNG (renders, contact sheets,
    repair pictures). It rounds halves up where `save_image` rounds them to even: the two are kept
    apart so that no file either writes changes by a level."""
    data = iio.imwrite("<bytes>", (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), extension=".png")
    atomic_write_bytes(path, data)


def contact_sheet(rows: list[np.ndarray], height: int) -> np.ndarray:
    """Float RGB rows [H,W,3] in [0,1], each shrunk to `height` pixels (box filter) and stacked,
    cut to the narrowest: one picture of every view for a person to look at."""
    small = []
    for row in rows:
        h, w = row.shape[:2]
        im = Image.fromarray((np.clip(row, 0, 1) * 255 + 0.5).astype(np.uint8))
        small.append(np.asarray(im.resize((max(1, round(w * height / h)), height), Image.BOX), np.float32) / 255)
    width = min(r.shape[1] for r in small)
    return np.concatenate([r[:, :width] for r in small], axis=0)


def save_mask(path: str | Path, mask: np.ndarray) -> None:
    """Atomically write a bool mask [H,W] as an 8-bit grayscale image (255 on the object)."""
    _save(path, Image.fromarray(mask.astype(np.uint8) * 255))
