"""A rough estimate of a run's time on this machine, said at the start of `recon run`.

A linear model per stage, fitted to this project's measurements on a 2-core x86-64 CPU
(docs/experiments.md, Speed); the GPU figures are gsplat's own (its 2,000-step fit of
50k Gaussians to 3 views at 400×300 took 4.6 s on an H200) and recon's CUDA path is untested.
"""

from __future__ import annotations

import os

from recon.scene import Scene

# optimise: ms per step ≈ STEP_MS[0] + STEP_MS[1] × megapixels of one view, the stage's own
# overheads (renders, checkpoints) included. Fast preset, 2 cores (AMD EPYC), 2026-12-06: the
# quick start (data/four_views, 4 × 536×800, ~24k Gaussians) 109, 122 and 134 s for 1000 steps in
# three fresh clones; the Gaussian count, unknown ahead, makes it ±30% on other scenes.
CPU_STEP_MS = (50.0, 168.0)
GPU_STEP_MS = (2.0, 5.0)
# poses from plain photos, s: SIFT + SfM (the quick start: 7.5-9.3 s; the affine-SIFT retry that
# weak models get takes several times longer)
SFM_S = (1.0, 2.5)  # fixed, per view
# init with stereo seeds, s per view and megapixel (the quick start: 16-23 s, median 18.3)
INIT_S_PER_VIEW_MP = 10.7


def estimate_seconds(scene: Scene, steps: int, device: str, posed: bool, seeds: bool | None = None
                     ) -> dict[str, float]:
    """Seconds per stage: {"poses", "init", "optimize"} (0 for work that will not run). seeds:
    whether init runs stereo (default: for posed views only; photos posed by SfM have its points)."""
    seeds = posed if seeds is None else seeds
    mp = sum(v.camera.width * v.camera.height for v in scene.views) / max(len(scene), 1) / 1e6
    cores = os.cpu_count() or 1
    slow = max(1.0, 2.0 / cores)  # measured on 2 cores; more cores are not assumed to help
    a, b = GPU_STEP_MS if device == "cuda" else CPU_STEP_MS
    return {
        "poses": 0.0 if posed else (SFM_S[0] + SFM_S[1] * len(scene)) * slow,
        "init": INIT_S_PER_VIEW_MP * len(scene) * mp * slow if seeds else 0.0,
        "optimize": steps * (a + b * mp) / 1000 * (1.0 if device == "cuda" else slow),
    }


def describe(scene: Scene, steps: int, device: str, posed: bool, seeds: bool | None = None) -> str:
    """One line: the estimate and what it is made of."""
    parts = estimate_seconds(scene, steps, device, posed, seeds)
    total = sum(parts.values())
    v = scene.views[0].camera
    what = ", ".join(f"{k} {_fmt(s)}" for k, s in parts.items() if s > 0)
    gpu = "; recon's GPU path is untested" if device == "cuda" else ""
    return (f"estimate: about {_fmt(total)} on this machine ({what}; {len(scene)} views at "
            f"{v.width}×{v.height}, {steps} steps{gpu})")


def _fmt(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 600 else f"{seconds / 60:.0f} min"
