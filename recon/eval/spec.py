"""What a batch evaluation is asked to do (the `recon eval` options, minus the CLI), and the mean of
its scenes' entries: shared by the batch runner (batch.py) and its report (report.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recon.pipeline import RunConfig


@dataclass
class BatchSpec:
    """Everything a batch needs (the `recon eval` options, minus the CLI)."""

    protocol: str
    data: Path
    views: tuple[int, ...]
    out: Path
    cfg: RunConfig = field(default_factory=RunConfig)
    preset: str = "fast"
    scenes: tuple[str, ...] = ()
    protocol_options: dict = field(default_factory=dict)
    force: bool = False
    timeout: float | None = None
    threads: int | None = None
    submission: bool = False
    ray: tuple[str, ...] | None = None
    gpus_per_task: float | None = None
    progress: bool = False
    command: str = ""
    train_masks: str = "none"
    """none | gt | auto: what the training views' masks are (see `recon eval --help`)."""
    preset_reason: str | None = None
    """How `--preset auto` chose the preset, said with the batch's first line."""


def mean_entry(entries: list[dict], keys: tuple[str, ...]) -> dict:
    """Means over the finished scenes; a metric is null if any of them lacks it."""
    ok = [e for e in entries if e.get("status") == "ok"]
    out = {}
    for k in (*keys, "train_psnr", "seconds", "num_gaussians"):
        values = [e.get(k) for e in ok]
        out[k] = None if not values or any(v is None for v in values) else float(np.mean(values))
    return out


