"""Evaluation protocols: which views train, which test, at what resolution, with which metrics.

DTU (RegNeRF / pixelNeRF split): train ids [25, 22, 28, 40, 44, 48, 0, 8, 13][:n]; test = all 49
  minus those 9 minus the excluded [3..7, 16..21, 36..39] (25 views); images 4× downsampled to
  400×300 (area filter); PSNR also over object pixels (masks).
LLFF: every 8th image is a test view; n train views evenly spaced (rounded linspace) over the rest;
  images_8 (8× downsampled).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon.errors import ReconError
from recon.scene import Scene

DTU_TRAIN = [25, 22, 28, 40, 44, 48, 0, 8, 13]
DTU_EXCLUDED = [3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 36, 37, 38, 39]


@dataclass
class Split:
    train: list[int]
    test: list[int]


def dtu_split(n_views: int, total: int = 49) -> Split:
    if not 1 <= n_views <= len(DTU_TRAIN):
        raise ReconError(f"DTU protocol has 1..{len(DTU_TRAIN)} training views, not {n_views}")
    test = [i for i in range(total) if i not in DTU_TRAIN and i not in DTU_EXCLUDED]
    return Split(DTU_TRAIN[:n_views], test)


def llff_split(n_views: int, total: int) -> Split:
    test = list(range(0, total, 8))
    rest = [i for i in range(total) if i not in test]
    if not 1 <= n_views <= len(rest):
        raise ReconError(f"LLFF scene has {len(rest)} non-test views; cannot train on {n_views}")
    picks = np.round(np.linspace(0, len(rest) - 1, n_views)).astype(int)
    return Split([rest[i] for i in picks], test)


@dataclass
class Protocol:
    name: str
    masked: bool  # report PSNR over object pixels too

    def load(self, data: Path) -> Scene:
        from recon.io.detect import load_scene

        if self.name == "dtu":
            # 1600×1200 → 400×300 with an area filter.
            return load_scene(data, downscale=4, with_masks=True)
        # LLFF's images_8 (504×378) are the evaluated resolution.
        return load_scene(data, downscale=1, max_size=None)

    def split(self, scene: Scene, n_views: int) -> Split:
        indices = sorted(v.index for v in scene.views)
        if self.name == "dtu":
            split = dtu_split(n_views, total=len(indices))
        else:
            split = llff_split(n_views, len(indices))
            split = Split([indices[i] for i in split.train], [indices[i] for i in split.test])
        missing = sorted(set(split.train + split.test) - set(indices))
        if missing:
            raise ReconError(f"{self.name} protocol needs views {missing}, not in the dataset", scene.source)
        return split


PROTOCOLS = {"dtu": Protocol("dtu", masked=True), "llff": Protocol("llff", masked=False)}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ReconError(f"unknown protocol '{name}'; protocols: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]
