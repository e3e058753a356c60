"""Export benchmark (issue 19): file size and render fidelity of each splat format, and the mesh of
DTU scan37 against the visual hull of its 49 ground-truth masks.

    python scripts/bench_exports.py                 # makes the fast-preset splats if missing
    python scripts/bench_exports.py --no-docs       # print only

1. For the DTU scan37 and LLFF fern 3-view fast-preset splats (`recon eval ... --preset fast`,
   made into --work when absent): each format's file size, and the PSNR of renders of the file read
   back against renders of the full .ply, from the training cameras and 8 cameras between them
   on the `--path cameras` spline (recon's renderer, over black).
2. DTU scan37's mesh (tsdf and poisson, the CLI's defaults) against the visual hull of all 49
   masks (recon.init.visual_hull at 200 voxels over the hull's box): Chamfer distance, both ways,
   in scene units and as a share of the hull's diagonal; and a picture: photo | mesh (shaded) |
   mesh (vertex colours) for a training view and a held-out one, in docs/images/.

Replaces its section of docs/benchmarks.md (`<!-- bench:exports -->`) unless --no-docs. Seconds
are wall time on a shared 2-core machine: noisy.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
DATA = ROOT.parent / "shared" / "data"
SCENES = {"dtu_scan37": ("dtu", DATA / "dtu_scan37"), "llff_fern": ("llff", DATA / "llff_fern")}
PICTURE = ROOT / "docs" / "images" / "export_mesh_dtu_scan37.jpg"
PICTURE_VIEWS = ("000025", "000010")  # a training view and a held-out one


def make_run(name: str, work: Path) -> Path:
    """WORK/NAME/NAME/run (splat.ply, cameras.json), from `recon eval` when not there yet."""
    protocol, data = SCENES[name]
    run = work / name / name / "run"
    if not (run / "splat.ply").is_file():
        recon = Path(sys.executable).parent / "recon"
        subprocess.run([str(recon), "eval", "--protocol", protocol, "--data", str(data), "--views", "3",
                        "--preset", "fast", "--device", "cpu", "--out", str(work / name)], check=True)
    return run


def read_dot_splat(data: bytes):
    """The antimatter15 .splat back into Gaussians (SH degree 0), to render it like the others."""
    from recon.gaussians import Gaussians, rgb_to_sh0

    rec = np.frombuffer(data, dtype=[("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
    a = np.clip(rec["rgba"][:, 3] / 255.0, 0.5 / 255, 1 - 0.5 / 255)
    t = lambda x: torch.tensor(np.asarray(x, dtype=np.float32))  # noqa: E731
    return Gaussians(means=t(rec["pos"]), quats=t((rec["rot"].astype(np.float32) - 128) / 128),
                     scales=t(np.log(np.maximum(rec["scale"], 1e-12))), opacities=t(np.log(a / (1 - a))),
                     sh0=rgb_to_sh0(t(rec["rgba"][:, :3] / 255.0))[:, None, :], shN=torch.zeros(len(rec), 0, 3))


def format_files(g, folder: Path) -> dict[str, tuple[Path, object]]:
    """Write every format of `g` into `folder` → {label: (file, Gaussians read back)}."""
    from recon.io.splat import splat_bytes
    from recon.io.compressed_ply import write_compressed_ply
    from recon.io.ply import write_ply
    from recon.io.splat_formats import read_splat
    from recon.io.spz import write_spz

    writers = {
        "ply (3DGS, float32)": ("s.ply", lambda p: write_ply(p, g)),
        "spz v3": ("s.spz", lambda p: write_spz(p, g, 3)),
        "spz v2": ("s2.spz", lambda p: write_spz(p, g, 2)),
        "compressed-ply": ("s.compressed.ply", lambda p: write_compressed_ply(p, g)),
        "compressed-ply, no SH": ("s.nosh.compressed.ply", lambda p: write_compressed_ply(p, g, with_sh=False)),
        "splat (antimatter15)": ("s.splat", lambda p: p.write_bytes(splat_bytes(g))),
    }
    out = {}
    for label, (name, write) in writers.items():
        path = folder / name
        write(path)
        back = read_dot_splat(path.read_bytes()) if name.endswith(".splat") else read_splat(path)
        out[label] = (path, back)
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(float(np.mean((a - b) ** 2)), 1e-12)))


def format_rows(name: str, run: Path) -> list[str]:
    from recon.exports.formats import _run_cameras
    from recon.exports.camera_paths import camera_spline, order_around, scene_frame
    from recon.render.views import SplatRenderer
    from recon.io.ply import read_ply

    g = read_ply(run / "splat.ply")
    cams = [c for _, c in _run_cameras(run)]
    views = cams + camera_spline(order_around(cams, scene_frame(cams)), 10, scene_frame(cams))[1:-1]
    reference = [SplatRenderer(g, "cpu").render(c).rgb for c in views]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = format_files(g, Path(tmp))
        full = files["ply (3DGS, float32)"][0].stat().st_size
        for label, (path, back) in files.items():
            renderer = SplatRenderer(back, "cpu")
            scores = [psnr(renderer.render(c).rgb, ref) for c, ref in zip(views, reference)]
            size = path.stat().st_size
            shown = "∞ (the reference)" if label.startswith("ply") else f"{np.mean(scores):.2f} (min {min(scores):.2f})"
            rows.append(f"| {name} | {label} | {size / 1e6:.2f} MB | {full / size:.1f}× | {shown} |")
            print(rows[-1], flush=True)
    return rows


def hull_surface(work: Path, names: list[str] | None = None) -> np.ndarray:
    """[P,3] surface voxel centres of the visual hull of DTU scan37's masks: all 49, or those of the
    views `names` (cached in --work)."""
    tag = "all" if names is None else "-".join(names)
    cache = work / f"dtu_scan37_hull_surface_{tag}.npy"
    if cache.is_file():
        return np.load(cache)
    from recon.init.visual_hull import visual_hull
    from recon.io.detect import load_scene

    scene = load_scene(SCENES["dtu_scan37"][1], max_size=400)
    assert len(scene) == 49 and scene.has_masks
    if names is not None:
        scene = scene.subset([v.index for v in scene.views if v.name in names])
    grid = visual_hull(scene, resolution=200, dilate_px=1)
    surface = grid.centres(grid.surface())
    np.save(cache, surface)
    return surface


def chamfer(points: np.ndarray, hull: np.ndarray) -> tuple[float, float]:
    """(accuracy: mean distance points → hull, completeness: hull → points)."""
    from scipy.spatial import cKDTree

    return float(cKDTree(hull).query(points)[0].mean()), float(cKDTree(points).query(hull)[0].mean())


def sample_surface(mesh, n: int, seed: int = 0) -> np.ndarray:
    """[n,3] points spread uniformly over the mesh's area."""
    v, t = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    a, b, c = v[t[:, 0]], v[t[:, 1]], v[t[:, 2]]
    area = np.linalg.norm(np.cross(b - a, c - a), axis=1)
    rng = np.random.default_rng(seed)
    f = rng.choice(len(t), n, p=area / area.sum())
    r1, r2 = rng.random((2, n))
    s = np.sqrt(r1)
    return (1 - s)[:, None] * a[f] + (s * (1 - r2))[:, None] * b[f] + (s * r2)[:, None] * c[f]


