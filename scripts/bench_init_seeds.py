"""Seeds from the training views with known poses: plane-sweep stereo against features triangulated
along the epipolar lines (SIFT, XFeat; a pair alone or agreed on by a third view), on DTU scan37
3-view (full photos, as the papers train) and LLFF fern 3-view, at the resolutions `recon eval`
trains on. Per source: points, seconds, and how well its depths agree with the plane sweep's
confident depths in the first training view (where both exist).

    python scripts/bench_init_seeds.py            # prints the table, puts it in docs/benchmarks.md (--no-docs: not)

The quality each source gives a trained splat is in scripts/bench_quality.py --parts ("triangulated").
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def training_views(name: str):
    """The protocol's 3 training views of DTU scan37 or fern, without masks, as `recon eval` loads them."""
    from dataclasses import replace

    from recon.eval.protocols import dtu_split, llff_split
    from recon.io.detect import load_scene

    if name == "dtu_scan37":
        scene = load_scene(DATA / "dtu_scan37", downscale=4, indices=dtu_split(3).train)
    else:
        full = load_scene(DATA / "llff_fern", downscale=8, with_masks=False)
        scene = full.subset(llff_split(3, len(full.views)).train)
    return replace(scene, views=[replace(v, mask=None) for v in scene.views])


def agreement(points: np.ndarray, scene, depth: np.ndarray, confident: np.ndarray) -> tuple[int, float, float]:
    """(points checked, median |Δz|/z, share within 2%) of points [P,3] against view 0's confident
    plane-sweep depth [H,W] where they land on a confident pixel."""
    cam = scene.views[0].camera
    pix, z = cam.project(points.astype(np.float64))
    u, v = np.floor(pix[:, 0]).astype(int), np.floor(pix[:, 1]).astype(int)
    ok = (z > 0) & (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)
    ok[ok] &= confident[v[ok], u[ok]]
    if not ok.any():
        return 0, float("nan"), float("nan")
    rel = np.abs(z[ok] - depth[v[ok], u[ok]]) / depth[v[ok], u[ok]]
    return int(ok.sum()), float(np.median(rel)), float(np.mean(rel < 0.02))


def measure(name: str) -> list[str]:
    from recon.init.plane_sweep import confident_depths, plane_sweep_points
    from recon.init.triangulate import triangulate_views
    from recon.stages.init import StereoInitConfig, depth_range

    scene = training_views(name)
    near, far = depth_range(scene)
    s = StereoInitConfig()
    t0 = time.perf_counter()
    P, _, _, sure = plane_sweep_points(scene, near, far, s.window, s.coarse, s.min_score, s.rel_tol,
                                       max_points=10**9, neighbours=s.neighbours)
    sweep_s = time.perf_counter() - t0
    depth, confident = confident_depths(scene, near, far, s.window, s.coarse, s.min_score, s.rel_tol,
                                        neighbours=s.neighbours)[0]
    rows = [f"| {name} | plane sweep (confident, confirmed) | {int(sure.sum())} | {sweep_s:.1f} | – | – | – |"]
    for features in ("sift", "xfeat"):
        for min_views in (2, 3):
            t0 = time.perf_counter()
            X, _ = triangulate_views(scene, features=features, min_views=min_views)
            secs = time.perf_counter() - t0
            n, med, share = agreement(X, scene, depth, confident)
            label = f"{features.upper() if features == 'sift' else 'XFeat'}, {'a pair' if min_views == 2 else 'a third view agrees'}"
            rows.append(f"| {name} | {label} | {len(X)} | {secs:.1f} | {n} | {100 * med:.2f}% | {100 * share:.0f}% |")
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", nargs="+", default=["dtu_scan37", "llff_fern"], choices=["dtu_scan37", "llff_fern"])
    ap.add_argument("--no-docs", "--no-append", dest="no_docs", action="store_true",
                    help="print only, do not touch docs/benchmarks.md")
    args = ap.parse_args()
    lines = ["| scene | source | points | seconds | on a confident sweep pixel of view 0 | median |Δz|/z there | within 2% |",
             "|---|---|---|---|---|---|---|"]
    for name in args.scenes:
        lines += measure(name)
    report = "\n".join([
        "## Seeds with known poses\n",
        f"- Command: `python scripts/bench_init_seeds.py {' '.join(sys.argv[1:])}` (3 training views, full photos)",
        f"- Machine: {platform.platform()}, {os.cpu_count()} CPU cores; load average {os.getloadavg()[0]:.1f} at the end",
        f"- Date: {date.today().isoformat()}",
        "", *lines, ""]) + "\n"
    print(report)
    if not args.no_docs:
        from bench_doc import replace_section

        replace_section("init-seeds", report)


if __name__ == "__main__":
    main()
