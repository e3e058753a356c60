"""Protocols by name, and which protocol a scene folder's layout belongs to."""

from __future__ import annotations

from pathlib import Path

from recon.errors import ReconError
from recon.eval.holdout import Holdout
from recon.eval.protocols import DTU, LLFF, Blender, Protocol, is_regnerf_root
from recon.eval.spare import Spare
from recon.io.dtu import find_idr_cameras

PROTOCOLS: dict[str, type[Protocol]] = {"dtu": DTU, "llff": LLFF, "blender": Blender, "spare": Spare,
                                         "holdout": Holdout}


def make_protocol(name: str, **options) -> Protocol:
    """A protocol by name ("dtu", "llff", "blender", "spare") with its options."""
    if name not in PROTOCOLS:
        raise ReconError(f"unknown protocol '{name}'; protocols: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name](**options)


def get_protocol(name: str) -> Protocol:
    """The protocol with its standard settings."""
    return make_protocol(name)


def detect_protocol(path: Path) -> str | None:
    """Which protocol a scene folder belongs to, from its layout (for --protocol auto)."""
    path = Path(path)
    if find_idr_cameras(path) is not None or is_regnerf_root(path) or (
            path.parent.name == "Rectified" and is_regnerf_root(path.parent.parent)):
        return "dtu"
    if (path / "poses_bounds.npy").is_file():
        return "llff"
    if (path / "transforms_train.json").is_file() and (path / "transforms_test.json").is_file():
        return "blender"
    return None
