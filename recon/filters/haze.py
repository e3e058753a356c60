"""Haze in photos, without weights: He et al.'s dark channel prior (CVPR 2009).

In haze-free outdoor photos most patches hold some pixel that is nearly black in one colour (a
shadow, a saturated colour); haze lifts every pixel towards the airlight, so the dark channel
(the minimum over colours and a patch) rises with the haze's thickness 1 − t. This module says
whether a set of photos is hazy, estimates the airlight from the haziest pixels, and turns the
median transmission into a starting extinction β for a typical depth; the haze part of the
optimisation (recon/train/parts/haze.py) learns both from there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


def dark_channel(img: np.ndarray, patch: int = 15) -> np.ndarray:
    """[H,W] the minimum over colours and a patch×patch window of an RGB image [H,W,3]."""
    return ndimage.minimum_filter(img.min(-1), size=patch)


def airlight(img: np.ndarray, dark: np.ndarray, share: float = 0.001) -> np.ndarray:
    """[3] the mean colour of the brightest pixels among the `share` with the highest dark
    channel (the haziest, farthest pixels), as He et al."""
    n = max(1, int(share * dark.size))
    idx = np.argpartition(dark.ravel(), -n)[-n:]
    pix = img.reshape(-1, 3)[idx]
    bright = pix.sum(1) >= np.percentile(pix.sum(1), 50)
    return pix[bright].mean(0)


@dataclass
class HazeEstimate:
    hazy: bool
    haze_level: float  # the views' median dark channel over the airlight: 0 clear, 1 all air
    airlight: tuple[float, float, float]
    transmission: float  # median t = 1 − ω·dark(I/A)


def estimate_haze(images: list[np.ndarray], threshold: float = 0.4, patch_frac: float = 0.03,
                  omega: float = 0.95) -> HazeEstimate:
    """Whether photos [H,W,3] look hazy (median of the dark channel over the airlight above
    `threshold`), the airlight (the median over views of each view's estimate) and the median
    transmission, with a dark-channel patch of `patch_frac` of the image width."""
    levels, airs, trans = [], [], []
    for img in images:
        patch = max(3, int(round(patch_frac * img.shape[1])) | 1)
        dark = dark_channel(img, patch)
        A = np.clip(airlight(img, dark), 0.05, 1.0)
        norm = dark_channel(img / A, patch)
        levels.append(float(np.median(norm)))
        airs.append(A)
        trans.append(float(np.median(np.clip(1 - omega * norm, 0.05, 1.0))))
    level = float(np.median(levels))
    A = np.median(np.stack(airs), 0)
    return HazeEstimate(level > threshold, level, (float(A[0]), float(A[1]), float(A[2])),
                        float(np.median(trans)))


def start_beta(transmission: float, depth: float) -> float:
    """β [1/scene units] with which a surface at `depth` lets `transmission` of its light through."""
    return float(-np.log(np.clip(transmission, 0.05, 0.999)) / max(depth, 1e-6))
