"""poses: cameras for every view. Known poses pass through; unposed photos need estimation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from recon.errors import ReconError
from recon.events import Observer
from recon.scene import Scene


@dataclass
class PosesConfig:
    method: Literal["auto", "known"] = "auto"
    """auto: keep the dataset's cameras when it has them, otherwise estimate them; known: require camera files."""


def run_poses(cfg: PosesConfig, scene: Scene, out_dir: Path, obs: Observer) -> Scene:
    """Return `scene` with every view posed (scene.meta["posed"] is True)."""
    if scene.meta.get("posed", True):
        obs.log(f"poses: using the {len(scene)} cameras from {scene.source}")
        return scene
    raise ReconError("no camera files found and pose estimation is not available yet", scene.source)
