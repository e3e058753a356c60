"""Monocular depth prior (e.g. Depth Anything) through transformers, behind a small interface.

Optional and off by default: recon works without any learned weights. The model comes from a
local folder or a hub id already in the local cache; it is never downloaded (local_files_only).
Such models predict relative inverse depth (disparity up to scale and shift), which is why the
loss that uses it (recon.losses.pearson_depth_loss) compares correlations, not values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from recon.errors import ReconError


class DepthPrior(Protocol):
    def predict(self, image: np.ndarray) -> torch.Tensor:
        """Relative inverse depth [H,W] (larger = nearer) of an RGB image [H,W,3] in [0,1]."""
        ...


class TransformersDepth:
    """A transformers depth-estimation model (AutoModelForDepthEstimation + its image processor)."""

    def __init__(self, model: str, device: str = "cpu") -> None:
        try:
            from transformers import AutoImageProcessor, AutoModelForDepthEstimation
        except ImportError as e:
            raise ReconError(f"the depth prior '{model}' needs transformers: pip install -e '.[learned]'") from e
        try:
            self.processor = AutoImageProcessor.from_pretrained(model, local_files_only=True)
            self.model = AutoModelForDepthEstimation.from_pretrained(model, local_files_only=True)
        except (OSError, ValueError) as e:
            where = "folder" if Path(model).exists() else "hub id (not in the local cache)"
            raise ReconError(f"cannot load depth prior from {where} '{model}': {str(e).splitlines()[0][:160]}. "
                             "recon never downloads weights: pass a local folder with the model") from e
        self.model.eval().to(device)
        self.device = device

    @torch.no_grad()
    def predict(self, image: np.ndarray) -> torch.Tensor:
        h, w = image.shape[:2]
        pil_ready = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
        inputs = self.processor(images=pil_ready, return_tensors="pt").to(self.device)
        depth = self.model(**inputs).predicted_depth  # [1,h',w']
        depth = F.interpolate(depth[:, None].float(), size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        return depth.cpu()


def load_depth_prior(model: str, device: str = "cpu") -> DepthPrior:
    """The depth prior named by `model` (a local folder or a cached hub id)."""
    return TransformersDepth(model, device)
