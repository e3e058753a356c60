"""What a repairer sees and returns: a pseudo view as the splat renders it, the training views it
may draw on (photo and the splat's render there), and the repaired target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from recon.scene import Camera


@dataclass
class RenderedView:
    """A camera as the splat renders it: colour [H,W,3] (composited over black), alpha [H,W] and
    expected depth [H,W] (Σ w·z / alpha; 0 where alpha is 0), all float32."""

    camera: Camera
    render: np.ndarray
    alpha: np.ndarray
    depth: np.ndarray


@dataclass
class SourceView(RenderedView):
    """A training view: the splat's render there and the photo [H,W,3] (mask [H,W] bool or None)."""

    photo: np.ndarray = None  # type: ignore[assignment]
    mask: np.ndarray | None = None


@dataclass
class Repair:
    """A repaired pseudo view: target image [H,W,3] in [0,1], confidence [H,W] in [0,1] (0 = the
    pixel is left unconstrained), and `background`, the RGB the render is composited over before
    it is compared with the target (where the target says "nothing here", it shows that colour)."""

    image: np.ndarray
    confidence: np.ndarray
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)


class Repairer(Protocol):
    name: str
    """What ran, for the run log and `recon run`'s summary."""

    def repair(self, view: RenderedView, sources: list[SourceView]) -> Repair:
        """The target for `view`, given the training views `sources` (nearest first)."""
        ...
