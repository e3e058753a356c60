"""recon's training step on OpenSplat's fox setup, and where it spends its time (issue 26, item 4).

    python scripts/bench_fox_step.py [--steps 60] [--threads 2] [--profile] [--quiet]
    python scripts/bench_fox_step.py --write-opensplat DIR   # the same setup for OpenSplat

The setup (as scripts/bench_raster.py case a, and OpenSplat 1.2.0's `--cpu` run of it in
scripts/bench_opensplat.sh): the instant-ngp fox, all 67 views 4× downscaled (270×480), 20,000
Gaussians uniform in a cube of half-side 2 around (0.027, −0.061, −0.017) in the transforms.json
frame, isotropic scale = mean distance to the 3 nearest neighbours, opacity 0.1, random colours,
SH degree 3 raised every 1000 steps (OpenSplat's default: degree 0 throughout a short run), no
densification, L1 + 0.2·(1 − SSIM), Adam, black background, the vanilla preset's learning rates.

Time per step is the wall time of `steps` Trainer steps after 5 warm-up steps (numba's cache
loaded, allocator warm). --profile wraps the functions doing each phase with timers and prints
a table (ms per step, median over the steps); its total is the same steps' mean.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp (as recon/__init__)

ROOT = Path(__file__).resolve().parents[1]
FOX = Path(os.environ.get("RECON_FOX", ROOT.parent / "shared/data/instant_ngp_fox"))
CENTER = (0.027, -0.061, -0.017)
N_GAUSSIANS = 20_000


def random_points(n: int = N_GAUSSIANS):
    """(points [n,3], colours [n,3] in [0,1], scales [n]) as scripts/bench_raster.py case a."""
    import numpy as np
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(0)
    pts = np.array(CENTER) + rng.uniform(-2, 2, (n, 3))
    dist, _ = cKDTree(pts).query(pts, k=4)
    rgb = rng.uniform(0, 1, (n, 3))
    return pts, rgb, dist[:, 1:].mean(axis=1)


def write_opensplat(out: Path) -> None:
    """A nerfstudio folder OpenSplat reads: the fox's transforms.json with the random points as its
    ply_file_path (OpenSplat needs one) and the images linked in."""
    pts, rgb, _ = random_points()
    out.mkdir(parents=True, exist_ok=True)
    meta = json.loads((FOX / "transforms.json").read_text())
    meta.update(camera_model="OPENCV", ply_file_path="points.ply")
    (out / "transforms.json").write_text(json.dumps(meta))
    if not (out / "images").exists():
        (out / "images").symlink_to(FOX / "images")
    with open(out / "points.ply", "w") as f:
        f.write("ply\nformat ascii 1.0\nelement vertex %d\nproperty float x\nproperty float y\n"
                "property float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\n"
                "end_header\n" % len(pts))
        for p, c in zip(pts, (rgb * 255).round().astype(int)):
            f.write(f"{p[0]:.6f} {p[1]:.6f} {p[2]:.6f} {c[0]} {c[1]} {c[2]}\n")
    for stale in (out / "out.ply", out / "cameras.json"):
        stale.unlink(missing_ok=True)


def make_trainer(steps: int):
    import dataclasses

    import torch

    from recon.gaussians import Gaussians, rgb_to_sh0
    from recon.io.detect import load_scene
    from recon.presets import load_preset
    from recon.train.trainer import Trainer

    pts, rgb, scale = random_points()
    n = len(pts)
    f32 = dict(dtype=torch.float32)
    init = Gaussians(
        means=torch.tensor(pts, **f32), quats=torch.tensor([[1.0, 0, 0, 0]], **f32).repeat(n, 1),
        scales=torch.tensor(scale, **f32).log()[:, None].repeat(1, 3),
        opacities=torch.logit(torch.full((n,), 0.1, **f32)),
        sh0=rgb_to_sh0(torch.tensor(rgb, **f32))[:, None], shN=torch.zeros(n, 15, 3, **f32),
    )  # fmt: skip
    scene = load_scene(FOX, downscale=4)
    opt = load_preset("vanilla").optimize
    opt = dataclasses.replace(opt, steps=steps, sh_degree_interval=1000, backend="cpu", stream_every_s=1e9,
                              densify=dataclasses.replace(opt.densify, enabled=False), background="black")
    return Trainer(opt, scene, init)


class Phases:
    """Timers around the functions that do each phase (module attributes replaced in place)."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)
        self.current: dict[str, float] = defaultdict(float)

    def wrap(self, owner, attr: str, phase: str) -> None:
        fn = getattr(owner, attr, None)
        if fn is None:
            return

        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.current[phase] += time.perf_counter() - t0

        setattr(owner, attr, timed)

    def end_step(self) -> None:
        for k, v in self.current.items():
            self.times[k].append(v)
        self.current.clear()