def mesh_rows(run: Path, work: Path) -> tuple[list[str], object]:
    from recon.exports.formats import _run_cameras
    from recon.exports.mesh import MeshSettings, build_mesh
    from recon.io.ply import read_ply

    g = read_ply(run / "splat.ply")
    named = _run_cameras(run)
    cams = [c for _, c in named]
    hull = hull_surface(work)
    diag = float(np.linalg.norm(hull.max(0) - hull.min(0)))

    def row(label: str, vertices: str, triangles: str, seconds: str, acc: float, comp: float) -> str:
        mean = (acc + comp) / 2
        return (f"| {label} | {vertices} | {triangles} | {seconds} | {acc:.3f} | {comp:.3f} | "
                f"{mean:.3f} ({100 * mean / diag:.1f}% of {diag:.2f}) |")

    rows, meshes = [], {}
    for method in ("tsdf", "poisson"):
        t0 = time.perf_counter()
        mesh = build_mesh(g, cams, MeshSettings(method=method), device="cpu", progress=False)
        seconds = time.perf_counter() - t0
        rows.append(row(method, f"{len(mesh.vertices):,}", f"{len(mesh.triangles):,}", f"{seconds:.0f} s",
                        *chamfer(sample_surface(mesh, 200_000), hull)))
        print(rows[-1], flush=True)
        meshes[method] = mesh
    three = hull_surface(work, sorted(name for name, _ in named))
    rows.append(row("for scale: the visual hull of the 3 training masks (its surface voxels)", "", "", "",
                    *chamfer(three, hull)))
    print(rows[-1], flush=True)
    return rows, meshes["tsdf"]


