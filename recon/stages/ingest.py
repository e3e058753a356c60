"""ingest: read the photos (and their cameras and masks when the folder has them) into a Scene."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from recon.errors import NoCameras, ReconError
from recon.events import Observer
from recon.scene import Scene


@dataclass
class IngestConfig:
    downscale: int = 1
    """Integer downscale factor applied to every image (area filter)."""
    max_size: int | None = 1600
    """Longest image side in pixels after loading; larger photos are resized down. None keeps them."""
    masks: Literal["files", "auto", "none"] = "files"
    """Object masks. files: the dataset's mask files (or RGBA alpha) when every view has one, and
    automatic masks (as auto) for photos without files that the orbit path posed around an object;
    auto: made by u2netp and refined across the posed views (the masks stage; needs
    `pip install 'recon[learned]'`), replacing any files; none: no masks. For photos of an object
    on a background, auto lets init carve a visual hull and training fit the object alone; a scene
    (a room, a street) has no object to cut out, so auto is never the default."""


def run_ingest(cfg: IngestConfig, images: Path, obs: Observer) -> Scene:
    """Load `images` (a dataset folder with cameras, or a plain folder of photos). On a new
    install without CUDA, the CPU rasterizer's compilation starts here in the background, so
    it runs beside ingest and poses (recon.warmup)."""
    from recon.io.detect import load_scene

    _warm_up_rasterizer(obs)
    images = Path(images)
    if not images.exists():
        raise ReconError("no such file or folder", images)
    try:
        scene = load_scene(images, downscale=cfg.downscale, max_size=cfg.max_size,
                           with_masks=None if cfg.masks == "files" else False)
        scene.meta.setdefault("posed", True)
    except NoCameras:
        from recon.io.photos import load_photos

        scene = load_photos(images, max_size=cfg.max_size)
        obs.log(f"ingest: {len(scene)} photos without camera files; the poses stage will estimate them")
        return scene
    if len(scene) < 2:
        raise ReconError(f"only {len(scene)} view found; a reconstruction needs at least 2", images)
    masks = "with masks" if scene.has_masks else "no masks"
    obs.log(f"ingest: {len(scene)} views from {scene.source} ({masks})")
    return scene


def _warm_up_rasterizer(obs: Observer) -> None:
    import torch

    from recon import warmup

    if not torch.cuda.is_available():
        warmup.start(obs.log)