def install(ph: Phases) -> None:
    import torch

    import recon.render as front
    from recon import losses
    from recon.render import cpu, cpu_kernels, cpu_projection
    from recon.train import splat

    ph.wrap(cpu_projection, "project_fwd", "projection fwd")
    ph.wrap(front, "sh_to_color", "SH fwd")
    ph.wrap(cpu, "bin_gaussians", "binning + depth sort")
    ph.wrap(cpu_kernels, "raster_fwd", "raster fwd (pixels)")
    ph.wrap(cpu_kernels, "raster_bwd", "raster bwd (pixels)")
    ph.wrap(cpu_kernels, "scatter_isects", "raster bwd (sum per Gaussian)")
    ph.wrap(cpu_projection, "project_bwd", "projection bwd")
    ph.wrap(losses, "photometric_loss", "loss fwd (L1 + SSIM)")
    ph.wrap(torch.Tensor, "backward", "backward (all)")
    ph.wrap(splat.Splat, "step", "Adam")


def profile(trainer, steps: int) -> list[tuple[str, float]]:
    ph = Phases()
    install(ph)
    step_times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        trainer.train(1)
        step_times.append(time.perf_counter() - t0)
        ph.end_step()
    med = {k: 1000 * statistics.median(v) for k, v in ph.times.items()}
    inside_bwd = sum(med.get(k, 0.0) for k in ("raster bwd (pixels)", "raster bwd (sum per Gaussian)",
                                               "projection bwd"))
    rows = [(k, med[k]) for k in ph.times if k != "backward (all)"]
    if "backward (all)" in med:
        rows.append(("backward: torch ops (SSIM, L1, SH, glue)", med["backward (all)"] - inside_bwd))
    step = 1000 * statistics.mean(step_times)
    rows.append(("rest (glue, conversions, Python)", step - sum(v for _, v in rows)))
    rows.append(("**step (mean)**", step))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--profile", action="store_true", help="per-phase table")
    ap.add_argument("--quiet", action="store_true", help="print only the seconds per step")
    ap.add_argument("--write-opensplat", type=Path, help="write OpenSplat's input folder here and exit")
    args = ap.parse_args()
    if args.write_opensplat:
        write_opensplat(args.write_opensplat)
        return
    import numba
    import torch

    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    trainer = make_trainer(args.steps + 5)
    trainer.train(5)
    if args.profile:
        rows = profile(trainer, args.steps)
        print("| phase | ms / step |\n|---|---|")
        for k, v in rows:
            print(f"| {k} | {v:.1f} |")
        return
    t0 = time.perf_counter()
    trainer.train(args.steps)
    per_step = (time.perf_counter() - t0) / args.steps
    print(f"{per_step:.4f}" if args.quiet else
          f"{per_step:.4f} s/step ({args.steps} steps, {args.threads} threads, {len(trainer.splat)} Gaussians, "
          f"{trainer.scene.views[0].image.shape[1]}x{trainer.scene.views[0].image.shape[0]})")


if __name__ == "__main__":
    main()
    sys.stdout.flush()
