"""Cameras refined while the splat trains (CF-GaussianObject; gsplat's `pose_opt` in its simple
trainer): every training camera but the first gets an SE(3) correction, a 6-vector (axis-angle
rotation ω, translation τ), learned with the splat by its own Adam from the photometric loss (and
the mask's silhouette, which masked training puts into the target).

The corrected camera is world_to_cam' = [[exp(ω×), τ], [0, 1]] · world_to_cam: the correction
acts in the camera's own frame, so ω turns the camera about its own centre and τ is in scene
units, which is why τ's learning rate is scaled by the scene's radius (as the means' is).

The gauge: a splat and its cameras moved together by one rigid motion render the same photos, so
the photometric loss cannot say where the whole rig sits. The first camera is held fixed (its
correction gets no gradient and stays exactly 0) rather than every camera pulled towards zero by
a small penalty: fixing it costs nothing, needs no weight to tune, and keeps the refined cameras
in the frame the rest of the run uses (the SfM points the splat was seeded from, the poses
stage's cameras the evaluation aligns test cameras to); a penalty would bias every correction
towards the error it is meant to remove. (The scale is a gauge too; with the first camera fixed,
the splat's extent and the other cameras' distances pin it, and nothing pushes along it.)

The corrections learn during the first `until` of optimize.steps and are frozen after, so the
splat settles on fixed cameras; frozen, the corrections are applied detached and the render's
viewmats carry no gradient (the cpu backend then keeps its numba projection).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from recon.scene import Scene
from recon.train.part import Part, TrainerView

Mode = Literal["off", "auto", "on"]


@dataclass
class CameraRefineConfig:
    mode: Mode = "off"
    """Learn a rotation and translation correction of every training camera but the first with the
    splat: on; auto = only for cameras the poses stage estimated (SfM), never for a dataset's own
    known cameras; off. In a YAML preset, quote it ("on", "off"): YAML reads on/off as booleans."""
    until: float = 0.5
    """Fraction of optimize.steps during which the corrections learn; frozen after."""
    lr_rotation: float = 3e-3
    """Adam learning rate of the axis-angle rotation (radians)."""
    lr_translation: float = 1e-3
    """Adam learning rate of the translation, times the scene's radius."""


def refines(cfg: CameraRefineConfig, scene: Scene) -> bool:
    """Whether `cfg` switches the part on for `scene`: auto only where the poses stage estimated
    the cameras (it records scene.meta["poses_method"]; a dataset's known cameras have none)."""
    if cfg.mode == "auto":
        return scene.meta.get("poses_method") is not None
    return cfg.mode == "on"


def correction_matrix(delta: Tensor) -> Tensor:
    """[..., 6] (axis-angle ω [3], translation τ [3]) → [..., 4, 4] [[exp(ω×), τ], [0, 1]].

    Rodrigues' formula R = I + a·K + b·K² with K = ω×, a = sin θ/θ, b = (1 − cos θ)/θ², written
    as 2 sin²(θ/2)/θ² (no cancellation in float32) and replaced by their series near θ = 0, where
    the plain formulas divide 0 by 0 in the backward pass."""
    w, t = delta[..., :3], delta[..., 3:]
    theta2 = (w * w).sum(-1)[..., None, None]
    small = theta2 < 1e-10
    safe2 = torch.where(small, torch.ones_like(theta2), theta2)
    theta = safe2.sqrt()
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, 2 * torch.sin(theta / 2) ** 2 / safe2)
    zero = torch.zeros_like(w[..., 0])
    wx, wy, wz = w.unbind(-1)
    K = torch.stack([zero, -wz, wy, wz, zero, -wx, -wy, wx, zero], -1).reshape(w.shape[:-1] + (3, 3))
    R = torch.eye(3, dtype=delta.dtype, device=delta.device) + a * K + b * (K @ K)
    top = torch.cat([R, t[..., :, None]], -1)
    bottom = torch.zeros(delta.shape[:-1] + (1, 4), dtype=delta.dtype, device=delta.device)
    bottom[..., 0, 3] = 1
    return torch.cat([top, bottom], -2)


class CameraRefine(Part):
    name = "camera refine"
    moves_cameras = True

    def __init__(self, cfg: CameraRefineConfig, steps: int) -> None:
        if not 0 <= cfg.until <= 1:
            raise ValueError("optimize.camera_refine.until must be in [0, 1]")
        if cfg.lr_rotation < 0 or cfg.lr_translation < 0:
            raise ValueError("optimize.camera_refine learning rates must be >= 0")
        self.cfg = cfg
        # The window is a share of the optimise stage's own steps, not of the Trainer's `total`:
        # repair continues the Trainer past it and must not reopen the cameras.
        self.until = int(round(cfg.until * steps))

    def setup(self, trainer: TrainerView) -> None:
        n, dev = len(trainer.scene.views), trainer.dev
        self.rotation = torch.zeros(n, 3, device=dev, requires_grad=True)  # [V,3] axis-angle, radians
        self.translation = torch.zeros(n, 3, device=dev, requires_grad=True)  # [V,3] camera frame
        self.opt = torch.optim.Adam([
            {"params": [self.rotation], "lr": self.cfg.lr_rotation},
            {"params": [self.translation], "lr": self.cfg.lr_translation * trainer.radius},
        ])

    def learning(self, step: int) -> bool:
        return step < self.until

    def correction(self, view: int) -> Tensor:
        """[4,4] view `view`'s correction as it stands (in the graph while learning)."""
        return correction_matrix(torch.cat([self.rotation[view], self.translation[view]]))

    def camera(self, trainer: TrainerView, view: int, viewmat: Tensor) -> Tensor:
        if view == 0:  # the gauge: the first camera stays where it is
            return viewmat
        c = self.correction(view)
        if not self.learning(trainer.step):
            c = c.detach()  # frozen: no gradient reaches the viewmats (the fast projection)
        return c.to(viewmat) @ viewmat

    def after_step(self, trainer: TrainerView) -> None:
        if self.learning(trainer.step):
            self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def errors(self) -> tuple[np.ndarray, np.ndarray]:
        """(rotation [V] in degrees, translation [V] in scene units) of each view's correction."""
        rot = torch.linalg.vector_norm(self.rotation.detach(), dim=-1).cpu().numpy()
        return np.degrees(rot), torch.linalg.vector_norm(self.translation.detach(), dim=-1).cpu().numpy()

    def finish(self, trainer: TrainerView) -> None:
        deg, dist = self.errors()
        if len(deg) < 2:
            return
        names = [v.name for v in trainer.scene.views]
        k = int(np.argmax(deg))
        trainer.obs.log(f"optimize: cameras refined in the first {self.until} steps (the first camera held): "
                        f"rotation mean {deg[1:].mean():.2f}°, max {deg[k]:.2f}° ({names[k]}); translation mean "
                        f"{dist[1:].mean() / trainer.radius:.2%} of the scene radius")

    def state(self) -> dict:
        return {"rotation": self.rotation.detach(), "translation": self.translation.detach(),
                "opt": self.opt.state_dict()}

    def load_state(self, state: dict) -> None:
        if not state:
            return
        with torch.no_grad():
            self.rotation.copy_(state["rotation"])
            self.translation.copy_(state["translation"])
        self.opt.load_state_dict(state["opt"])
