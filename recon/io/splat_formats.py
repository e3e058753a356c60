"""Read a splat from any file recon writes: a 3DGS .ply, SuperSplat's compressed .ply or a .spz."""

from __future__ import annotations

from pathlib import Path

from recon.errors import ReconError
from recon.gaussians import Gaussians

SPLAT_SUFFIXES = (".ply", ".spz")


def is_compressed_ply(path: Path) -> bool:
    """Whether the .ply's header declares a `chunk` element (the compressed layout)."""
    with open(path, "rb") as f:
        head = f.read(4096)
    end = head.find(b"end_header")
    header = head[: end if end >= 0 else len(head)].decode("ascii", errors="replace")
    return any(line.split()[:2] == ["element", "chunk"] for line in header.splitlines())


def read_splat(path: str | Path) -> Gaussians:
    """The splat in `path`, by its suffix and (for .ply) its header."""
    path = Path(path)
    if not path.is_file():
        raise ReconError("no such splat file", path)
    suffix = path.suffix.lower()
    if suffix == ".spz":
        from recon.io.spz import read_spz

        return read_spz(path)
    if suffix == ".ply":
        if is_compressed_ply(path):
            from recon.io.compressed_ply import read_compressed_ply

            return read_compressed_ply(path)
        from recon.io.ply import read_ply

        return read_ply(path)
    raise ReconError(f"not a splat file recon reads ({', '.join(SPLAT_SUFFIXES)})", path)
