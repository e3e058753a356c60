"""`recon eval`: the command's options and entry point (the work is in recon.eval.evaluate)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from recon.pipeline import RunConfig


@dataclass
class Eval:
    """Evaluate on a benchmark protocol: train on its views, score its test views."""

    data: Path
    """The scene's dataset folder (e.g. a DTU scan in the NeuS/IDR or RegNeRF layout, an LLFF scene)."""
    protocol: Literal["dtu", "llff"] = "dtu"
    """Which split and metrics (see recon/eval/protocols.py)."""
    views: int = 3
    """Number of training views."""
    out: Path = Path("runs/eval")
    """Output folder: results.json, NAME/test/VIEW.png, NAME/run/."""
    preset: str = "default"
    """Preset from configs/ or a .yaml path."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    config: RunConfig = field(default_factory=RunConfig)
    """Per-stage settings; defaults come from the preset."""

    def main(self) -> None:
        from recon.eval.evaluate import evaluate_scene
        from recon.events import Observers
        from recon.progress import ConsoleProgress, RunLog

        cfg = dataclasses.replace(self.config, device=self.device)
        obs = Observers([ConsoleProgress(), RunLog(self.out / "eval.log")])
        results = evaluate_scene(self.protocol, self.data, self.views, cfg, self.preset, self.out, obs)
        m = results["mean"]
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"{self.protocol} {self.views}-view: PSNR {fmt(m['psnr'])}  masked PSNR {fmt(m['psnr_masked'])}  "
              f"SSIM {fmt(m['ssim'])}  LPIPS {fmt(m['lpips'])}  ({m['seconds']:.0f} s)  → {self.out / 'results.json'}")
        for note in results.get("notes", []):
            print(f"note: {note}")
