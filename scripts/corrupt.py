"""Corrupted copies of a posed benchmark scene: its training views get rain, snow, haze, lens drops
or pasted occluders; its test views stay clean (scripts/bench_filters.py).

    python scripts/corrupt.py --protocol llff --data ../shared/data/llff_fern --views 3 \\
        --kind occluders --seed 0 --out /tmp/fern_occluders
    python scripts/corrupt.py ... --kind haze --depth-from RUN/splat.ply   # depth of the clean splat

Kinds (each deterministic in --seed; sizes are fractions of the image, so any resolution gets the
same picture):
  rain       thin bright streaks, one wind direction per scene (±4° per streak), 1-2.5 px wide
             at 500 px, screen-blended; a new pattern in each view
  snow       soft bright flakes of log-normal size, some motion-blurred, in each view anew
  haze       I·t + A·(1-t), t = exp(-β·depth), depth rendered from a clean splat at the training
             cameras; β sets t = 0.45 at the median depth, airlight A a pale blue-grey
  drops      lens drops at the same image positions in every view: inside each, the scene
             flipped and blurred as a water drop refracts it, with a dark rim and a highlight
  occluders  people-like cut-outs (head, body, legs, arms) and solid shapes with a texture and
             shading, pasted into one training view (--occluder-views 1) or into every one at
             new places (--occluder-views all, the default)
  people     standing people whose clothes are the scene itself (the photo shifted under each
             silhouette), as when a crowd's colours match the place; photo consistency can
             explain such texture at some depth, so this is the hard occluder case
  mix        occluders + rain + drops together

The copy is the whole dataset folder with every file of a training image rewritten (all its
resolutions, e.g. LLFF's images/ and images_8/). OUT/corruption/NAME.png holds each corrupted
view's ground-truth corruption mask (white = corrupted) for scoring trust maps; no reader looks
there. OUT/corruption/manifest.json records the command, the kinds, the seed and the views.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("rain", "snow", "haze", "drops", "occluders", "people", "mix")
KIND_ID = {k: i for i, k in enumerate(KINDS)}


def _rng(seed: int, kind: str, view: int) -> np.random.Generator:
    """One stream per (seed, kind, view): a view's corruption does not depend on the others'."""
    return np.random.default_rng([seed, KIND_ID[kind], view])


def _screen(img: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """Screen blend of a brightness layer [H,W] (or [H,W,3]) in [0,1] over img [H,W,3]."""
    lay = layer[..., None] if layer.ndim == 2 else layer
    return 1 - (1 - img) * (1 - lay)


def _segment(shape: tuple[int, int], p0: np.ndarray, p1: np.ndarray, width: float) -> np.ndarray:
    """[H,W] anti-aliased coverage of a segment p0→p1 (x, y pixels) of the given width."""
    H, W = shape
    lo = np.floor(np.minimum(p0, p1) - width - 2).astype(int)
    hi = np.ceil(np.maximum(p0, p1) + width + 2).astype(int)
    x0, y0 = max(lo[0], 0), max(lo[1], 0)
    x1, y1 = min(hi[0], W), min(hi[1], H)
    out = np.zeros(shape, np.float32)
    if x1 <= x0 or y1 <= y0:
        return out
    yy, xx = np.mgrid[y0:y1, x0:x1] + 0.5
    d = p1 - p0
    t = np.clip(((xx - p0[0]) * d[0] + (yy - p0[1]) * d[1]) / max(d @ d, 1e-9), 0, 1)
    dist = np.hypot(xx - p0[0] - t * d[0], yy - p0[1] - t * d[1])
    out[y0:y1, x0:x1] = np.clip(width / 2 + 0.5 - dist, 0, 1)
    return out


def rain(img: np.ndarray, rng: np.random.Generator, scene_rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    H, W = img.shape[:2]
    s = W / 500
    angle = np.radians(90 + scene_rng.uniform(-20, 20))  # one wind for the scene
    layer = np.zeros((H, W), np.float32)
    for _ in range(int(0.0016 * H * W / s**2)):
        a = angle + np.radians(rng.normal(0, 4))
        length = rng.uniform(0.04, 0.12) * H
        c = rng.uniform([0, 0], [W, H])
        d = 0.5 * length * np.array([np.cos(a), np.sin(a)])
        streak = _segment((H, W), c - d, c + d, rng.uniform(1.0, 2.5) * s)
        layer = np.maximum(layer, rng.uniform(0.25, 0.55) * streak)
    layer = ndimage.gaussian_filter(layer, 0.6 * s)
    return _screen(img, layer), (layer > 0.05).astype(np.float32)


def snow(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    H, W = img.shape[:2]
    s = W / 500
    layer = np.zeros((H, W), np.float32)
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    for _ in range(int(0.0012 * H * W / s**2)):
        r = float(np.clip(rng.lognormal(np.log(1.6), 0.5), 0.7, 6.0)) * s
        c = rng.uniform([0, 0], [W, H])
        x0, x1 = int(max(c[0] - 4 * r - 8 * s, 0)), int(min(c[0] + 4 * r + 8 * s, W))
        y0, y1 = int(max(c[1] - 4 * r - 8 * s, 0)), int(min(c[1] + 4 * r + 8 * s, H))
        if x1 <= x0 or y1 <= y0:
            continue
        dx, dy = xx[y0:y1, x0:x1] - c[0], yy[y0:y1, x0:x1] - c[1]
        if rng.random() < 0.3:  # motion blur: a short fall during the exposure
            dy = dy - np.clip(dy, 0, rng.uniform(2, 8) * s)
        flake = np.exp(-(dx**2 + dy**2) / (2 * r**2))
        layer[y0:y1, x0:x1] = np.maximum(layer[y0:y1, x0:x1], rng.uniform(0.6, 0.95) * flake)
    out = img * (1 - layer[..., None]) + 0.96 * layer[..., None]
    return out.astype(np.float32), (layer > 0.08).astype(np.float32)


def haze(img: np.ndarray, depth: np.ndarray, t_median: float = 0.45,
         airlight: tuple[float, float, float] = (0.78, 0.80, 0.84)) -> tuple[np.ndarray, np.ndarray, float]:
    """(hazy image, 1 - t, β) for a depth map [H,W] (0 = unknown: the farthest depth)."""
    d = np.where(depth > 0, depth, depth.max() if (depth > 0).any() else 1.0)
    beta = -np.log(t_median) / float(np.median(d))
    t = np.exp(-beta * d)[..., None]
    out = img * t + np.asarray(airlight, np.float32) * (1 - t)
    return out.astype(np.float32), (1 - t[..., 0]).astype(np.float32), beta


def drops(img: np.ndarray, scene_rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Drops at positions drawn from the scene's stream only: the same pixels in every view."""
    H, W = img.shape[:2]
    blurred = np.stack([ndimage.gaussian_filter(img[..., c], 0.012 * W) for c in range(3)], -1)
    out, mask = img.copy(), np.zeros((H, W), np.float32)
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    for _ in range(int(scene_rng.integers(6, 10))):
        r = scene_rng.uniform(0.025, 0.06) * W
        c = scene_rng.uniform([0.1 * W, 0.1 * H], [0.9 * W, 0.9 * H])
        e = scene_rng.uniform(0.8, 1.2)  # a little elongated
        rho = np.hypot((xx - c[0]) / e, (yy - c[1]) * e) / r
        inside = np.clip((1 - rho) * r / 1.5, 0, 1)  # anti-aliased edge
        sel = inside > 0
        # The drop is a lens: the scene appears flipped and shrunk inside it.
        sx = np.clip(c[0] - (xx[sel] - c[0]) * 2.2, 0, W - 1).astype(int)
        sy = np.clip(c[1] - (yy[sel] - c[1]) * 2.2, 0, H - 1).astype(int)
        inner = blurred[sy, sx] * (1 - 0.45 * rho[sel, None] ** 4)  # darker towards the rim
        hl = np.exp(-((xx[sel] - c[0] + 0.35 * r) ** 2 + (yy[sel] - c[1] + 0.35 * r) ** 2) / (2 * (0.12 * r) ** 2))
        inner = np.clip(inner + 0.5 * hl[:, None], 0, 1)
        a = inside[sel, None]
        out[sel] = out[sel] * (1 - a) + inner * a
        mask[sel] = np.maximum(mask[sel], inside[sel])
    return out.astype(np.float32), (mask > 0.3).astype(np.float32)


