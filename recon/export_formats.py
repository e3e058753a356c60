"""`recon export`: a run's splat and cameras in the formats other tools read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from recon.cache import atomic_write_bytes
from recon.errors import ReconError
from recon.gaussians import Gaussians
from recon.io.ply import write_ply
from recon.io.splat_formats import is_compressed_ply, read_splat
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


FORMATS = ("ply", "splat", "spz", "compressed-ply", "mesh", "video", "nerfstudio", "colmap")
DEFAULT_NAMES = {"ply": "export.ply", "splat": "splat.splat", "spz": "splat.spz",
                 "compressed-ply": "splat.compressed.ply", "mesh": "mesh.ply", "video": "flythrough.mp4",
                 "nerfstudio": "transforms.json", "colmap": "sparse/0"}  # fmt: skip


def _run_splat(run: Path) -> Path:
    """The splat file of a run folder (RUN/splat.ply) or the splat file itself (.ply or .spz)."""
    path = run / "splat.ply" if run.is_dir() else run
    if not path.is_file():
        raise ReconError("no splat.ply here (is this a run folder?)" if run.is_dir() or not run.suffix
                         else "no such splat file", run)
    return path


def _run_cameras(run: Path) -> list[tuple[str, Camera]]:
    path = run / "cameras.json"
    if not path.exists():
        raise ReconError("no cameras.json here (is this a run folder?)", run)
    try:
        records = json.loads(path.read_text())
        return [(r["name"], Camera(np.array(r["K"]), np.array(r["world_to_cam"]), r["width"], r["height"]))
                for r in records]
    except (ValueError, KeyError, TypeError) as e:
        raise ReconError(f"not a recon cameras.json ({type(e).__name__}: {e})", path) from None


def export_run(run: Path, fmt: str, out: Path | None = None, *, mesh=None, video=None, spz_version: int = 3,
               device: str = "auto", progress: bool = True) -> Path:
    """Write the run's splat (or the splat file `run`) as `fmt` to `out` (default: a file named
    for the format beside it); returns the path. mesh / video: MeshSettings / VideoSettings."""
    run = Path(run)
    if fmt not in FORMATS:
        raise ReconError(f"unknown export format '{fmt}' (one of {', '.join(FORMATS)})")
    src = _run_splat(run)  # every format refuses a folder without a splat
    base = run if run.is_dir() else run.parent
    dst = Path(out) if out is not None else base / DEFAULT_NAMES[fmt]
    if fmt in ("nerfstudio", "colmap"):
        cameras = _run_cameras(base)
        if fmt == "nerfstudio":
            from recon.io.nerfstudio import write_transforms

            write_transforms(dst, cameras)
        else:
            from recon.io.colmap import write_colmap_text

            write_colmap_text(dst, cameras)
        return dst
    if fmt == "ply" and not is_compressed_ply(src) and src.suffix.lower() == ".ply":
        atomic_write_bytes(dst, src.read_bytes())  # the Inria .ply as it is
        return dst
    g = read_splat(src)
    if fmt == "ply":
        write_ply(dst, g)
    elif fmt == "splat":
        atomic_write_bytes(dst, splat_bytes(g))
    elif fmt == "spz":
        from recon.io.spz import write_spz

        write_spz(dst, g, spz_version)
    elif fmt == "compressed-ply":
        from recon.io.compressed_ply import write_compressed_ply

        write_compressed_ply(dst, g)
    else:
        _export_rendered(fmt, g, [cam for _, cam in _run_cameras(base)], dst, mesh, video, device, progress)
    return dst


def _export_rendered(fmt: str, g: Gaussians, cameras: list[Camera], dst: Path, mesh, video, device: str,
                     progress: bool) -> None:
    if fmt == "mesh":
        from recon.exports.mesh import build_mesh, check_suffix, write_mesh

        check_suffix(dst)  # before minutes of fusion
        write_mesh(dst, build_mesh(g, cameras, mesh, device, progress))
    else:
        from recon.exports.video import write_video

        write_video(dst, g, cameras, video, device, progress)
