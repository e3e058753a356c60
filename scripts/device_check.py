"""GPU readiness in one run: recon's cpu backend against gsplat, `auto` following the tensors, and a
short fast-preset optimisation end to end on CUDA. Prints tables and one verdict line.

For each render case: random Gaussians (SH degree 3) in front of C cameras; both backends render
and back-propagate the same random weighting of renders and alphas. gsplat evaluates exp with
fast-math, so single pixels near the 1/255 alpha cut differ by more than float rounding; the gates
are therefore robust statistics, not the worst pixel:
  mean |image error| < 1e-5, pixels with error > 1e-3 < 0.1%, radii agreeing ≥ 99.9%,
  worst relative gradient error (‖g_cpu − g_gsplat‖ / ‖g_gsplat‖ over the five tensors) < 1e-2.
Then the end-to-end run: a synthetic posed scene (made here, nothing read from disk), the fast
preset's init and optimisation on CUDA; it must finish, stay finite and fit (PSNR > 20 dB).

  python scripts/device_check.py [--quick]
  python scripts/device_check.py --self-test   # no GPU: the same checks, dense reference vs cpu, on the CPU
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # synthetic.py: the test scenes

import torch  # noqa: E402

from recon.render import rasterize  # noqa: E402

NAMES = ("means", "quats", "scales", "opacities", "sh")
CASES = [  # name, N, width, height, cameras, render_mode
    ("small-rgb", 2_000, 160, 120, 1, "RGB"),
    ("mid-rgbd-2cam", 20_000, 320, 240, 2, "RGB+D"),
    ("odd-size-d", 5_000, 101, 67, 1, "D"),
    ("dense-400x300", 100_000, 400, 300, 1, "RGB"),
]
GATES = {"img_mean": 1e-5, "share_1e3": 1e-3, "radii_equal": 0.999, "grad_rel": 1e-2}


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


def compare(cpu, other) -> dict:
    err = (torch.cat([cpu[0], cpu[1]], -1) - torch.cat([other[0], other[1]], -1)).abs()
    worst, worst_name = 0.0, ""
    for n in NAMES:
        ref = other[3][n]
        rel = ((cpu[3][n] - ref).norm() / ref.norm().clamp_min(1e-20)).item()
        if rel > worst:
            worst, worst_name = rel, n
    return {"img_max": err.max().item(), "img_mean": err.mean().item(),
            "share_1e3": (err.amax(-1) > 1e-3).float().mean().item(),
            "radii_equal": (cpu[2] == other[2]).all(-1).float().mean().item(), "grad_rel": worst,
            "grad_worst": worst_name}  # fmt: skip


def passes(c: dict) -> bool:
    return (c["img_mean"] < GATES["img_mean"] and c["share_1e3"] < GATES["share_1e3"]
            and c["radii_equal"] >= GATES["radii_equal"] and c["grad_rel"] < GATES["grad_rel"])


def render_cases(cases, other: str, device: str, reps: int) -> bool:
    rows = []
    for name, n, w, h, cams, mode in cases:
        params, vm, K = scene(n, w, h, cams)
        gs, t_gs = run(other, device, params, vm, K, w, h, mode, reps=reps)
        cpu, t_cpu = run("cpu", "cpu", params, vm, K, w, h, mode, reps=3)
        rows.append((name, n, f"{w}x{h}", cams, mode, compare(cpu, gs), t_gs, t_cpu))
    print(f"\n| case | N | image | C | mode | img max | img mean | pixels > 1e-3 | radii equal | worst grad rel "
          f"(tensor) | {other} fwd+bwd ms | cpu fwd+bwd s | pass |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    ok = True
    for name, n, size, cams, mode, c, t_gs, t_cpu in rows:
        ok &= passes(c)
        print(f"| {name} | {n:,} | {size} | {cams} | {mode} | {c['img_max']:.1e} | {c['img_mean']:.1e} "
              f"| {100 * c['share_1e3']:.3f}% | {100 * c['radii_equal']:.3f}% | {c['grad_rel']:.1e} "
              f"({c['grad_worst']}) | {t_gs * 1e3:.2f} | {t_cpu:.3f} | {'yes' if passes(c) else 'NO'} |")
    return ok


def auto_follows_tensors() -> bool:
    """CPU tensors with `auto` on a CUDA machine go to the cpu backend (`--device cpu`)."""
    params, vm, K = scene(100, 32, 24, 1)
    _, _, meta = rasterize(*params, vm, K, 32, 24, sh_degree=3, backend="auto")
    ok = meta["backend"] == "cpu"
    print(f"\nauto backend with CPU tensors: {meta['backend']} ({'ok' if ok else 'WRONG'})")
    return ok


def end_to_end(device: str, steps: int) -> tuple[bool, str]:
    """The fast preset's init and optimisation of a synthetic posed scene on `device`."""
    from synthetic import colored_blob, render_scene, ring_cameras

    from recon.events import Observer
    from recon.pipeline import run_pipeline
    from recon.presets import load_preset

    cfg = load_preset("fast")
    cfg = dataclasses.replace(cfg, device=device, share_cpu=False,
                              optimize=dataclasses.replace(cfg.optimize, steps=steps, stream_every_s=1e9))
    scene = render_scene(colored_blob(2000), ring_cameras(4, 200, 150))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = run_pipeline(cfg, Path(tmp), Observer(), scene=scene, scene_key="device_check", until="optimize")
        seconds = time.perf_counter() - t0
    trained = result.artifacts["optimize"]
    psnr = trained.log.psnr[-1]
    finite = all(torch.isfinite(getattr(trained.gaussians, k)).all() for k in ("means", "scales", "opacities"))
    ok = finite and psnr > 20.0
    line = (f"fast preset end to end on {device}: {steps} steps, {len(trained.gaussians):,} Gaussians, "
            f"training PSNR {psnr:.2f} dB, {seconds:.1f} s (optimise {result.seconds['optimize']:.1f} s)")
    print("\n" + line + ("" if ok else " — FAILED (non-finite or PSNR ≤ 20 dB)"))
    return ok, line


