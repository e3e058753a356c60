"""`recon eval`: the command's options and entry point (the work is in recon.eval.batch)."""

from __future__ import annotations

import dataclasses
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import tyro

from recon.errors import ReconError
from recon.pipeline import RunConfig


@dataclass
class Eval:
    """Evaluate on benchmark protocols (DTU, LLFF, NeRF-synthetic, SpaRe): one scene or a batch, locally or on Ray."""

    data: Path
    """A scene folder (DTU scan, LLFF scene, Blender scene) or a data root holding many (SpaRe: its release folder)."""
    protocol: Literal["dtu", "llff", "blender", "spare", "holdout", "auto"] = "dtu"
    """Split and metrics (recon/eval/protocols.py, spare.py, holdout.py). auto: DTU, LLFF and Blender
    scenes by layout. holdout: a COLMAP dataset's photos, every (n/views)-th trained as plain photos
    (cameras estimated), the rest scored as novel views (e.g. lund_door, the bundled sample's scene);
    with a masks/ folder beside images/ also on the object (masked PSNR, SSIM and LPIPS in the mask's box)."""
    views: tuple[int, ...] = (3,)
    """Training view counts, e.g. --views 3 6 9 (SpaRe's split file fixes its own)."""
    scenes: tuple[str, ...] = ()
    """Scenes (default: all found): NAME, NAME@3 or NAME@3,6 (only those view counts), 'standard' (benchmark set)."""
    out: Path = Path("runs/eval")
    """Output folder: [views{N}/]results.json, results.csv, report.md, plots/, [views{N}/]NAME/{test,run}/."""
    preset: str = "auto"
    """auto (fast on a CPU, quality on a CUDA GPU), a preset from configs/ or a .yaml path."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    force: bool = False
    """Recompute finished jobs (by default a scene/view count finished with the same settings is reused)."""
    timeout: Optional[float] = None
    """Seconds per scene/view count: a job past it is stopped and recorded as timed out (own process per job)."""
    threads: Optional[int] = None
    """CPU threads per job, locally and per Ray task (default: CPU count); equal threads, equal numbers."""
    ray: Optional[tuple[str, ...]] = None
    """One Ray task per scene/view count: --ray (local Ray or $RAY_ADDRESS) or --ray ADDRESS (auto, ray://h:10001)."""
    gpus_per_task: Optional[float] = None
    """GPUs per Ray task (default: 1 with --device cuda, else 0)."""
    split: Optional[Path] = None
    """SpaRe split file (e.g. Track1_split_development.json); default: the one *split*.json in --data."""
    train_masks: Literal["none", "gt", "auto"] = "none"
    """What the training views' object masks are. none: the published protocols (RegNeRF,
    FreeNeRF, DNGaussian, CoR-GS train DTU on the full photos; masks only score); gt: the
    dataset's masks (not comparable with published numbers); auto: u2netp masks refined across
    the training views (`pip install 'recon[learned]'`)."""
    gt_cameras: bool = False
    """holdout: train the same photos on the dataset's cameras instead of estimating them (the upper
    bound the estimate is measured against); results.json says which (cameras: estimated | ground-truth)."""
    submission: bool = False
    """SpaRe: also write the challenge submission (1600x1200, SCENE/rect_XXX_3_r5000.png or cam_..., zip)."""
    config: RunConfig = field(default_factory=RunConfig)
    """Per-stage settings; defaults come from the preset."""
    preset_reason: tyro.conf.Suppress[Optional[str]] = None
    """How `auto` chose the preset."""

    def main(self) -> None:
        from recon.eval.batch import BatchSpec, run_batch

        if self.split is not None and self.protocol != "spare":
            raise ReconError("--split is the SpaRe split file: use it with --protocol spare")
        if self.gt_cameras and self.protocol != "holdout":
            raise ReconError("--gt-cameras trains the holdout protocol's photos on their known cameras: use it with "
                             "--protocol holdout")
        if any(n < 1 for n in self.views):
            raise ReconError(f"--views must be positive, got {list(self.views)}")
        options = {"split_file": str(self.split)} if self.split is not None else {}
        if self.gt_cameras:
            options["gt_cameras"] = True
        argv = sys.argv[1:]
        spec = BatchSpec(
            protocol=self.protocol, data=self.data, views=tuple(self.views), out=self.out,
            cfg=dataclasses.replace(self.config, device=self.device), preset=self.preset, scenes=tuple(self.scenes),
            protocol_options=options, force=self.force, timeout=self.timeout, threads=self.threads,
            submission=self.submission, ray=self.ray, gpus_per_task=self.gpus_per_task,
            progress=sys.stderr.isatty() and self.ray is None,
            command="recon " + shlex.join(argv) if argv[:1] == ["eval"] else "", preset_reason=self.preset_reason,
            train_masks=self.train_masks,
        )
        results = run_batch(spec)
        for n, data in results.items():
            m = data["mean"]
            fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
            ok = sum(e.get("status") == "ok" for e in data["scenes"].values())
            print(f"{data['protocol']} {n}-view ({ok}/{len(data['scenes'])} scenes): PSNR {fmt(m.get('psnr'))}  "
                  f"masked PSNR {fmt(m.get('psnr_masked'))}  SSIM {fmt(m.get('ssim'))}  LPIPS {fmt(m.get('lpips'))}")
            for note in data.get("notes", []):
                print(f"note: {note}")
        print(f"report: {self.out / 'report.md'}")
        failed = [(n, name) for n, d in results.items() for name, e in d["scenes"].items() if e.get("status") != "ok"]
        if failed:  # every output is written; the exit status tells scripts that something is missing
            raise ReconError(f"{len(failed)} scene/view count(s) failed or timed out "
                             f"({', '.join(f'{name}@{n}' for n, name in failed[:5])}): see {self.out / 'report.md'}")
