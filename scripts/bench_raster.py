"""Benchmark recon's rasterizer backends: forward+backward seconds per camera and peak RSS.

Cases (issue 3):
  a  20k Gaussians at 270×480: OpenSplat's fox setup (instant-ngp fox, first camera, images 4×
     downscaled; points uniform in a cube of half-side 2 around (0.027, −0.061, −0.017) in the
     transforms.json frame, isotropic scale = mean distance to the 3 nearest neighbours,
     opacity 0.1, random colours, SH degree 0)
  b  100k Gaussians at 400×300 } the same recipe (uniform cube, 3-NN scales, opacity 0.1) in front
  c  300k Gaussians at 800×600 } of a camera with a 53° horizontal field of view
  a/8 ... the fox case with fewer Gaussians and pixels, small enough for the dense reference.
Each (case, backend, threads) runs in its own subprocess so its peak RSS is its own.

  python scripts/bench_raster.py                 # table on stdout
  python scripts/bench_raster.py --append-docs   # and a dated table appended to docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOX = Path(os.environ.get("RECON_FOX", ROOT.parent / "shared/data/instant_ngp_fox/transforms.json"))
CASES = {  # name: (n_gaussians, width, height, scene)
    "a": (20_000, 270, 480, "fox"),
    "b": (100_000, 400, 300, "cube"),
    "c": (300_000, 800, 600, "cube"),
    "a/8": (2_500, 135, 240, "fox"),
}


def _make_case(name: str):
    import numpy as np
    import torch
    from scipy.spatial import cKDTree

    n, width, height, scene = CASES[name]
    rng = np.random.default_rng(0)
    if scene == "fox":
        meta = json.loads(FOX.read_text())
        s = width / meta["w"]
        K = [[meta["fl_x"] * s, 0, meta["cx"] * s], [0, meta["fl_y"] * s, meta["cy"] * s], [0, 0, 1]]
        c2w = np.array(meta["frames"][0]["transform_matrix"], dtype=np.float64)
        c2w[:3, 1:3] *= -1  # OpenGL → OpenCV camera axes
        viewmat = np.linalg.inv(c2w)
        pts = np.array([0.027, -0.061, -0.017]) + rng.uniform(-2, 2, (n, 3))
    else:
        f = width / (2 * math.tan(math.radians(53) / 2))
        K = [[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]]
        viewmat = np.eye(4)
        pts = np.array([0, 0, 3.0]) + rng.uniform(-1, 1, (n, 3))
    dist, _ = cKDTree(pts).query(pts, k=4)
    scale = dist[:, 1:].mean(axis=1)
    f32 = dict(dtype=torch.float32)
    params = [
        torch.tensor(pts, **f32),
        torch.tensor([[1.0, 0, 0, 0]], **f32).repeat(n, 1),
        torch.tensor(scale, **f32)[:, None].repeat(1, 3),
        torch.full((n,), 0.1, **f32),
        torch.tensor(rng.uniform(-1, 1, (n, 1, 3)), **f32),
    ]
    return params, torch.tensor(viewmat, **f32)[None], torch.tensor(K, **f32)[None], width, height


def run_one(name: str, backend: str, threads: int, reps: int) -> dict:
    """Time `reps` forward+backward passes (after one warm-up) in this process."""
    import numba
    import torch

    from recon.render import rasterize

    numba.set_num_threads(threads)
    torch.set_num_threads(threads)
    params, viewmats, Ks, width, height = _make_case(name)
    leaves = [p.requires_grad_(True) for p in params]
    target = torch.rand(1, height, width, 3, generator=torch.Generator().manual_seed(0))
    times, fwd_times = [], []
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        renders, _, meta = rasterize(*leaves, viewmats, Ks, width, height, sh_degree=0, backend=backend)
        t1 = time.perf_counter()
        (renders - target).abs().mean().backward()
        t2 = time.perf_counter()
        times.append(t2 - t0)
        fwd_times.append(t1 - t0)
        for p in leaves:
            p.grad = None
    visible = int((meta["radii"] > 0).all(-1).sum())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times, fwd_times = sorted(times[1:]), sorted(fwd_times[1:])
    return {"case": name, "backend": backend, "threads": threads, "visible": visible,
            "fwd_s": fwd_times[len(fwd_times) // 2], "fwd_bwd_s": times[len(times) // 2],
            "peak_rss_mb": round(peak_mb)}  # fmt: skip


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} cores visible"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="a,b,c,a/8", help="comma-separated case names")
    ap.add_argument("--threads", default="1,2", help="numba/torch thread counts to try")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions (median is reported)")
    ap.add_argument("--reference", default="a/8", help="cases also run on the dense reference")
    ap.add_argument("--append-docs", action="store_true", help="append the table to docs/benchmarks.md")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: name,backend,threads
    args = ap.parse_args()
    if args.one:
        name, backend, threads = args.one.split(",")
        print(json.dumps(run_one(name, backend, int(threads), args.reps)))
        return
    jobs = [(c, "cpu", int(t)) for c in args.cases.split(",") for t in args.threads.split(",")]
    jobs += [(c, "reference", 1) for c in args.reference.split(",") if c]
    rows = []
    for name, backend, threads in jobs:
        reps = args.reps if backend == "cpu" else 1
        cmd = [sys.executable, __file__, "--one", f"{name},{backend},{threads}", "--reps", str(reps)]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], file=sys.stderr)
    table = _table(rows)
    print(table)
    if args.append_docs:
        _append_docs(table, " ".join(["python"] + sys.argv))


def _table(rows: list[dict]) -> str:
    n = {r["case"]: CASES[r["case"]] for r in rows}
    lines = ["| case | Gaussians (visible) | image | backend | threads | forward s | fwd+bwd s | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        g, w, h, _ = n[r["case"]]
        lines.append(f"| {r['case']} | {g:,} ({r['visible']:,}) | {w}×{h} | {r['backend']} | "
                     f"{r['threads']} | {r['fwd_s']:.3f} | {r['fwd_bwd_s']:.3f} | {r['peak_rss_mb']} |")  # fmt: skip
    speedups = []
    for case in dict.fromkeys(r["case"] for r in rows):
        t = {r["threads"]: r["fwd_bwd_s"] for r in rows if r["case"] == case and r["backend"] == "cpu"}
        if 1 in t and 2 in t:
            speedups.append(f"{case}: {t[1] / t[2]:.2f}×")
    if speedups:
        lines.append(f"\n2 threads vs 1 (cpu backend, fwd+bwd): {', '.join(speedups)}")
    return "\n".join(lines)


def _append_docs(table: str, command: str) -> None:
    path = ROOT / "docs/benchmarks.md"
    path.parent.mkdir(exist_ok=True)
    head = "" if path.exists() else "# Benchmarks\n"
    stamp = datetime.date.today().isoformat()
    with path.open("a") as f:
        f.write(f"{head}\n### Rasterizer, {stamp}\n\nMachine: {machine()}. Command: `{command}`\n\n{table}\n")


if __name__ == "__main__":
    main()
