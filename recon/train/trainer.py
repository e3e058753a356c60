"""`Trainer`: the one optimisation every stage that fits the splat drives (optimize, and later the
repair rounds, the filters' trust maps and stylize's appearance re-fit).

It owns the trainable splat (parameters, Adam, densification state), the step and the schedules
(SH degree, the means' learning-rate decay), the random streams, and the few-view parts
(recon/train/parts/, switched on by recon/train/registry.py). Drivers add what they need:
  add_targets(group, targets, weight)   extra posed images with a per-pixel confidence
  set_pixel_weights(weights)            per-pixel loss weights of the training views
  freeze(names)                         parameters Adam leaves alone (and no densification)
  refined_cameras()                     the training cameras as the parts moved them (camera refinement)
and `state_dict()` / `load_state_dict()` make a checkpoint that resumes bit for bit on the CPU.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from recon import interrupt, losses
from recon.errors import ReconError
from recon.events import Observer
from recon.gaussians import Gaussians
from recon.scene import Camera, Scene
from recon.train.config import OptimizeConfig
from recon.train.part import Part
from recon.train.registry import build_parts
from recon.train.splat import Splat, cpu_copy

GEOMETRY = ("means", "quats", "scales", "opacities")


@dataclass
class TrainLog:
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    num_gaussians: list[int] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Target:
    """An extra image to fit: what `camera` should see. image float32 [H,W,3] in [0,1];
    confidence [H,W] in [0,1] weighs each pixel's loss (None = 1 everywhere); the render is
    composited over `background` (RGB) before the comparison."""

    camera: Camera
    image: np.ndarray
    confidence: np.ndarray | None = None
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass
class _Group:
    targets: list[Target]
    weight: float
    next: int = 0


def camera_tensors(cam: Camera, dev: torch.device) -> tuple[Tensor, Tensor]:
    """(viewmat [1,4,4], K [1,3,3]) float32 on `dev`."""
    return (torch.tensor(cam.world_to_cam, dtype=torch.float32, device=dev)[None],
            torch.tensor(cam.K, dtype=torch.float32, device=dev)[None])


class Trainer:
    """Fits a splat to a scene's views; see the module docstring."""

    def __init__(self, cfg: OptimizeConfig, scene: Scene, init: Gaussians, device: str = "cpu",
                 obs: Observer | None = None, parts: list[Part] | None = None) -> None:
        self.cfg, self.scene, self.obs = cfg, scene, obs or Observer()
        self.dev = torch.device(device)
        torch.manual_seed(cfg.seed)  # gsplat's densification draws from torch's global stream
        self.rng = np.random.default_rng(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.center, self.radius = scene.bounds()
        self.splat = Splat(init, cfg, self.radius, self.dev, scene.cameras)
        self.max_degree = init.sh_degree
        self.step, self.total = 0, cfg.steps
        self.means_decay = 0.01 ** (1 / max(cfg.steps, 1))
        self.images = [torch.from_numpy(np.ascontiguousarray(v.image)).float().to(self.dev) for v in scene.views]
        self.cams = [camera_tensors(v.camera, self.dev) for v in scene.views]
        self.pixel_weights: list[Tensor | None] = [None] * len(scene.views)
        self.groups: dict[str, _Group] = {}
        self.log = TrainLog()
        self._order: list[int] = []
        self.parts = build_parts(cfg, scene) if parts is None else parts
        self.needs_depth = any(p.needs_depth for p in self.parts)
        for p in self.parts:
            p.setup(self)

    # --- what drivers and parts call -------------------------------------------------------------

    def degree(self) -> int:
        """The SH degree active at this step."""
        return min(self.step // self.cfg.sh_degree_interval, self.max_degree)

    def render_camera(self, camera: Camera, mode: str = "RGB", background: Tensor | None = None
                      ) -> tuple[Tensor, Tensor, dict]:
        """(render [1,H,W,ch], alpha [1,H,W,1], meta) of any camera, in the autograd graph."""
        vm, K = camera_tensors(camera, self.dev)
        return self.splat.render(vm, K, camera.width, camera.height, self.degree(), mode, background)

    @torch.no_grad()
    def render(self, camera: Camera, mode: str = "RGB", background: Tensor | None = None
               ) -> tuple[Tensor, Tensor]:
        """(image [H,W,ch], alpha [H,W]) of `camera` as the splat stands, without gradients."""
        out, alpha, _ = self.render_camera(camera, mode, background)
        return out[0], alpha[0, ..., 0]

    def add_targets(self, group: str, targets: list[Target], weight: float) -> None:
        """Fit these images too, one of the group per step in turn, with this loss weight (a
        group added again replaces the old one: repair rounds renew their targets)."""
        if weight < 0:
            raise ValueError("a target weight must be >= 0")
        self.groups[group] = _Group(list(targets), float(weight))

    def clear_targets(self, group: str) -> None:
        self.groups.pop(group, None)

    def set_pixel_weights(self, weights: list[np.ndarray | Tensor | None]) -> None:
        """Per-pixel loss weights [H,W] (≥ 0) of each training view, None = 1 everywhere."""
        if len(weights) != len(self.scene.views):
            raise ValueError(f"{len(weights)} weight maps for {len(self.scene.views)} views")
        self.pixel_weights = [None if w is None else torch.as_tensor(w, dtype=torch.float32).to(self.dev)
                              for w in weights]

    def freeze(self, names: tuple[str, ...] | list[str]) -> None:
        """Adam leaves these parameters alone; with any geometry frozen, densification stops."""
        unknown = set(names) - set(Gaussians.KEYS)
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}")
        self.splat.frozen = set(names)

    def gaussians(self) -> Gaussians:
        return self.splat.gaussians()

    @torch.no_grad()
    def refined_cameras(self) -> dict[str, Camera] | None:
        """Each training view's camera as the Trainer renders it now, by view name, when a part
        moves the cameras (camera refinement); None when none does (the scene's cameras hold).
        The parts' `camera` hooks run in float64 on the CPU, so an unmoved camera comes back
        exactly as it went in."""
        if not any(p.moves_cameras for p in self.parts):
            return None
        out = {}
        for i, v in enumerate(self.scene.views):
            viewmat = torch.from_numpy(v.camera.world_to_cam.copy())[None]
            for p in self.parts:
                viewmat = p.camera(self, i, viewmat)
            out[v.name] = replace(v.camera, world_to_cam=viewmat[0].cpu().numpy())
        return out

    # --- the loop ---------------------------------------------------------------------------------

    def train(self, steps: int | None = None, *, on_step: Callable[["Trainer"], None] | None = None,
              before_step: Callable[[], None] | None = None) -> TrainLog:
        """Train until step `total`, or `steps` more (raising `total` if needed). `before_step`
        runs before each step (thread sharing), `on_step` after it (checkpoints). A SIGINT or
        SIGTERM ends the step in flight, calls on_step, and raises interrupt.Interrupted."""
        end = self.total if steps is None else self.step + steps
        self.total = max(self.total, end)
        t0, last_stream = time.perf_counter() - self.log.seconds, time.perf_counter()
        self.obs.gaussians_updated(self.gaussians(), self.step)
        with interrupt.polling():
            while self.step < end:
                while self.obs.should_pause() and interrupt.received() is None:
                    time.sleep(0.1)
                if before_step is not None:
                    before_step()
                self._one_step()
                self.log.seconds = time.perf_counter() - t0
                if on_step is not None:
                    on_step(self)
                if interrupt.received() is not None:
                    raise interrupt.Interrupted(interrupt.received(), f"at optimize step {self.step}/{self.total}")
                if time.perf_counter() - last_stream >= self.cfg.stream_every_s:
                    self.obs.gaussians_updated(self.gaussians(), self.step)
                    last_stream = time.perf_counter()
        return self.log

    def finish(self) -> Gaussians:
        """The parts' last word (e.g. pruning), then the splat as saved."""
        for p in self.parts:
            p.finish(self)
        result = self.gaussians()
        self.obs.gaussians_updated(result, self.step)
        return result

    def _next_view(self) -> int:
        if not self._order:
            self._order = list(self.rng.permutation(len(self.scene.views)))
        return int(self._order.pop())

    def _background(self) -> Tensor:
        kind = self.cfg.background
        if kind == "random":
            return torch.rand(3, generator=self.gen).to(self.dev)
        return torch.full((3,), 1.0 if kind == "white" else 0.0, device=self.dev)

    def _one_step(self) -> None:
        step, splat, densify = self.step, self.splat, self._densifying()
        i = self._next_view()
        cam = self.scene.views[i].camera
        bg = self._background()
        target = self.images[i]
        for p in self.parts:
            target = p.prepare_target(self, i, target, bg)
        viewmat, K = self.cams[i]
        for p in self.parts:
            viewmat = p.camera(self, i, viewmat)
        out, alpha, info = splat.render(viewmat, K, cam.width, cam.height, self.degree(),
                                        "RGB+D" if self.needs_depth else "RGB", bg)
        if densify:
            splat.strategy.step_pre_backward(splat.params, splat.optimizers, splat.state, step, info)
        rgb, weight = self._photo_and_weight(i, out, alpha, bg, target)
        total = losses.photometric_loss(rgb, target[None], self.cfg.ssim_lambda, weight)
        for p in self.parts:
            extra = p.view_loss(self, i, out, alpha)
            if extra is not None:
                total = total + extra
        for p in self.parts:
            extra = p.extra_loss(self)
            if extra is not None:
                total = total + extra
        for group in self.groups.values():
            total = total + self._target_loss(group)
        total.backward()
        splat.step(self.means_decay)
        if densify:
            splat.strategy.step_post_backward(splat.params, splat.optimizers, splat.state, step, info,
                                              packed=False)
        for p in self.parts:
            p.after_step(self)
        if step % 10 == 0 or step == self.total - 1:
            self._record(step, total, rgb, target)
        self.step += 1

    def _photo_and_weight(self, i: int, out: Tensor, alpha: Tensor, bg: Tensor, target: Tensor
                          ) -> tuple[Tensor, Tensor | None]:
        """(what view i's photo should show [1,H,W,3], its per-pixel loss weight [H,W] or None): the
        parts' photo models (haze, exposure) applied to the render in turn, then the driver's pixel
        weights times every part's robust weights from this step's residual."""
        rgb = out[..., :3]
        for p in self.parts:
            rgb = p.photo_render(self, i, rgb, out, alpha, bg)
        weight = self.pixel_weights[i]
        for p in self.parts:
            w = p.pixel_weight(self, i, rgb.detach(), target, out.detach(), alpha.detach())
            if w is not None:
                weight = w if weight is None else weight * w
        return rgb, weight

    def _densifying(self) -> bool:
        d = self.cfg.densify
        # At the cap densification stops altogether (growing and pruning), keeping runs bounded.
        return d.enabled and len(self.splat) < d.max_gaussians and not (self.splat.frozen & set(GEOMETRY))

    def _target_loss(self, group: _Group) -> Tensor:
        if not group.targets or group.weight == 0:
            return torch.zeros((), device=self.dev)
        t = group.targets[group.next % len(group.targets)]
        group.next += 1
        bg = torch.tensor(t.background, dtype=torch.float32, device=self.dev)
        out, _, _ = self.render_camera(t.camera, "RGB", bg)
        image = torch.as_tensor(t.image, dtype=torch.float32).to(self.dev)
        conf = None if t.confidence is None else torch.as_tensor(t.confidence, dtype=torch.float32).to(self.dev)
        return group.weight * losses.photometric_loss(out, image[None], self.cfg.ssim_lambda, conf)

    def _record(self, step: int, total: Tensor, rgb: Tensor, target: Tensor) -> None:
        """Metrics every 10 steps (the only host syncs of a step), and the finiteness check: NaN
        Gaussians are culled by the rasterizer, so a finite loss alone does not prove health."""
        loss = float(total.detach())
        for name, p in self.splat.params.items():
            if not torch.isfinite(p).all() or not np.isfinite(loss):
                what = f"non-finite {name}" if np.isfinite(loss) else f"the loss is {loss}"
                raise ReconError(f"optimisation diverged at step {step}: {what}; "
                                 "try lower learning rates or fewer densification steps")
        ps = losses.psnr(rgb.detach(), target[None]).item()
        n = len(self.splat)
        self.log.steps.append(step)
        self.log.loss.append(loss)
        self.log.psnr.append(ps)
        self.log.num_gaussians.append(n)
        self.obs.step_metrics(step, {"loss": loss, "psnr": ps, "gaussians": n, "total": self.total})

    # --- checkpoints -----------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Everything the next step depends on, on the CPU (torch.save-able)."""
        state = {
            "step": self.step, "total": self.total, "splat": self.splat.state_dict(),
            "rng": self.rng.bit_generator.state, "gen": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(), "order": list(self._order), "log": self.log,
            "parts": {p.name: cpu_copy(p.state()) for p in self.parts},  # parts may hand out live tensors
            "group_next": {k: g.next for k, g in self.groups.items()},
        }
        if self.dev.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.dev)
        return state

    def load_state_dict(self, state: dict) -> None:
        # A copy: training on from a state must not change it (torch's Adam and gsplat's strategy
        # update their tensors in place, the log appends), and the optimise stage's artifact is
        # continued by repair while the evaluation and the cache still hold it.
        state = copy.deepcopy(state)
        self.step, self.total = state["step"], state["total"]
        self.splat.load_state_dict(state["splat"])
        self.rng.bit_generator.state = state["rng"]
        self.gen.set_state(state["gen"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and self.dev.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.dev)
        self._order = list(state["order"])
        self.log = state["log"]
        for p in self.parts:
            p.load_state(state["parts"].get(p.name, {}))
        for k, n in state["group_next"].items():
            if k in self.groups:
                self.groups[k].next = n
