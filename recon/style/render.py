"""Renders of a splat for the stylize stage and its metrics: colour, alpha and expected depth of
one camera, without gradients, as numpy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recon.gaussians import Gaussians
from recon.render import rasterize
from recon.scene import Camera


@dataclass
class Rendered:
    """One camera's render: rgb [H,W,3] (over `background`), alpha [H,W], depth [H,W] (the expected
    depth Σw·z / α where α > 0, else 0)."""

    rgb: np.ndarray
    alpha: np.ndarray
    depth: np.ndarray


def render(g: Gaussians, cam: Camera, device: str = "cpu", background: tuple[float, float, float] = (0, 0, 0),
           backend: str = "auto") -> Rendered:
    means, quats, scales, opacities = g.activated()
    dev = torch.device(device)
    with torch.no_grad():
        out, alpha, _ = rasterize(
            means.float().to(dev), quats.float().to(dev), scales.float().to(dev), opacities.float().to(dev),
            g.colors_sh.float().to(dev),
            torch.tensor(cam.world_to_cam, dtype=torch.float32, device=dev)[None],
            torch.tensor(cam.K, dtype=torch.float32, device=dev)[None],
            cam.width, cam.height, sh_degree=g.sh_degree, render_mode="RGB+D", backend=backend,
            backgrounds=torch.tensor([background], dtype=torch.float32, device=dev),
        )
    a = alpha[0, ..., 0].cpu().numpy().astype(np.float32)
    depth = np.where(a > 1e-4, out[0, ..., 3].cpu().numpy() / np.maximum(a, 1e-4), 0.0).astype(np.float32)
    rgb = out[0, ..., :3].clamp(0, 1).cpu().numpy().astype(np.float32)
    return Rendered(rgb, a, depth)


def shrink(cam: Camera, max_side: int, min_side: int = 8) -> Camera:
    """`cam` scaled down (aspect kept) so that its longer side is at most max_side; as it is if
    already small enough."""
    s = max_side / max(cam.width, cam.height)
    if s >= 1:
        return cam
    return cam.resized(max(min_side, round(cam.width * s)), max(min_side, round(cam.height * s)))
