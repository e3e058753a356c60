"""The main job, scored (issue 15): the bundled sample is 4 of lund_door's 12 photos (DSC 1/4/7/10);
`recon eval --protocol holdout` trains on those 4 as plain photos, as `recon run --images
data/four_views` does, and scores the other 8 at their ground-truth cameras (aligned to the
estimated ones). For each row: held-out PSNR/SSIM, the training views' PSNR, the Gaussians, the
needles (the share of Gaussians whose longest axis is over 10× the shortest, which counts flat
discs too, and over 10× the middle one, needles proper; and the mean alpha the needles proper
cover from an 8-camera orbit),
seconds; and a picture from the viewer's default framing, row by row.

    python scripts/bench_main_job.py                 # every row: the fast preset and what it was built from
    python scripts/bench_main_job.py --rows "the fast preset"   # one row (the others on the page stay)
    python scripts/bench_main_job.py --resume        # rows already scored in runs/bench_main_job are read

Needs ../shared/data/lund_door. Puts the latest row per run in its section of docs/benchmarks.md
(`<!-- bench:main-job -->`) unless --no-docs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "lund_door"
R = "--config.optimize.regularize."
NO_FILL = ["--config.init.stereo.fill-stride", "0"]  # the preset's stereo fill (since 2026-12-02) off
# Each row says what it measured then, on top of today's fast preset: the parts added since are off.
SFM_INIT = ["--config.init.method", "auto", "--config.init.no-random-hidden"]  # the SfM points, as before seeds
NEAREST = ["--config.init.stereo.fill-farthest", "0", "--config.init.no-random-hidden"]
ROWS = {  # flags on top of --preset fast: the preset, and the steps it was built from
    "SfM points, no opacity decay, no anisotropy term": [R + "opacity-decay.factor", "1.0", R + "anisotropy.weight",
                                                         "0", *NO_FILL, *SFM_INIT],
    "SfM points, anisotropy 1.0": [R + "opacity-decay.factor", "1.0", *NO_FILL, *SFM_INIT],
    "SfM points, decay 0.995 + anisotropy 1.0": NO_FILL + SFM_INIT,
    "stereo seeds, fill at the nearest depth": NEAREST,
    "stereo seeds, fill at the farthest depth within 2×": ["--config.init.no-random-hidden"],
    "stereo seeds, farthest fill, no random seeds": ["--config.init.num-random", "0", "--config.init.no-random-hidden"],
    "the fast preset": [],  # … and random seeds only behind the stereo depth
}
HEADER = ("| run | held-out PSNR | held-out SSIM | training-view PSNR | Gaussians | max/min axis > 10 | "
          "needles: max/mid axis > 10 | needles' mean alpha from an orbit | seconds | date |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


def run_row(name: str, flags: list[str], out: Path, resume: bool = False) -> dict:
    from bench_quality import recon_command

    cmd = [recon_command(), "eval", "--protocol", "holdout", "--data", str(DATA), "--views", "4", "--preset", "fast",
           "--out", str(out), "--force", *flags]
    t0 = time.perf_counter()
    done = list(out.rglob("results.json"))
    if resume and done:  # scored before by this same command: read, do not rerun (a code change would)
        print(f"{name}: reusing {done[0]}", flush=True)
    else:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    mean = json.loads(next(out.rglob("results.json")).read_text())["mean"]
    return {"name": name, "mean": mean, "wall": time.perf_counter() - t0, "run": next(out.rglob("splat.ply")).parent,
            "cmd": " ".join(cmd)}


def render(g, cam, only=None) -> tuple[np.ndarray, np.ndarray]:
    """(rgb [H,W,3], alpha [H,W]) of the Gaussians `only` selects (all when None)."""
    from recon.render import rasterize

    g = g if only is None else g.select(only)
    means, quats, scales, opac = g.activated()
    with torch.no_grad():
        img, alpha, _ = rasterize(means, quats, scales, opac, g.colors_sh,
                                  torch.tensor(cam.world_to_cam, dtype=torch.float32)[None],
                                  torch.tensor(cam.K, dtype=torch.float32)[None], cam.width, cam.height,
                                  sh_degree=g.sh_degree, backend="cpu")
    return img[0].clamp(0, 1).numpy(), alpha[0, ..., 0].numpy()


def needles(run: Path) -> tuple[float, float, float, np.ndarray]:
    """(share with max/min > 10, share with max/mid > 10 (needles), the needles' mean alpha over an
    8-camera orbit, the render from the viewer's first framing)."""
    from recon.exports.camera_paths import at_size, orbit_cameras, scene_frame
    from recon.io.ply import read_ply
    from recon.train.parts.anisotropy import axis_ratio, needle_share
    from viewer.splats import camera_framing, robust_bounds, to_splat_arrays
    from viewer.view import load_cameras

    g = read_ply(run / "splat.ply")
    cams, _ = load_cameras(run)
    needle = axis_ratio(g.scales, "mid") > 10
    like = at_size(cams[0], 320, round(320 * cams[0].height / cams[0].width))
    orbit = orbit_cameras(scene_frame(cams), like, 8, start=cams[0].center)
    coverage = float(np.mean([render(g, c, needle)[1].mean() for c in orbit])) if needle.any() else 0.0
    arrays = to_splat_arrays(g)
    centre, _ = robust_bounds(arrays.centers, arrays.opacities)
    f = camera_framing(cams, centre)
    from recon.exports.camera_paths import look_at

    first = at_size(cams[0], 480, round(480 * cams[0].height / cams[0].width))
    framed = type(first)(first.K, look_at(f.position, f.look_at, f.up), first.width, first.height)
    return needle_share(g.scales, 10, "min"), float(needle.float().mean()), coverage, render(g, framed)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_main_job")
    ap.add_argument("--no-docs", "--no-append", dest="no_docs", action="store_true",
                    help="print only, do not touch docs/benchmarks.md")
    ap.add_argument("--resume", action="store_true", help="read rows already scored in --out instead of rerunning them")
    args = ap.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA}: lund_door is not there (../shared/data)")
    lines = []
    pictures = []
    for name in args.rows:
        r = run_row(name, ROWS[name], args.out / "".join(c if c.isalnum() else "_" for c in name), args.resume)
        flat, share, cover, picture = needles(r["run"])
        m = r["mean"]
        lines.append(f"| {name} | {m['psnr']:.2f} | {m['ssim']:.3f} | {m['train_psnr']:.2f} | {int(m['num_gaussians'])} | "
                     f"{100 * flat:.1f}% | {100 * share:.1f}% | {100 * cover:.1f}% | {m['seconds']:.0f} | "
                     f"{date.today().isoformat()} |")
        print(lines[-1], flush=True)
        pictures.append(picture)
    image = ROOT / "docs" / "images" / "main_job_framing.png"
    iio.imwrite(image, (np.concatenate(pictures, 1) * 255 + 0.5).astype(np.uint8))
    print("\n".join([HEADER, *lines]))
    if not args.no_docs:
        from bench_doc import cells, merge_rows, read_section, replace_section, table_rows

        order = {name: i for i, name in enumerate(ROWS)}
        rows = merge_rows(table_rows(read_section("main-job"), HEADER), lines)
        rows.sort(key=lambda r: order.get(cells(r)[0], -1))  # ROWS' order; a row no longer in ROWS first
        replace_section("main-job", "\n".join([
            "## Main job on held-out photos\n",
            "- Command: `python scripts/bench_main_job.py` (each row: `recon eval --protocol holdout --data "
            "../shared/data/lund_door --views 4 --preset fast` and its flags; the 4 are the bundled sample's photos, "
            "DSC 1/4/7/10, trained as plain photos with their cameras estimated; the other 8 are scored at their "
            "ground-truth cameras). The last row is the fast preset; the rows above it switch off, in turn, what "
            "it was built from.",
            f"- Machine: {platform.platform()}, {os.cpu_count()} CPU cores; load {os.getloadavg()[0]:.1f} at the end "
            "of this run (each row's date is its own)",
            "- Needles: Gaussians whose longest axis is over 10× the middle one; \"max/min\" counts flat discs too.",
            "", HEADER, *rows, "",
            f"![this run's rows, left to right, from the viewer's default framing]({image.relative_to(ROOT / 'docs')})"]))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(ROOT))
    main()
