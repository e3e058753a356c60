"""Where one fast-preset optimisation step spends its time (issue 13's step-time table).

    python scripts/bench_step.py [--steps 1000] [--no-docs] [--label before]

DTU scan37, the protocol's 3 training views (25/22/28) at 400×300, the fast preset's init (cached
in a temporary run folder), then the fast preset's optimise stage for --steps steps under
cProfile. Each phase is the inclusive time of the functions that do it (cProfile's cumulative
seconds); "pseudo view" includes its own render and loss, so the phases overlap where said, and
the table also gives the whole stage's wall time without the profiler (a second run), which is
the number a user sees. Replaces its section of docs/benchmarks.md (`<!-- bench:step -->`) unless
--no-docs.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp

ROOT = Path(__file__).resolve().parents[1]
DTU = ROOT.parent / "shared" / "data" / "dtu_scan37"

# phase → (file suffix, function name) pairs whose cumulative times add up to it. Functions of
# both the old loop (stages/optimize.py) and the Trainer (recon/train/) are listed, so the same
# script measures before and after.
PHASES: dict[str, list[tuple[str, str]]] = {
    "projection (fwd)": [("cpu_projection.py", "project_cpu")],
    "SH → colour (fwd)": [("sh.py", "sh_to_color")],
    "rasterise (fwd)": [("cpu.py", "forward")],
    "backward (all)": [("_tensor.py", "backward")],
    "photometric loss": [("losses.py", "photometric_loss"), ("losses.py", "weighted_l1")],
    "Adam": [("optimizer.py", "wrapper")],
    "densify (strategy + growth)": [("default.py", "step_pre_backward"), ("default.py", "step_post_backward")],
    "pseudo view (render + losses, overlaps the rows above)": [
        ("optimize.py", "_pseudo_losses"), ("pseudo.py", "extra_loss")],
    "  of which hull silhouette": [("visual_hull.py", "hull_silhouette")],
    "3D filter refresh": [("filter3d.py", "filter_variance")],
    "finite checks (+ metrics, in the Trainer)": [("optimize.py", "_check_finite"), ("trainer.py", "_record")],
}


def prepare(tmp: Path):
    from recon.eval.protocols import dtu_split
    from recon.events import Observer
    from recon.io.detect import load_scene
    from recon.pipeline import run_pipeline
    from recon.presets import load_preset

    cfg = load_preset("fast")
    scene = load_scene(DTU, downscale=4, indices=dtu_split(3).train)
    init = run_pipeline(cfg, tmp, Observer(), scene=scene, scene_key="bench_step", until="init")
    return cfg, scene, init.artifacts["init"]


def run_stage(cfg, scene, init, steps: int) -> float:
    import dataclasses

    from recon.events import Observer
    from recon.stages import optimize

    opt = dataclasses.replace(cfg.optimize, steps=steps, stream_every_s=1e9)
    t0 = time.perf_counter()
    optimize.run_optimize(opt, scene, init, Observer())
    return time.perf_counter() - t0


def phase_table(stats: pstats.Stats, total: float) -> list[tuple[str, float]]:
    rows = []
    for phase, funcs in PHASES.items():
        s = 0.0
        for (file, _line, name), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
            if any(file.endswith(f) and name == n for f, n in funcs):
                s += ct
        rows.append((phase, s))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000, help="optimisation steps (the fast preset has 1000)")
    ap.add_argument("--label", default="", help="a name for this measurement in the table heading")
    ap.add_argument("--no-docs", "--no-append", dest="no_docs", action="store_true",
                    help="print only, do not touch docs/benchmarks.md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg, scene, init = prepare(Path(tmp))
        run_stage(cfg, scene, init, 2)  # numba caches, first-call costs
        wall = run_stage(cfg, scene, init, args.steps)
        prof = cProfile.Profile()
        prof.enable()
        prof_wall = run_stage(cfg, scene, init, args.steps)
        prof.disable()
    stats = pstats.Stats(prof)
    rows = phase_table(stats, prof_wall)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    lines = [
        f"| phase | s in {args.steps} steps | ms / step | share of the profiled run |",
        "|---|---|---|---|",
    ]
    for phase, s in rows:
        lines.append(f"| {phase} | {s:.1f} | {1000 * s / args.steps:.1f} | {100 * s / prof_wall:.0f}% |")
    lines.append(f"| **whole stage, profiled** | {prof_wall:.1f} | {1000 * prof_wall / args.steps:.1f} | 100% |")
    lines.append(f"| **whole stage, not profiled** | {wall:.1f} | {1000 * wall / args.steps:.1f} | |")
    table = "\n".join(lines)
    print(table)
    stats.sort_stats("tottime").print_stats(15)
    if not args.no_docs:
        from bench_doc import replace_section

        load = os.getloadavg()[0]
        head = (f"## Step by phase: DTU scan37{' (' + args.label + ')' if args.label else ''}\n\n"
                f"- Command: `python scripts/bench_step.py --steps {args.steps}`: DTU "
                f"scan37 views 25/22/28 at 400×300, the fast preset's init and optimise stage "
                f"({len(init)} seeds), each phase cProfile's inclusive time\n"
                f"- Machine: {platform.platform()}, {os.cpu_count()} CPU cores; load average {load:.1f}; "
                f"commit {commit}\n- Date: {date.today()}\n\n")
        replace_section("step", head + table)


if __name__ == "__main__":
    main()
