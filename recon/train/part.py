"""`Part`: one few-view ingredient of the optimisation, as a small object with hooks the Trainer calls.

A part sees the Trainer through the attributes listed in `TrainerView` (duck-typed: parts import
nothing above recon/train/part.py, so the Trainer can import every part). Every hook is optional.

Order in one step (recon/train/trainer.py):
    prepare_target → camera (the training view's world-to-camera matrix, e.g. refined) →
    render the training view → photo_render (what the
    camera saw of the clean render: haze, exposure) → pixel_weight (robust weights from this
    step's residual) → photometric loss → view_loss → extra_loss → backward, Adam,
    densification → after_step
and `finish` once at the end of training.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from recon.events import Observer
from recon.scene import Scene


class TrainerView(Protocol):
    """What a part may use of the Trainer."""

    scene: Scene
    dev: torch.device
    rng: np.random.Generator  # the one random stream of the run (checkpointed with it)
    gen: torch.Generator  # the torch stream (backgrounds, dropped Gaussians), checkpointed too
    step: int
    total: int
    obs: Observer
    center: np.ndarray  # [3] the scene's centre
    radius: float  # the scene's radius
    splat: Any  # recon.train.splat.Splat

    def degree(self) -> int: ...

    def render_camera(self, camera, mode: str = "RGB", background: Tensor | None = None
                      ) -> tuple[Tensor, Tensor, dict]: ...


class Part:
    """Base class: a part overrides what it needs. `needs_depth`: training renders carry depth;
    `moves_cameras`: its `camera` hook changes the training cameras, which the Trainer then
    reports (`Trainer.refined_cameras`) for the stages after training."""

    name = "part"
    needs_depth = False
    moves_cameras = False

    def setup(self, trainer: TrainerView) -> None:
        """Once, after the Trainer is built (precompute, load a model, configure the splat)."""

    def prepare_target(self, trainer: TrainerView, view: int, target: Tensor, background: Tensor) -> Tensor:
        """The image [H,W,3] training view `view` is fitted to this step (default: unchanged)."""
        return target

    def camera(self, trainer: TrainerView, view: int, viewmat: Tensor) -> Tensor:
        """The world-to-camera matrix [1,4,4] training view `view` is rendered with (default:
        unchanged). Keep its dtype and device: the Trainer also calls it in float64 on the CPU,
        without gradients, to report the refined cameras. Return `viewmat` itself, not a copy,
        when nothing changes, so the render's viewmats carry no gradient."""
        return viewmat

    def photo_render(self, trainer: TrainerView, view: int, rgb: Tensor, render: Tensor, alpha: Tensor,
                     background: Tensor) -> Tensor:
        """What training view `view`'s photo should show, given the splat's render of it: rgb
        [1,H,W,3] (the previous part's result; the clean render for the first part), render
        [1,H,W,ch] (with depth as the last channel when a part needs it), alpha [1,H,W,1],
        background [3]. The photometric loss compares the result with the target, so a model of
        the camera or the air (exposure, haze) is learned there and never enters the splat."""
        return rgb

    def pixel_weight(self, trainer: TrainerView, view: int, rgb: Tensor, target: Tensor, render: Tensor,
                     alpha: Tensor) -> Tensor | None:
        """A per-pixel loss weight [H,W] (≥ 0) for this step's photometric loss, from this step's
        photo render rgb [1,H,W,3], target [H,W,3], render [1,H,W,ch] and alpha [1,H,W,1] (all
        detached); multiplied with the driver's `set_pixel_weights` map and the other parts'
        weights. None = no opinion (1 everywhere)."""
        return None

    def view_loss(self, trainer: TrainerView, view: int, render: Tensor, alpha: Tensor) -> Tensor | None:
        """An extra loss on this step's training render (render [1,H,W,ch], alpha [1,H,W,1])."""
        return None

    def extra_loss(self, trainer: TrainerView) -> Tensor | None:
        """A loss from renders of the part's own (e.g. pseudo views)."""
        return None

    def after_step(self, trainer: TrainerView) -> None:
        """After the optimiser and densification stepped (structure updates, refreshes)."""

    def finish(self, trainer: TrainerView) -> None:
        """Once, after the last step."""

    def state(self) -> dict:
        """What a checkpoint must keep of this part (beyond its config and the Trainer's rng). Live
        tensors are fine: the Trainer copies them to the CPU."""
        return {}

    def load_state(self, state: dict) -> None:
        """Restore `state()`'s output on resume."""
