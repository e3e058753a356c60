"""Forward compositing, side by side: recon's numba kernel vs the same kernel in NVIDIA Warp (CPU).

Issue 3 asks to choose the cpu backend's implementation by measurement. This script builds
issue 3's case (a) exactly as scripts/bench_raster.py does (20k Gaussians, fox camera, 270×480,
SH degree 0), projects it (recon.render.projection.project), evaluates the colours
(recon.render.sh.sh_to_color) and bins it into 16×16 tiles (recon.render.cpu.bin_gaussians).
Then it times only the forward compositing on one thread:
  numba  recon.render.cpu_kernels.raster_fwd (numba.set_num_threads(1))
  warp   `composite` below: one Warp thread per pixel, device="cpu", walking its tile's
         depth-ordered list with gsplat's math (alpha = min(0.999, o·exp(−σ)), skip σ < 0 or
         alpha < 1/255, stop before T drops to ≤ 1e-4, pixel centres at +0.5).
Times are CPU seconds of the whole process (time.process_time): other load on a shared machine
moves them far less than wall time (cache and SMT contention still do); "cores used" = process CPU / wall over the timed passes (> 1 would
mean more than one core; < 1 means the process waited for a core).

Each backend's first call pays the JIT. Both cache compiled kernels on disk, so the script runs
two child processes on one fresh cache directory (NUMBA_CACHE_DIR and Warp's
kernel_cache_dir): "cold" compiles from scratch, "cached" loads what the first one wrote.

  python scripts/bench_backends.py                    # table + conclusion on stdout
  python scripts/bench_backends.py --reps 9 --cache-dir /tmp/bb/cache
Needs `pip install warp-lang` (not a project dependency).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch/numba load libgomp


def _inputs():
    """Case (a) → the numpy arguments of cpu_kernels.raster_fwd (one camera), visible count."""
    import torch

    sys.path.insert(0, str(SCRIPTS))
    import bench_raster

    from recon.render.cpu import _groups, bin_gaussians
    from recon.render.projection import project
    from recon.render.sh import sh_to_color

    (means, quats, scales, opac, sh), viewmats, Ks, width, height = bench_raster._make_case("a")
    with torch.no_grad():
        proj = project(means, quats, scales, opac, viewmats, Ks, width, height)
        campos = torch.linalg.inv(viewmats)[:, :3, 3]  # as recon.render._features
        dirs = means[None] - campos[:, None]
        colors = sh_to_color(0, dirs, sh[None].expand(len(viewmats), -1, -1, -1))
    f32 = lambda t: t.float().contiguous().numpy()  # noqa: E731
    opacs = opac[None].expand(len(viewmats), -1)
    xy, con, col, op = (f32(t) for t in (proj.means2d, proj.conics, colors, opacs))
    offsets, ids, tx, ty = bin_gaussians(xy, con, op, proj.radii, proj.depths, width, height)
    col = _groups(col)[0]  # the numba kernels take four channels (RGB + a zero one)
    visible = int((proj.radii > 0).all(-1).sum())
    return (xy, con, col, op, offsets, ids, width, height, tx, ty), visible


def _warp_backend(cache_dir: str):
    import warp as wp

    wp.config.kernel_cache_dir = cache_dir
    wp.config.quiet = True
    wp.init()

    @wp.kernel
    def composite(
        means2d: wp.array2d(dtype=float), conics: wp.array2d(dtype=float),
        colors: wp.array2d(dtype=float), opacities: wp.array(dtype=float),
        offsets: wp.array(dtype=wp.int64), ids: wp.array(dtype=wp.int32), tiles_x: int,
        render: wp.array3d(dtype=float), t_final: wp.array2d(dtype=float),
    ):  # fmt: skip
        y, x = wp.tid()
        tile = (y // 16) * tiles_x + x // 16
        px = float(x) + 0.5
        py = float(y) + 0.5
        T = float(1.0)
        r = float(0.0)
        g = float(0.0)
        b = float(0.0)
        for i in range(int(offsets[tile]), int(offsets[tile + 1])):
            k = ids[i]
            dx = means2d[k, 0] - px
            dy = means2d[k, 1] - py
            sig = 0.5 * (conics[k, 0] * dx * dx + conics[k, 2] * dy * dy) + conics[k, 1] * dx * dy
            if sig < 0.0:
                continue
            alpha = wp.min(0.999, opacities[k] * wp.exp(-sig))
            if alpha < 1.0 / 255.0:
                continue
            nt = T * (1.0 - alpha)
            if nt <= 1e-4:
                break
            w = alpha * T
            r += w * colors[k, 0]
            g += w * colors[k, 1]
            b += w * colors[k, 2]
            T = nt
        render[y, x, 0] = r
        render[y, x, 1] = g
        render[y, x, 2] = b
        t_final[y, x] = T

    def run(xy, con, col, op, offsets, ids, width, height, tx, ty):
        C, _, D = col.shape
        assert C == 1 and D == 3
        cpu = dict(device="cpu")
        a = [wp.array(t, dtype=float, **cpu) for t in (xy[0], con[0], col[0], op[0])]
        a += [wp.array(offsets, dtype=wp.int64, **cpu), wp.array(ids, dtype=wp.int32, **cpu), tx]
        render = wp.empty((height, width, D), dtype=float, **cpu)
        t_final = wp.empty((height, width), dtype=float, **cpu)
        wp.launch(composite, dim=(height, width), inputs=a + [render, t_final], **cpu)
        wp.synchronize_device("cpu")
        return render.numpy()[None], t_final.numpy()[None]

    return run, wp.__version__


def run_child(cache_dir: str, reps: int) -> dict:
    """Time both backends in this process (NUMBA_CACHE_DIR was set by the parent)."""
    import numba
    import numpy as np
    import torch

    from recon.render import cpu_kernels

    numba.set_num_threads(1)
    torch.set_num_threads(1)
    args, visible = _inputs()
    warp_run, warp_version = _warp_backend(cache_dir)
    def numba_run(xy, con, col, op, offsets, ids, width, height, tx, ty):
        G = cpu_kernels.pack(xy, con, col, op)  # the tile kernels take packed Gaussians (issue 26)
        return cpu_kernels.raster_fwd(G, offsets, ids, width, height, tx, ty)[:2]

    backends = {"numba": numba_run, "warp": warp_run}
    out = {"visible": visible, "isects": int(len(args[5])), "load": os.getloadavg()[0],
           "versions": f"numba {numba.__version__}, warp {warp_version}"}  # fmt: skip
    images = {}
    for name, fn in backends.items():
        cpu, wall = [], []
        for _ in range(reps + 1):  # the first call compiles or loads the cached kernel
            c0, t0 = time.process_time(), time.perf_counter()
            images[name] = fn(*args)
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - t0)
        out[name] = {"first_cpu": cpu[0], "first_wall": wall[0],
                     "median_cpu": float(np.median(cpu[1:])), "min_cpu": min(cpu[1:]),
                     "cores": sum(cpu[1:]) / sum(wall[1:])}  # fmt: skip
    (ra, ta), (rb, tb) = images["numba"], images["warp"]
    out["max_diff_rgb"] = float(np.abs(ra - rb).max())
    out["max_diff_T"] = float(np.abs(ta - tb).max())
    return out


def main() -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    ap.add_argument("--reps", type=int, default=5, help="timed passes per backend (median shown)")
    ap.add_argument("--cache-dir", help="kernel cache for both JITs (default: a fresh temp dir)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_child(args.cache_dir, args.reps)))
        return
    import importlib.util

    if importlib.util.find_spec("warp") is None:
        sys.exit("bench_backends.py needs NVIDIA Warp: pip install warp-lang")
    cache = args.cache_dir or tempfile.mkdtemp(prefix="bench_backends_")
    env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(cache, "numba"))
    runs = []
    for _ in ("cold", "cached"):
        cmd = [sys.executable, __file__, "--child", "--reps", str(args.reps),
               "--cache-dir", os.path.join(cache, "warp")]  # fmt: skip
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=SCRIPTS.parent)
        if p.returncode != 0:
            sys.exit(p.stderr)
        runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
    cold, warm = runs
    print(f"Case a: 20,000 Gaussians ({warm['visible']:,} visible, {warm['isects']:,} tile "
          f"intersections), 270×480, forward compositing only, 1 thread; "
          f"{warm['versions']}; load avg {warm['load']:.1f}. CPU seconds (process).\n")
    print("| backend | first call, cold cache | first call, cached | fwd median of "
          f"{args.reps} | fwd min | cores used (CPU/wall) |\n|---|---|---|---|---|---|")
    for b in ("numba", "warp"):
        c, w = cold[b], warm[b]
        print(f"| {b} | {c['first_cpu']:.2f} | {w['first_cpu']:.3f} | {w['median_cpu']:.4f} "
              f"| {w['min_cpu']:.4f} | {w['cores']:.2f} |")
    print(f"\nmax |numba − warp|: RGB {warm['max_diff_rgb']:.2e}, "
          f"transmittance {warm['max_diff_T']:.2e}")
    ratio = warm["warp"]["median_cpu"] / warm["numba"]["median_cpu"]
    faster = "numba" if ratio > 1 else "warp"
    print(f"\nConclusion: per core, the forward pass takes {ratio:.2f}× numba's CPU time in Warp "
          f"({faster} is faster); Warp's CPU launch ran on {warm['warp']['cores']:.2f} cores "
          f"(numba limited to 1 thread: {warm['numba']['cores']:.2f}).")


if __name__ == "__main__":
    main()
