"""export: the files a user takes away from a run folder: splat.ply (Inria 3DGS layout, read by
SuperSplat and the Inria viewer), cameras.json, and renders of the training views."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon.events import Observer
from recon.exports.formats import write_splat_as
from recon.gaussians import Gaussians
from recon.io.cameras_json import write_cameras_json
from recon.io.images import write_png
from recon.render.views import render_view
from recon.scene import Scene


UNSTYLED_PLY = "splat_unstyled.ply"
"""The splat before the stylize stage, beside a stylised splat.ply."""


@dataclass
class ExportConfig:
    renders: bool = True
    """Render every training view to RUN/renders/NAME.png (render | photo side by side)."""
    backend: str = "auto"
    """Rasterizer for the renders."""


def run_export(cfg: ExportConfig, scene: Scene, g: Gaussians, run_dir: Path, obs: Observer,
               device: str = "cpu", original: Gaussians | None = None) -> dict:
    """Write the run's deliverables; returns {"ply": path, "cameras": path, "renders": [paths]}.
    With `original` (the splat before stylisation), also splat_unstyled.ply, which the viewer
    offers beside splat.ply; without, a stale one from an earlier stylised run is removed."""
    run_dir = Path(run_dir)
    ply = run_dir / "splat.ply"
    write_splat_as("ply", ply, g)
    unstyled = run_dir / UNSTYLED_PLY
    if original is not None:
        write_splat_as("ply", unstyled, original)
    else:
        unstyled.unlink(missing_ok=True)
    cams = run_dir / "cameras.json"
    write_cameras_json(cams, [(v.name, v.camera) for v in scene.views])
    renders = []
    if cfg.renders:
        for v in scene.views:
            img = render_view(g, v.camera, cfg.backend, device)
            path = run_dir / "renders" / f"{v.name}.png"
            write_png(path, np.concatenate([img, v.image], axis=1))
            renders.append(str(path))
    obs.log(f"export: {ply} ({len(g)} Gaussians), {cams}, {len(renders)} renders")
    return {"ply": str(ply), "cameras": str(cams), "renders": renders}
