"""Image-quality metrics for evaluation: PSNR, SSIM (torchmetrics), masked PSNR (DTU protocol:
object pixels only), LPIPS only when its weights are on disk (never from random weights)."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.image import structural_similarity_index_measure


def psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    """PSNR in dB of two [H,W,3] images in [0,1]."""
    mse = float(np.mean((pred.astype(np.float64) - gt.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else -10.0 * np.log10(mse)


def masked_psnr(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """PSNR over the pixels where mask [H,W] is True (every channel of each)."""
    m = mask.astype(bool)
    if not m.any():
        raise ValueError("masked_psnr: the mask selects no pixel")
    diff = pred.astype(np.float64)[m] - gt.astype(np.float64)[m]
    mse = float(np.mean(diff**2))
    return float("inf") if mse == 0 else -10.0 * np.log10(mse)


def ssim(pred: np.ndarray, gt: np.ndarray) -> float:
    """SSIM (Gaussian window 11, σ 1.5, data range 1) of two [H,W,3] images."""
    a = torch.from_numpy(np.ascontiguousarray(pred, dtype=np.float32)).permute(2, 0, 1)[None]
    b = torch.from_numpy(np.ascontiguousarray(gt, dtype=np.float32)).permute(2, 0, 1)[None]
    return float(structural_similarity_index_measure(a, b, data_range=1.0))


class Lpips:
    """LPIPS through torchmetrics, only with weights that are already on this machine.

    torchmetrics' LPIPS loads torchvision backbone weights plus its own linear layers; with no
    internet and no cached weights that fails, and we report LPIPS as unavailable (None) rather
    than a number from random weights."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._metric = None
        try:
            from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

            self._metric = LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True)
        except Exception as e:  # missing torchvision, or weights not downloadable
            self.reason = f"LPIPS unavailable: {type(e).__name__}: {str(e).splitlines()[0][:120]}"

    @property
    def available(self) -> bool:
        return self._metric is not None

    def __call__(self, pred: np.ndarray, gt: np.ndarray) -> float | None:
        if self._metric is None:
            return None
        a = torch.from_numpy(np.ascontiguousarray(pred, dtype=np.float32)).permute(2, 0, 1)[None]
        b = torch.from_numpy(np.ascontiguousarray(gt, dtype=np.float32)).permute(2, 0, 1)[None]
        with torch.no_grad():
            return float(self._metric(a.clamp(0, 1), b.clamp(0, 1)))
