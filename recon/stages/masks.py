"""masks: object masks for posed views that have none, when asked (`--config.ingest.masks auto`)
or where the poses stage's orbit path posed photos taken around one object.

u2netp's per-view salient-object probability (recon/masks/saliency.py), made consistent across the
views with their poses (recon/masks/refine.py: a k-of-n soft visual hull, then GrabCut from its
silhouette). The masks then drive everything that masks drive: the visual-hull seeds of init and
masked training on a random background. Written to RUN/masks/NAME.png, with RUN/masks/contact.png
(photo | network | refined) to look at. `files` and `none` leave the scene as ingest read it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from recon.events import Observer
from recon.io.images import contact_sheet, save_image, save_mask
from recon.masks.refine import RefineConfig, refine_masks
from recon.masks.saliency import SaliencyModel
from recon.scene import Scene


def run_masks(mode: str, scene: Scene, run_dir: Path, obs: Observer, model: str | None = None) -> Scene:
    """The scene with automatic masks (mode "auto", or "files" where the orbit path posed photos
    that have no mask files), or unchanged."""
    if mode == "files" and not scene.has_masks and scene.meta.get("poses_method") == "orbit":
        # Four photos 90° apart without masks: the splat explained each photo by faint Gaussians
        # along its own rays, and the views between them were nearly empty (mean brightness
        # 0.004 against the photos' 0.10); with masks 0.12-0.14 (docs/benchmarks.md).
        obs.log("masks: photos taken around one object (the orbit path posed them): automatic masks, so the "
                "splat grows inside the object's hull (--config.ingest.masks none: without)")
        mode = "auto"
    if mode != "auto":
        return scene
    t0 = time.perf_counter()
    net = SaliencyModel(model)
    probs = [net(v.image) for v in scene.views]
    masks, hull = refine_masks(scene.cameras, [v.image for v in scene.views], probs, RefineConfig())
    how = "u2netp + multi-view hull + GrabCut" if hull is not None else "u2netp alone (the views share no hull)"
    if scene.has_masks:
        obs.log("masks: the dataset's mask files are replaced by automatic masks (--config.ingest.masks auto)")
    out = replace(scene, views=[replace(v, mask=m) for v, m in zip(scene.views, masks)],
                  meta={**scene.meta, "masks": "auto"})
    _write(out, probs, Path(run_dir) / "masks")
    cover = np.mean([m.mean() for m in masks])
    obs.log(f"masks: {len(masks)} automatic masks ({how}, {100 * cover:.0f}% of the pixels on average, "
            f"{time.perf_counter() - t0:.1f} s) in {Path(run_dir) / 'masks'}")
    return out


def _write(scene: Scene, probs: list[np.ndarray], folder: Path, height: int = 120) -> None:
    rows = []
    for v, p in zip(scene.views, probs):
        save_mask(folder / f"{v.name}.png", v.mask)
        trio = [v.image, np.repeat(p[..., None], 3, -1), np.repeat(v.mask[..., None], 3, -1).astype(np.float32)]
        rows.append(np.concatenate(trio, axis=1))
    save_image(folder / "contact.png", contact_sheet(rows, height))