def picture(mesh, path: Path) -> None:
    import imageio.v3 as iio
    from mesh_picture import render_mesh

    from recon.io.detect import load_scene

    scene = load_scene(SCENES["dtu_scan37"][1], max_size=400, with_masks=False)
    by_name = {v.name: v for v in scene.views}
    v, t, col = np.asarray(mesh.vertices), np.asarray(mesh.triangles), np.asarray(mesh.vertex_colors)
    rows = []
    for name in PICTURE_VIEWS:
        view = by_name[name]
        rows.append(np.concatenate([view.image, render_mesh(v, t, view.camera), render_mesh(v, t, view.camera, col)], 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, (np.concatenate(rows, 0) * 255 + 0.5).astype(np.uint8), quality=90)


def section(format_table: list[str], mesh_table: list[str], command: str) -> str:
    import open3d

    return "\n".join([
        "## Exports\n",
        f"- Command: `{command}`. Splats: `recon eval --views 3 --preset fast` of DTU scan37 and LLFF fern.",
        f"- Machine: {platform.platform()}, {os.cpu_count()} CPU cores, no GPU, load average "
        f"{os.getloadavg()[0]:.1f} (seconds are noisy); torch {torch.__version__}, open3d {open3d.__version__}.",
        f"- Date: {date.today()}",
        "- PSNR: renders of the file read back against renders of the full .ply, from the 3 training cameras",
        "  and 8 cameras between them on the `--path cameras` spline (mean over the 11 views, and the worst).\n",
        "| scene | format | size | smaller by | PSNR against the .ply's renders (dB) |", "|---|---|---|---|---|",
        *format_table,
        "\nDTU scan37 mesh (`recon export RUN --format mesh [--mesh-method poisson]`, 256 voxels a side) against",
        "the visual hull of the 49 ground-truth masks (200 voxels over its box): accuracy = mean distance from",
        "200,000 points on the mesh to the hull's surface voxels, completeness = the other way.\n",
        "| method | vertices | triangles | time | accuracy | completeness | Chamfer (mean of both) |",
        "|---|---|---|---|---|---|---|", *mesh_table,
        f"\n![DTU scan37 mesh: photo, mesh shaded, mesh in vertex colours; view {PICTURE_VIEWS[0]} (training) above, "
        f"{PICTURE_VIEWS[1]} (held out) below]({PICTURE.relative_to(ROOT / 'docs')})",
    ])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "recon_bench_exports")
    ap.add_argument("--no-docs", "--no-append", dest="no_docs", action="store_true",
                    help="print the tables, do not touch docs/benchmarks.md")
    args = ap.parse_args()
    runs = {name: make_run(name, args.work) for name in SCENES}
    format_table = [row for name, run in runs.items() for row in format_rows(name, run)]
    mesh_table, mesh = mesh_rows(runs["dtu_scan37"], args.work)
    picture(mesh, PICTURE)
    print(f"picture: {PICTURE}")
    text = section(format_table, mesh_table, " ".join(["python", "scripts/bench_exports.py", *sys.argv[1:]]))
    print(text)
    if not args.no_docs:
        from bench_doc import replace_section

        replace_section("exports", text)


if __name__ == "__main__":
    main()
