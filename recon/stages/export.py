"""export: the files a user takes away from a run folder: splat.ply (Inria 3DGS layout, read by
SuperSplat and the Inria viewer), cameras.json, and renders of the training views."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from recon.cache import atomic_write_bytes, atomic_write_json
from recon.events import Observer
from recon.gaussians import Gaussians
from recon.io.ply import write_ply
from recon.render import rasterize
from recon.scene import Camera, Scene


UNSTYLED_PLY = "splat_unstyled.ply"
"""The splat before the stylize stage, beside a stylised splat.ply."""


@dataclass
class ExportConfig:
    renders: bool = True
    """Render every training view to RUN/renders/NAME.png (render | photo side by side)."""
    backend: str = "auto"
    """Rasterizer for the renders."""


def camera_record(name: str, cam: Camera) -> dict:
    return {"name": name, "width": cam.width, "height": cam.height,
            "K": cam.K.tolist(), "world_to_cam": cam.world_to_cam.tolist()}


def render_view(g: Gaussians, cam: Camera, backend: str = "auto", device: str = "cpu") -> np.ndarray:
    """[H,W,3] float32 render of the splat seen by `cam`."""
    means, quats, scales, opacities = g.activated()
    with torch.no_grad():
        img, _, _ = rasterize(
            means.to(device), quats.to(device), scales.to(device), opacities.to(device),
            g.colors_sh.to(device),
            torch.tensor(cam.world_to_cam, dtype=torch.float32, device=device)[None],
            torch.tensor(cam.K, dtype=torch.float32, device=device)[None],
            cam.width, cam.height, sh_degree=g.sh_degree, backend=backend,
        )
    return img[0].clamp(0, 1).cpu().numpy()


def write_png(path: Path, image: np.ndarray) -> None:
    """Atomically write a float [H,W,3] image in [0,1] as an 8-bit PNG."""
    data = iio.imwrite("<bytes>", (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), extension=".png")
    atomic_write_bytes(path, data)


def run_export(cfg: ExportConfig, scene: Scene, g: Gaussians, run_dir: Path, obs: Observer,
               device: str = "cpu", original: Gaussians | None = None) -> dict:
    """Write the run's deliverables; returns {"ply": path, "cameras": path, "renders": [paths]}.
    With `original` (the splat before stylisation), also splat_unstyled.ply, which the viewer
    offers beside splat.ply; without, a stale one from an earlier stylised run is removed."""
    run_dir = Path(run_dir)
    ply = run_dir / "splat.ply"
    write_ply(ply, g)
    unstyled = run_dir / UNSTYLED_PLY
    if original is not None:
        write_ply(unstyled, original)
    else:
        unstyled.unlink(missing_ok=True)
    cams = run_dir / "cameras.json"
    atomic_write_json(cams, [camera_record(v.name, v.camera) for v in scene.views])
    renders = []
    if cfg.renders:
        for v in scene.views:
            img = render_view(g, v.camera, cfg.backend, device)
            path = run_dir / "renders" / f"{v.name}.png"
            write_png(path, np.concatenate([img, v.image], axis=1))
            renders.append(str(path))
    obs.log(f"export: {ply} ({len(g)} Gaussians), {cams}, {len(renders)} renders")
    return {"ply": str(ply), "cameras": str(cams), "renders": renders}
