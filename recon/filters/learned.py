"""Learned filters: a model on disk says which pixels of a photo not to trust.

One small interface, `LearnedFilter.trust(image) -> [H,W]` (1 = trusted, 0 = not), so a person
segmenter today and, say, a derain or lens-drop network later plug into the filters stage the
same way: their maps multiply the weights-free prior trust (rain streaks) before training.

The one built here is a semantic segmenter through transformers (`AutoModelForSemanticSegmentation`:
SegFormer, BEiT, DPT, UperNet, MobileViT trained on ADE20K or Cityscapes, whose labels include
"person" and "car"). It loads from a local folder or a hub id already in the local cache only
(`recon/hub.py`), never downloads, and has run here only with a tiny random model the test
builds: its effect on a splat is unmeasured (no such weights on this disk).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from recon.errors import ReconError
from recon.hub import locate


class LearnedFilter(Protocol):
    name: str
    """What ran, for the log (e.g. "segmenter /models/segformer-b0-ade")."""

    def trust(self, image: np.ndarray) -> np.ndarray:
        """[H,W,3] float in [0,1] → [H,W] float32 trust in [0,1] (0 on what the model flags)."""
        ...


@dataclass
class SegmenterConfig:
    model: str | None = None
    """A transformers semantic-segmentation model: a local folder or a hub id in the local cache
    (e.g. nvidia/segformer-b0-finetuned-ade-512-512 after `huggingface-cli download`). None = no
    learned segmenter: occluders are left to the weights-free robust weights."""
    classes: tuple[str, ...] = ("person", "car", "bicycle", "motorcycle", "bus", "truck", "rider")
    """Labels whose pixels get trust 0 (matched against the model's id2label, case-insensitive,
    any of its ";"- or ","-separated synonyms); at least one must be in the model's labels."""
    dilate: int = 4
    """Pixels the flagged regions grow by (a segmenter's edges stop short of a person's outline)."""


def _synonyms(label: str) -> set[str]:
    return {s.strip().lower() for s in label.replace(",", ";").split(";") if s.strip()}


class SegmenterFilter:
    """Trust 0 on the pixels a semantic segmenter labels as one of `cfg.classes`."""

    def __init__(self, cfg: SegmenterConfig, device: str = "cpu") -> None:
        if cfg.model is None:
            raise ReconError("--config.filters.segmenter.model: no model named")
        path = locate(cfg.model)
        if path is None:
            raise ReconError("--config.filters.segmenter.model: not on this disk (a local folder or a hub id in "
                             "the local Hugging Face cache; nothing is downloaded)", cfg.model)
        try:
            from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation
        except ImportError:
            raise ReconError("--config.filters.segmenter.model needs transformers: pip install 'recon[learned]'") from None
        try:
            # The PIL backend: the default one needs torchvision, which the CPU torch wheel cannot load.
            self.processor = AutoImageProcessor.from_pretrained(path, local_files_only=True, backend="pil")
            self.model = AutoModelForSemanticSegmentation.from_pretrained(path, local_files_only=True).eval().to(device)
        except (OSError, ValueError, KeyError) as e:
            raise ReconError(f"--config.filters.segmenter.model: not a semantic-segmentation model "
                             f"({str(e).splitlines()[0][:160]})", path) from None
        labels = {int(k): v for k, v in self.model.config.id2label.items()}
        wanted = {c.lower() for c in cfg.classes}
        self.ids = sorted(i for i, name in labels.items() if _synonyms(name) & wanted)
        if not self.ids:
            shown = ", ".join(list(labels.values())[:12])
            raise ReconError(f"--config.filters.segmenter.classes: none of {', '.join(cfg.classes)} is a label of "
                             f"this model (its labels: {shown}{', …' if len(labels) > 12 else ''})", path)
        self.cfg, self.device = cfg, device
        self.name = f"segmenter {path} ({', '.join(labels[i] for i in self.ids)})"

    def labels(self, image: np.ndarray) -> np.ndarray:
        """[H,W,3] in [0,1] → [H,W] int64: the model's label per pixel (logits upsampled bilinearly)."""
        import torch
        import torch.nn.functional as F

        u8 = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
        inputs = self.processor(images=u8, return_tensors="pt")
        with torch.no_grad():
            logits = self.model(pixel_values=inputs["pixel_values"].to(self.device)).logits  # [1,C,h,w]
            logits = F.interpolate(logits, size=image.shape[:2], mode="bilinear", align_corners=False)
        return logits[0].argmax(0).cpu().numpy()

    def trust(self, image: np.ndarray) -> np.ndarray:
        flagged = np.isin(self.labels(image), self.ids)
        if self.cfg.dilate > 0 and flagged.any():
            from scipy.ndimage import binary_dilation

            k = 2 * self.cfg.dilate + 1
            flagged = binary_dilation(flagged, structure=np.ones((k, k), bool))
        return (~flagged).astype(np.float32)
