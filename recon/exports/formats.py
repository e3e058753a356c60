"""`recon export`'s dispatch: each format's name, default file name and writer, over a run folder
(RUN/splat.ply, RUN/cameras.json) or a splat file. The file-format encoders are in recon/io/; the
mesh and video exports, which render the splat first, are in this package (mesh.py, video.py)."""

from __future__ import annotations

from pathlib import Path

from recon.cache import atomic_write_bytes
from recon.errors import ReconError
from recon.gaussians import Gaussians
from recon.io.cameras_json import read_cameras_json
from recon.io.ply import write_ply
from recon.io.splat import write_splat
from recon.io.splat_formats import is_compressed_ply, read_splat
from recon.scene import Camera

FORMATS = ("ply", "splat", "spz", "compressed-ply", "mesh", "video", "nerfstudio", "colmap")
SPLAT_FORMATS = ("ply", "splat", "spz", "compressed-ply")
"""The formats that hold the splat itself (the rest hold a mesh, a video or the cameras)."""
DEFAULT_NAMES = {"ply": "export.ply", "splat": "splat.splat", "spz": "splat.spz",
                 "compressed-ply": "splat.compressed.ply", "mesh": "mesh.ply", "video": "flythrough.mp4",
                 "nerfstudio": "transforms.json", "colmap": "sparse/0"}  # fmt: skip


def write_splat_as(fmt: str, path: Path, g: Gaussians, spz_version: int = 3) -> None:
    """Write `g` to `path` in the splat format `fmt` (one of SPLAT_FORMATS), atomically."""
    if fmt == "ply":
        write_ply(path, g)
    elif fmt == "splat":
        write_splat(path, g)
    elif fmt == "spz":
        from recon.io.spz import write_spz

        write_spz(path, g, spz_version)
    elif fmt == "compressed-ply":
        from recon.io.compressed_ply import write_compressed_ply

        write_compressed_ply(path, g)
    else:
        raise ValueError(f"not a splat format: {fmt!r} (one of {', '.join(SPLAT_FORMATS)})")


def _run_splat(run: Path) -> Path:
    """The splat file of a run folder (RUN/splat.ply) or the splat file itself (.ply or .spz)."""
    path = run / "splat.ply" if run.is_dir() else run
    if not path.is_file():
        raise ReconError("no splat.ply here (is this a run folder?)" if run.is_dir() or not run.suffix
                         else "no such splat file", run)
    return path


def _run_cameras(run: Path) -> list[tuple[str, Camera]]:
    """The run folder's training cameras (RUN/cameras.json), by view name."""
    path = run / "cameras.json"
    if not path.exists():
        raise ReconError("no cameras.json here (is this a run folder?)", run)
    return read_cameras_json(path)


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
    if fmt in SPLAT_FORMATS:
        write_splat_as(fmt, dst, g, spz_version)
    else:
        _export_rendered(fmt, g, [cam for _, cam in _run_cameras(base)], dst, mesh, video, device, progress)
    return dst


def _export_rendered(fmt: str, g: Gaussians, cameras: list[Camera], dst: Path, mesh, video, device: str,
                     progress: bool) -> None:
    """The exports that render the splat from many cameras first: the mesh and the video."""
    if fmt == "mesh":
        from recon.exports.mesh import build_mesh, check_suffix, write_mesh

        check_suffix(dst)  # before minutes of fusion
        write_mesh(dst, build_mesh(g, cameras, mesh, device, progress))
    else:
        from recon.exports.video import write_video

        write_video(dst, g, cameras, video, device, progress)
