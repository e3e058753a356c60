"""Benchmark recon's rasterizer backends: forward+backward seconds per camera and peak RSS.

Cases (issue 3):
  a  20k Gaussians at 270×480: OpenSplat's fox setup (instant-ngp fox, first camera, images 4×
     downscaled; points uniform in a cube of half-side 2 around (0.027, −0.061, −0.017) in the
     transforms.json frame, isotropic scale = mean distance to the 3 nearest neighbours,
     opacity 0.1, random colours, SH degree 0)
  b  100k Gaussians at 400×300 } the same recipe (uniform cube, 3-NN scales, opacity 0.1) in front
  c  300k Gaussians at 800×600 } of a camera with a 53° horizontal field of view
  a/16  the fox case with 1/16 of the Gaussians at 1/4 of the resolution, for the dense reference.
Each (case, backend, threads) runs in its own subprocess so its peak RSS is its own.

Timing on a shared machine: besides wall clock (min and median), the table gives the CPU time of
the busiest thread per pass, read from /proc — the wall time the same work takes when nothing
else competes for the cores (threads run concurrently; the busiest one is the critical path).
OMP_WAIT_POLICY=PASSIVE is set before torch loads: libgomp's default spin-waiting burns a whole
core per idle thread when cores are oversubscribed (measured here: torch projection with 2
threads 1.75 s wall instead of 0.10 s under load 10).

  python scripts/bench_raster.py                 # table on stdout
  python scripts/bench_raster.py --docs          # and the table in docs/benchmarks.md (<!-- bench:raster -->)
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

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch/numba load libgomp

ROOT = Path(__file__).resolve().parents[1]
FOX = Path(os.environ.get("RECON_FOX", ROOT.parent / "shared/data/instant_ngp_fox/transforms.json"))
CASES = {  # name: (n_gaussians, width, height, scene)
    "a": (20_000, 270, 480, "fox"),
    "b": (100_000, 400, 300, "cube"),
    "c": (300_000, 800, 600, "cube"),
    "a/16": (1_250, 68, 120, "fox"),
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


def _thread_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of each thread of this process, from /proc (Linux)."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return out


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
    t_first = time.perf_counter()
    times, fwd_times, cpu_times = [], [], []
    for rep in range(reps + 1):  # the first pass loads the cached kernels (or JIT-compiles them)
        if rep == 1:
            per_thread0 = _thread_cpu()
        c0, t0 = time.process_time(), time.perf_counter()
        renders, _, meta = rasterize(*leaves, viewmats, Ks, width, height, sh_degree=0, backend=backend)
        t1 = time.perf_counter()
        (renders - target).abs().mean().backward()
        t2 = time.perf_counter()
        times.append(t2 - t0)
        fwd_times.append(t1 - t0)
        cpu_times.append(time.process_time() - c0)
        for p in leaves:
            p.grad = None
    per_thread1 = _thread_cpu()
    busiest = max(per_thread1[t] - per_thread0.get(t, 0.0) for t in per_thread1) / reps
    visible = int((meta["radii"] > 0).all(-1).sum())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    first = times[0]
    times, fwd_times, cpu_times = (sorted(t[1:]) for t in (times, fwd_times, cpu_times))
    return {"case": name, "backend": backend, "threads": threads, "visible": visible,
            "first_s": first, "fwd_s": fwd_times[0], "fwd_bwd_min_s": times[0],
            "fwd_bwd_median_s": times[len(times) // 2], "cpu_s": cpu_times[len(cpu_times) // 2], "busiest_s": busiest,
            "peak_rss_mb": round(peak_mb), "load": os.getloadavg()[0]}  # fmt: skip


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} cores visible"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="a,b,c,a/16", help="comma-separated case names")
    ap.add_argument("--threads", default="1,2", help="numba/torch thread counts to try")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions (median is reported)")
    ap.add_argument("--reference", default="a/16", help="cases also run on the dense reference")
    ap.add_argument("--docs", "--append-docs", dest="docs", action="store_true",
                    help="replace the rasterizer's section of docs/benchmarks.md with this table")
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
    if args.docs:
        _write_docs(table, " ".join(["python", "scripts/bench_raster.py", *sys.argv[1:]]))


def _table(rows: list[dict]) -> str:
    """Seconds are wall clock per camera; min and median over the repetitions. On a shared
    machine the min is the closest to an idle machine; CPU s (all threads) shows the work."""
    lines = [
        "| case | Gaussians (visible) | image | backend | threads | fwd s (min) | fwd+bwd s (min) "
        "| fwd+bwd s (median) | CPU s all threads | busiest thread CPU s | first call s "
        "| peak RSS MB | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        g, w, h, _ = CASES[r["case"]]
        lines.append(
            f"| {r['case']} | {g:,} ({r['visible']:,}) | {w}×{h} | {r['backend']} | {r['threads']} "
            f"| {r['fwd_s']:.3f} | {r['fwd_bwd_min_s']:.3f} | {r['fwd_bwd_median_s']:.3f} "
            f"| {r['cpu_s']:.3f} | {r['busiest_s']:.3f} | {r['first_s']:.2f} | {r['peak_rss_mb']} | {r['load']:.1f} |"
        )
    speedups = []
    for case in dict.fromkeys(r["case"] for r in rows):
        sel = [r for r in rows if r["case"] == case and r["backend"] == "cpu"]
        wall = {r["threads"]: r["fwd_bwd_min_s"] for r in sel}
        busy = {r["threads"]: r["busiest_s"] for r in sel}
        if 1 in wall and 2 in wall:
            speedups.append(f"{case}: {wall[1] / wall[2]:.2f}× wall (min), "
                            f"{busy[1] / busy[2]:.2f}× busiest-thread CPU")  # fmt: skip
    if speedups:
        lines.append(f"\n2 threads vs 1 (cpu backend, fwd+bwd): {'; '.join(speedups)}")
    return "\n".join(lines)


def _write_docs(table: str, command: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_doc import replace_section

    stamp = datetime.date.today().isoformat()
    replace_section("raster", f"## Rasterizer\n\n- Command: `{command}`: seconds per camera, forward + backward of "
                              f"`rasterize()` plus an L1 loss\n- Machine: {machine()}\n- Date: {stamp}\n\n{table}")


if __name__ == "__main__":
    main()
