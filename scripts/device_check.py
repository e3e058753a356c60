"""Compare recon's cpu backend with gsplat on a CUDA machine, and time gsplat on the same cases.

For each case: random Gaussians (SH degree 3) in front of C cameras; both backends render and
back-propagate the same random weighting of renders and alphas; the table gives the image error
(max / mean abs), whether the radii agree, the worst relative gradient error over the five
Gaussian tensors (‖g_cpu − g_gsplat‖ / ‖g_gsplat‖, and which tensor), and fwd+bwd seconds for
gsplat (median of 20, synchronised) and the cpu backend (median of 3). Then the issue-3 benchmark
cases a/b/c timed on gsplat alone. Budget: gsplat's first use compiles its CUDA code (≈1 min).

  python scripts/device_check.py [--quick]
  python scripts/device_check.py --self-test   # no GPU: the same table, dense reference vs cpu
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from recon.render import rasterize  # noqa: E402

NAMES = ("means", "quats", "scales", "opacities", "sh")
CASES = [  # name, N, width, height, cameras, render_mode
    ("small-rgb", 2_000, 160, 120, 1, "RGB"),
    ("mid-rgbd-2cam", 20_000, 320, 240, 2, "RGB+D"),
    ("odd-size-d", 5_000, 101, 67, 1, "D"),
    ("dense-400x300", 100_000, 400, 300, 1, "RGB"),
]


def scene(n: int, width: int, height: int, cams: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * torch.tensor([1.0, 0.8, 0.6])
    means[:, 2] += 4.0
    quats = torch.randn(n, 4, generator=g)
    scales = torch.exp(torch.empty(n, 3).uniform_(math.log(0.005), math.log(0.08), generator=g))
    opac = torch.empty(n).uniform_(0.05, 0.95, generator=g)
    sh = torch.randn(n, 16, 3, generator=g) * 0.3
    viewmats = torch.eye(4).repeat(cams, 1, 1)
    for i in range(cams):
        a = 0.1 * i
        viewmats[i, :3, :3] = torch.tensor(
            [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]]
        )
    f = 0.9 * width
    Ks = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]]).repeat(cams, 1, 1)
    return [means, quats, scales, opac, sh], viewmats, Ks


def run(backend: str, device: str, params, viewmats, Ks, width, height, mode, reps: int):
    """→ (renders, alphas, radii, grads dict) on the CPU, median fwd+bwd seconds."""
    leaves = [p.to(device).requires_grad_(True) for p in params]
    vm, K = viewmats.to(device), Ks.to(device)
    times = []
    for _ in range(reps + 1):
        for p in leaves:
            p.grad = None
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        r, a, meta = rasterize(*leaves, vm, K, width, height, sh_degree=3, render_mode=mode,
                               backend=backend)  # fmt: skip
        g = torch.Generator(device="cpu").manual_seed(1)
        w_r = torch.randn(r.shape, generator=g).to(device)
        w_a = torch.randn(a.shape, generator=g).to(device)
        ((r * w_r).sum() + (a * w_a).sum()).backward()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    # A "D" render doesn't use the SH coefficients: their grad is None, i.e. zero.
    grads = {n: (torch.zeros_like(p) if p.grad is None else p.grad).detach().cpu()
             for n, p in zip(NAMES, leaves)}  # fmt: skip
    out = (r.detach().cpu(), a.detach().cpu(), meta["radii"].cpu(), grads)
    return out, statistics.median(times[1:] or times)


def compare(cpu, gs) -> dict:
    img = torch.cat([cpu[0], cpu[1]], -1) - torch.cat([gs[0], gs[1]], -1)
    worst, worst_name = 0.0, ""
    for n in NAMES:
        ref = gs[3][n]
        rel = ((cpu[3][n] - ref).norm() / ref.norm().clamp_min(1e-20)).item()
        if rel > worst:
            worst, worst_name = rel, n
    return {"img_max": img.abs().max().item(), "img_mean": img.abs().mean().item(),
            "radii_equal": (cpu[2] == gs[2]).float().mean().item(), "grad_rel": worst,
            "grad_worst": worst_name}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="first two cases only, no a/b/c timing")
    ap.add_argument("--self-test", action="store_true",
                    help="no GPU: compare with the dense reference on tiny cases (checks this script)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.self_test:
        other, device, reps = "reference", "cpu", 0
        cases = [(name, n // 100, w // 4, h // 4, c, m) for name, n, w, h, c, m in CASES[:3]]
        args.quick = True
    else:
        if not torch.cuda.is_available():
            sys.exit("device_check: no CUDA device visible to torch; run this on a GPU machine")
        other, device, reps = "gsplat", "cuda", 20
        cases = CASES[:2] if args.quick else CASES
        print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, "
              f"CPU threads {torch.get_num_threads()}")  # fmt: skip
        warm = scene(10, 32, 32, 1)
        run("gsplat", "cuda", *warm, 32, 32, "RGB", reps=0)  # compiles gsplat's CUDA code
        print(f"gsplat first call (incl. compile): {time.perf_counter() - t0:.1f} s")

    rows = []
    for name, n, w, h, cams, mode in cases:
        params, vm, K = scene(n, w, h, cams)
        gs, t_gs = run(other, device, params, vm, K, w, h, mode, reps=reps)
        cpu, t_cpu = run("cpu", "cpu", params, vm, K, w, h, mode, reps=3)
        rows.append((name, n, f"{w}x{h}", cams, mode, compare(cpu, gs), t_gs, t_cpu))
    print(f"\n| case | N | image | C | mode | img max abs | img mean abs | radii equal | worst grad rel "
          f"(tensor) | {other} fwd+bwd ms | cpu fwd+bwd s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    ok = True
    for name, n, size, cams, mode, c, t_gs, t_cpu in rows:
        ok &= c["img_max"] < 1e-4 and c["grad_rel"] < 1e-3
        print(f"| {name} | {n:,} | {size} | {cams} | {mode} | {c['img_max']:.2e} | {c['img_mean']:.2e} "
              f"| {c['radii_equal']:.4f} | {c['grad_rel']:.2e} ({c['grad_worst']}) | {t_gs * 1e3:.2f} "
              f"| {t_cpu:.3f} |")  # fmt: skip
    if not args.quick:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_raster import _make_case  # the issue-3 cases, same construction

        print("\n| bench case | N | image | gsplat fwd+bwd ms |\n|---|---|---|---|")
        for case in ("a", "b", "c"):
            params, vm, K, w, h = _make_case(case)
            leaves = [p.cuda().requires_grad_(True) for p in params]
            times = []
            for _ in range(21):
                torch.cuda.synchronize()
                t1 = time.perf_counter()
                r, _, _ = rasterize(*leaves, vm.cuda(), K.cuda(), w, h, sh_degree=0, backend="gsplat")
                r.mean().backward()
                torch.cuda.synchronize()
                times.append(time.perf_counter() - t1)
            print(f"| {case} | {len(params[0]):,} | {w}x{h} | {statistics.median(times[1:]) * 1e3:.2f} |")
    print(f"\nverdict: {'PASS' if ok else 'FAIL'} (image max abs < 1e-4, gradients < 1e-3 relative)")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