def _person(shape: tuple[int, int], rng: np.random.Generator, foot: np.ndarray, height: float) -> np.ndarray:
    """[H,W] bool silhouette of a standing person whose feet are at `foot` (x, y)."""
    H, W = shape
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    h, x, y = height, foot[0], foot[1]
    head_r = 0.075 * h
    head = np.hypot(xx - x, yy - (y - h + head_r)) < head_r
    torso_top, torso_bot = y - h + 2.1 * head_r, y - 0.47 * h
    half = 0.13 * h * (1 + 0.15 * rng.standard_normal())
    torso = (yy > torso_top) & (yy < torso_bot) & (np.abs(xx - x) < half)
    stride = rng.uniform(0, 0.12) * h
    legs = np.zeros(shape, bool)
    for side in (-1, 1):
        x_top, x_bot = x + side * 0.06 * h, x + side * (0.06 * h + stride / 2)
        frac = np.clip((yy - torso_bot) / max(y - torso_bot, 1), 0, 1)
        legs |= (yy >= torso_bot) & (yy < y) & (np.abs(xx - (x_top + frac * (x_bot - x_top))) < 0.055 * h)
    arms = np.zeros(shape, bool)
    for side in (-1, 1):
        swing = rng.uniform(-0.1, 0.25) * h
        frac = np.clip((yy - torso_top) / (0.4 * h), 0, 1)
        ax = x + side * (half + 0.035 * h + frac * swing * side * 0.3)
        arms |= (yy > torso_top) & (yy < torso_top + 0.4 * h) & (np.abs(xx - ax) < 0.035 * h)
    return head | torso | legs | arms


