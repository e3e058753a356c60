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


def on_background(image: np.ndarray, mask: np.ndarray, value: float = 1.0) -> np.ndarray:
    """`image` [H,W,3] with the pixels outside `mask` [H,W] set to `value` (RegNeRF's DTU SSIM and
    LPIPS see the object on white, so background errors do not count)."""
    m = mask.astype(bool)[..., None]
    return np.where(m, image, np.float32(value)).astype(np.float32)


def mask_box(mask: np.ndarray, min_size: int = 11) -> tuple[int, int, int, int]:
    """The tight box (y0, y1, x0, x1), end-exclusive, around the True pixels of `mask` [H,W].

    A side shorter than `min_size` is widened about its centre (within the image) so SSIM's
    11-pixel window fits; the SpaRe challenge's SSIM-M and LPIPS-M are computed in this box."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("mask_box: the mask selects no pixel")
    box = []
    for lo, hi, size in ((rows[0], rows[-1] + 1, mask.shape[0]), (cols[0], cols[-1] + 1, mask.shape[1])):
        width = min(max(hi - lo, min_size), size)
        start = max(0, min(lo - (width - (hi - lo)) // 2, size - width))
        box += [int(start), int(start + width)]
    return box[0], box[1], box[2], box[3]


def crop(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    y0, y1, x0, x1 = box
    return np.ascontiguousarray(image[y0:y1, x0:x1])


def box_ssim(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """SSIM inside the tight box around the object (`mask_box`)."""
    box = mask_box(mask)
    return ssim(crop(pred, box), crop(gt, box))


def box_lpips(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, lpips: "Lpips") -> float | None:
    """LPIPS inside the tight box around the object; None where LPIPS is unavailable."""
    box = mask_box(mask)
    return lpips(crop(pred, box), crop(gt, box))


def object_scores(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None, lpips: "Lpips"
                  ) -> dict[str, float | None]:
    """The object's scores (SpaRe's PSNR-M, SSIM-M, LPIPS-M): PSNR over the mask's pixels, SSIM and
    LPIPS in its tight box; all None without a mask or with an empty one."""
    if mask is None or not mask.any():
        return {"psnr_masked": None, "ssim_box": None, "lpips_box": None}
    return {"psnr_masked": masked_psnr(pred, gt, mask), "ssim_box": box_ssim(pred, gt, mask),
            "lpips_box": box_lpips(pred, gt, mask, lpips)}
