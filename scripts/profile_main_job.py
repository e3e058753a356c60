"""The main job's optimise stage, phase by phase.

`recon run --images data/four_views` (the README's quick start, fast preset): its poses, masks,
filters and init come from a finished run folder's cache (a copy: the folder is left alone), the
optimisation is rerun in-process with timers around the functions doing each phase
(scripts/bench_fox_step.py's Phases, plus gsplat's densification), and the median and mean
milliseconds per step are printed as a table.

    python scripts/profile_main_job.py --run runs/four_views

Prints only; the numbers go into docs/benchmarks.md by hand with the machine and date.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_fox_step import Phases, install  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "four_views", help="a finished `recon run` folder")
    ap.add_argument("--images", type=Path, default=ROOT / "data" / "four_views")
    args = ap.parse_args()
    from gsplat.strategy import DefaultStrategy

    from recon.events import Observer
    from recon.pipeline import run_pipeline
    from recon.presets import load_preset
    from recon.train.trainer import Trainer

    ph = Phases()
    install(ph)
    ph.wrap(DefaultStrategy, "step_pre_backward", "densification")
    ph.wrap(DefaultStrategy, "step_post_backward", "densification")
    _wrap_parts(ph)
    steps: list[float] = []
    one_step = Trainer._one_step

    def timed_step(self) -> None:
        t0 = time.perf_counter()
        one_step(self)
        steps.append(time.perf_counter() - t0)
        ph.end_step()

    Trainer._one_step = timed_step
    with tempfile.TemporaryDirectory(prefix="profile_main_job_") as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(args.run, run)
        t0 = time.perf_counter()
        run_pipeline(load_preset("fast"), run, Observer(), images=args.images, force="optimize", until="optimize")
        wall = time.perf_counter() - t0
    rows = _rows(ph, steps)
    print(f"optimise stage {wall:.1f} s, {len(steps)} steps\n\n| phase | ms / step, median | mean |\n|---|---|---|")
    for name, med, mean in rows:
        print(f"| {name} | {med:.1f} | {mean:.1f} |")


PART_HOOKS = ("prepare_target", "camera", "photo_render", "pixel_weight", "view_loss", "extra_loss", "after_step")
PART = "part: "
"""Rows of the Trainer's parts (forward work only, their own renders included, so they overlap
the render rows and stay out of the sums)."""


def _wrap_parts(ph: Phases) -> None:
    import importlib
    import pkgutil

    import recon.train.parts as parts
    from recon.train.part import Part

    for info in pkgutil.iter_modules(parts.__path__):
        module = importlib.import_module(f"recon.train.parts.{info.name}")
        for cls in vars(module).values():
            if isinstance(cls, type) and issubclass(cls, Part) and cls is not Part and cls.__module__ == module.__name__:
                for hook in PART_HOOKS:
                    if hook in vars(cls):
                        ph.wrap(cls, hook, f"{PART}{cls.__name__}.{hook}")


def _rows(ph: Phases, steps: list[float]) -> list[tuple[str, float, float]]:
    """(phase, median ms, mean ms), the backward's torch part apart from recon's kernels, and what
    no timer covers (parts, Python) as the rest."""
    n = len(steps)

    def stats(values: list[float]) -> tuple[float, float]:
        padded = values + [0.0] * (n - len(values))  # a phase that did not run on a step took 0
        return 1000 * statistics.median(padded), 1000 * sum(padded) / n

    table = {k: stats(v) for k, v in ph.times.items() if not k.startswith(PART)}
    parts = sorted(((k, *stats(v)) for k, v in ph.times.items() if k.startswith(PART)), key=lambda r: -r[2])
    kernels_bwd = ("raster bwd (pixels)", "raster bwd (sum per Gaussian)", "projection bwd")
    rows = [(k, *v) for k, v in table.items() if k != "backward (all)"]
    if "backward (all)" in table:
        rows.append(("backward: torch ops (loss, SH, parts, glue)",
                     *(table["backward (all)"][j] - sum(table.get(k, (0, 0))[j] for k in kernels_bwd) for j in (0, 1))))
    step_med, step_mean = 1000 * statistics.median(steps), 1000 * statistics.mean(steps)
    rows.append(("rest (parts' losses, Python)", step_med - sum(r[1] for r in rows), step_mean - sum(r[2] for r in rows)))
    rows.append(("**step**", step_med, step_mean))
    return rows + [(f"{k} (forward, its renders included)", med, mean) for k, med, mean in parts]


if __name__ == "__main__":
    main()