def _shape(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """[H,W] bool: an ellipse, a rotated rectangle or a branch-like thick polyline."""
    H, W = shape
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    c = rng.uniform([0.1 * W, 0.1 * H], [0.9 * W, 0.9 * H])
    a, b = rng.uniform(0.06, 0.16, 2) * min(H, W)
    th = rng.uniform(0, np.pi)
    u = (xx - c[0]) * np.cos(th) + (yy - c[1]) * np.sin(th)
    v = -(xx - c[0]) * np.sin(th) + (yy - c[1]) * np.cos(th)
    kind = rng.integers(3)
    if kind == 0:
        return (u / a) ** 2 + (v / b) ** 2 < 1
    if kind == 1:
        return (np.abs(u) < a) & (np.abs(v) < b)
    mask = np.zeros(shape, bool)
    p = c.copy()
    for _ in range(4):
        q = p + rng.normal(0, 0.12, 2) * min(H, W)
        mask |= _segment(shape, p, q, rng.uniform(0.012, 0.03) * min(H, W)) > 0.5
        p = q
    return mask


def _texture(shape: tuple[int, int], rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    """[H,W,3] a colour with cloth-like noise and a vertical shading gradient."""
    H, W = shape
    noise = ndimage.gaussian_filter(rng.standard_normal((H, W)), 1.5 * W / 500)
    shade = np.linspace(1.1, 0.8, H)[:, None]
    return np.clip(base[None, None] * shade[..., None] * (1 + 0.35 * noise[..., None]), 0, 1)


def occluders(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    H, W = img.shape[:2]
    out, mask = img.copy(), np.zeros((H, W), bool)
    for _ in range(int(rng.integers(2, 4))):
        if rng.random() < 0.6:
            h = rng.uniform(0.3, 0.55) * H
            sil = _person((H, W), rng, rng.uniform([0.1 * W, 0.75 * H], [0.9 * W, 1.0 * H]), h)
        else:
            sil = _shape((H, W), rng)
        soft = ndimage.gaussian_filter(sil.astype(np.float32), 0.7 * W / 500)[..., None]
        out = out * (1 - soft) + _texture((H, W), rng, rng.uniform(0.05, 0.95, 3)) * soft
        mask |= sil
    return out.astype(np.float32), mask.astype(np.float32)


def people(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """2-4 standing people whose clothes are the scene itself: each silhouette is filled with the
    photo shifted by a random offset and darkened a little, so the occluder's texture matches
    other parts of the scene (the hard case: photo consistency can explain it at some depth)."""
    H, W = img.shape[:2]
    out, mask = img.copy(), np.zeros((H, W), bool)
    for _ in range(int(rng.integers(2, 5))):
        sil = _person((H, W), rng, rng.uniform([0.1 * W, 0.7 * H], [0.9 * W, 1.0 * H]), rng.uniform(0.3, 0.6) * H)
        dy, dx = (rng.uniform(0.2, 0.8, 2) * (H, W)).astype(int)
        fill = np.roll(img, (dy, dx), axis=(0, 1)) * rng.uniform(0.6, 0.9)
        soft = ndimage.gaussian_filter(sil.astype(np.float32), 0.7 * W / 500)[..., None]
        out = out * (1 - soft) + fill * soft
        mask |= sil
    return out.astype(np.float32), mask.astype(np.float32)


def corrupt_view(kind: str, img: np.ndarray, seed: int, view: int, depth: np.ndarray | None = None,
                 occlude: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
    """(corrupted image [H,W,3], corruption mask [H,W] in [0,1], facts) of one training view."""
    scene_rng = _rng(seed, kind, 10_000)  # shared by every view: the wind, the drops' places
    facts: dict = {}
    if kind == "rain":
        out, mask = rain(img, _rng(seed, kind, view), scene_rng)
    elif kind == "snow":
        out, mask = snow(img, _rng(seed, kind, view))
    elif kind == "haze":
        if depth is None:
            raise SystemExit("--kind haze needs --depth-from (a clean splat .ply)")
        out, mask, facts["beta"] = haze(img, depth)
    elif kind == "drops":
        out, mask = drops(img, scene_rng)
    elif kind == "occluders":
        out, mask = occluders(img, _rng(seed, kind, view)) if occlude else (img, np.zeros(img.shape[:2], np.float32))
    elif kind == "people":
        out, mask = people(img, _rng(seed, kind, view)) if occlude else (img, np.zeros(img.shape[:2], np.float32))
    elif kind == "mix":
        out, m1 = occluders(img, _rng(seed, kind, view)) if occlude else (img, np.zeros(img.shape[:2], np.float32))
        out, m2 = rain(out, _rng(seed, kind, view + 5000), _rng(seed, "rain", 10_000))
        out, m3 = drops(out, _rng(seed, "drops", 10_000))
        mask = np.maximum(np.maximum(m1, m2), m3)
    else:
        raise SystemExit(f"unknown kind {kind}; kinds: {', '.join(KINDS)}")
    return np.clip(out, 0, 1).astype(np.float32), mask, facts


def _read(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    a = np.asarray(iio.imread(path))
    a = a[..., :3] if a.ndim == 3 else np.repeat(a[..., None], 3, -1)
    return (a.astype(np.float32) / (65535.0 if a.dtype == np.uint16 else 255.0))


def _write(path: Path, img: np.ndarray) -> None:
    import imageio.v3 as iio

    iio.imwrite(path, (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))


def image_files(folder: Path, name: str) -> list[Path]:
    """Every image file of view `name` in a dataset copy (all resolutions), masks left out."""
    from recon.io.images import is_image_file

    return sorted(p for p in folder.rglob(f"{name}.*") if is_image_file(p)
                  and not any(part.lower().startswith(("mask", "idrmask", "corruption")) for part in p.parts))


def clean_depth(ply: Path, cam, width: int, height: int) -> np.ndarray:
    """[H,W] expected depth of a clean splat at a training camera (0 where nothing is drawn)."""
    import torch

    from recon.io.ply import read_ply
    from recon.render import rasterize

    g = read_ply(ply)
    c = cam.resized(width, height)
    means, quats, scales, opac = g.activated()
    with torch.no_grad():
        out, alpha, _ = rasterize(means, quats, scales, opac, g.colors_sh,
                                  torch.tensor(c.world_to_cam, dtype=torch.float32)[None],
                                  torch.tensor(c.K, dtype=torch.float32)[None], width, height,
                                  sh_degree=g.sh_degree, render_mode="RGB+D", backend="cpu")
    a = alpha[0, ..., 0].numpy()
    return np.where(a > 0.05, out[0, ..., 3].numpy() / np.maximum(a, 1e-3), 0.0)


def corrupt_dataset(protocol: str, data: Path, views: int, kind: str, seed: int, out: Path,
                    depth_from: Path | None = None, occluder_views: str = "all") -> dict:
    """Copy `data` to `out` and corrupt its training views; → the manifest."""
    from recon.eval.registry import get_protocol
    from recon.eval.protocols import SceneRef

    proto = get_protocol(protocol)
    ref = SceneRef(name=data.name, path=str(data))
    prep = proto.prepare(ref, views)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(data, out, symlinks=False)
    truth = out / "corruption"
    truth.mkdir()
    record = {"command": " ".join(sys.argv), "protocol": protocol, "data": str(data), "views": views, "kind": kind,
              "seed": seed, "train": prep.split.train, "test": prep.split.test, "files": {}, "facts": {}}
    for j, v in enumerate(prep.train.views):
        files = image_files(out, v.name)
        if not files:
            raise SystemExit(f"no image file for training view {v.name} under {out}")
        occlude = occluder_views == "all" or j == 0
        for f in files:
            img = _read(f)
            H, W = img.shape[:2]
            depth = clean_depth(depth_from, v.camera, W, H) if kind == "haze" else None
            bad, mask, facts = corrupt_view(kind, img, seed, v.index, depth, occlude)
            _write(f, bad)
            record["files"].setdefault(v.name, []).append(str(f.relative_to(out)))
            if facts:
                record["facts"][v.name] = facts
        _write(truth / f"{v.name}.png", np.repeat(mask[..., None], 3, -1))  # the last (smallest) file's
    (truth / "manifest.json").write_text(json.dumps(record, indent=1))
    return record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--protocol", required=True, help="llff, dtu, blender (recon eval's protocols)")
    ap.add_argument("--data", type=Path, required=True, help="the clean scene folder")
    ap.add_argument("--views", type=int, default=3, help="training views of the protocol")
    ap.add_argument("--kind", choices=KINDS, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="where the corrupted copy goes (replaced)")
    ap.add_argument("--depth-from", type=Path, help="a clean splat .ply whose depth makes the haze")
    ap.add_argument("--occluder-views", choices=("1", "all"), default="all",
                    help="occluders in the first training view only, or in every one")
    a = ap.parse_args()
    if a.out.resolve() == a.data.resolve() or a.data.resolve() in a.out.resolve().parents:
        raise SystemExit("--out must not be the dataset or inside it")
    rec = corrupt_dataset(a.protocol, a.data, a.views, a.kind, a.seed, a.out, a.depth_from,
                          "all" if a.occluder_views == "all" else "1")
    print(f"{a.kind}: training views {rec['train']} corrupted in {a.out}; test views {rec['test']} clean")


if __name__ == "__main__":
    main()
