"""`recon export`: a run's splat and cameras in the formats other tools read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from recon.cache import atomic_write_bytes
from recon.errors import ReconError
from recon.gaussians import Gaussians
from recon.io.ply import read_ply
from recon.scene import Camera


def splat_bytes(g: Gaussians) -> bytes:
    """The compact web `.splat` layout (antimatter15/splat, read by SuperSplat and many web viewers):
    32 bytes per Gaussian — position 3×f32, scale 3×f32 (activated), RGBA 4×u8 (SH degree 0 colour
    and opacity), rotation 4×u8 (wxyz normalised, mapped from [-1,1] to [0,255]); sorted by
    decreasing size·opacity so streaming viewers draw the important splats first."""
    means, quats, scales, opacities = (t.detach().float() for t in g.activated())
    rgba = torch.cat([g.rgb, opacities[:, None]], dim=1)
    order = torch.argsort(-(scales.prod(dim=1) * opacities))
    rec = np.zeros(len(g), dtype=[("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
    rec["pos"] = means[order].numpy()
    rec["scale"] = scales[order].numpy()
    rec["rgba"] = (rgba[order].clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
    rec["rot"] = ((quats[order] * 128 + 128).clamp(0, 255)).to(torch.uint8).numpy()
    return rec.tobytes()


def _run_ply(run: Path) -> Path:
    ply = run / "splat.ply" if run.is_dir() else run
    if not ply.exists():
        raise ReconError("no splat.ply here (is this a run folder?)", run)
    return ply


def _run_cameras(run: Path) -> list[tuple[str, Camera]]:
    path = run / "cameras.json"
    if not path.exists():
        raise ReconError("no cameras.json here (is this a run folder?)", run)
    records = json.loads(path.read_text())
    return [(r["name"], Camera(np.array(r["K"]), np.array(r["world_to_cam"]), r["width"], r["height"]))
            for r in records]


def export_run(run: Path, fmt: str, out: Path | None = None) -> Path:
    run = Path(run)
    base = run if run.is_dir() else run.parent
    if fmt == "ply":
        dst = out or base / "export.ply"
        shutil.copyfile(_run_ply(run), dst)
        return dst
    if fmt == "splat":
        dst = out or base / "splat.splat"
        atomic_write_bytes(Path(dst), splat_bytes(read_ply(_run_ply(run))))
        return Path(dst)
    cameras = _run_cameras(base)
    if fmt == "nerfstudio":
        from recon.io.nerfstudio import write_transforms

        dst = out or base / "transforms.json"
        write_transforms(Path(dst), cameras)
        return Path(dst)
    if fmt == "colmap":
        from recon.io.colmap import write_colmap_text

        dst = out or base / "sparse" / "0"
        write_colmap_text(Path(dst), cameras)
        return Path(dst)
    raise ReconError(f"unknown export format '{fmt}'")