def bench_cases() -> None:
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="first two render cases, no timing cases")
    ap.add_argument("--steps", type=int, default=1000, help="optimisation steps of the end-to-end run")
    ap.add_argument("--self-test", action="store_true",
                    help="no GPU: the dense reference for gsplat and the CPU for CUDA (checks this script)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.self_test:
        other, device, reps = "reference", "cpu", 0
        cases = [(name, n // 100, w // 4, h // 4, c, m) for name, n, w, h, c, m in CASES[:3]]
        args.quick, args.steps = True, min(args.steps, 300)
    else:
        if not torch.cuda.is_available():
            print("verdict: FAIL (no CUDA device visible to torch)")
            sys.exit(1)
        other, device, reps = "gsplat", "cuda", 20
        cases = CASES[:2] if args.quick else CASES
        print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, CPU threads {torch.get_num_threads()}")
        warm = scene(10, 32, 32, 1)
        run("gsplat", "cuda", *warm, 32, 32, "RGB", reps=0)  # compiles gsplat's CUDA code
        print(f"gsplat first call (incl. compile): {time.perf_counter() - t0:.1f} s")
    checks = {"render agreement": render_cases(cases, other, device, reps), "auto backend": auto_follows_tensors()}
    checks["end to end"], e2e = end_to_end(device, args.steps)
    if not args.quick:
        bench_cases()
    failed = [k for k, ok in checks.items() if not ok]
    print(f"\nverdict: {'PASS' if not failed else 'FAIL: ' + ', '.join(failed)} — gates: image mean < 1e-5, "
          f"< 0.1% pixels off by 1e-3, radii ≥ 99.9%, gradients < 1e-2 relative; {e2e}; "
          f"{time.perf_counter() - t0:.0f} s in all")
    sys.exit(0 if not failed else 1)


if __name__ == "__main__":
    main()
