"""The compact web `.splat` layout (antimatter15/splat, read by SuperSplat and many web viewers).

32 bytes per Gaussian, no header: position 3×f32, scale 3×f32 (activated), RGBA 4×u8 (SH degree 0
colour and opacity), rotation 4×u8 (wxyz normalised, mapped from [-1,1] to [0,255]); sorted by
decreasing size·opacity so streaming viewers draw the important splats first. Write-only: the
layout drops the higher SH bands, so recon never reads a splat back from it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from recon.cache import atomic_write_bytes
from recon.gaussians import Gaussians

RECORD = np.dtype([("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])


def splat_bytes(g: Gaussians) -> bytes:
    """The splat in the `.splat` layout (see the module docstring)."""
    means, quats, scales, opacities = (t.detach().float() for t in g.activated())
    rgba = torch.cat([g.rgb, opacities[:, None]], dim=1)
    order = torch.argsort(-(scales.prod(dim=1) * opacities))
    rec = np.zeros(len(g), dtype=RECORD)
    rec["pos"] = means[order].numpy()
    rec["scale"] = scales[order].numpy()
    rec["rgba"] = (rgba[order].clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
    rec["rot"] = ((quats[order] * 128 + 128).clamp(0, 255)).to(torch.uint8).numpy()
    return rec.tobytes()


def write_splat(path: str | Path, g: Gaussians) -> None:
    """Atomically write the splat as a `.splat` file."""
    atomic_write_bytes(Path(path), splat_bytes(g))
