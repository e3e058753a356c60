"""repair: after the main optimisation, R rounds of optimise ⇄ repair on pseudo views.

Each round renders P pseudo views around and between the training cameras (recon/repair/
cameras.py: nearest first, farther in later rounds), repairs each into a target with a per-pixel
confidence, hands them to the same Trainer the optimise stage ran (continued from its state) as
one target group with weight w, and trains K more steps. Repairers (recon/repair/):
  reproject        (no weights) the nearest training photos reprojected through the splat's depth,
                   with an occlusion test and a vote among the photos
  img2img          SD 1.5 image-to-image on the render          (weights on disk only)
  controlnet-tile  SD 1.5 + ControlNet-tile, GaussianObject's recipe  (weights on disk only)
  difix            Difix3D+ single step with a reference view   (weights on disk only)
The repaired views are written to RUN/repair/round_R/ (render | repaired | confidence) and
announced to observers (run log, viewer). Off by default: then the stage hands its input on.
The settings (`repair.*`, RepairConfig) are checked before a run starts (`check_config`).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from recon.cpu_share import CpuShare
from recon.errors import ReconError
from recon.events import Observer
from recon.hub import locate
from recon.io.images import write_png
from recon.repair.cameras import nearest_sources, pseudo_cameras
from recon.repair.difix import DifixConfig
from recon.repair.diffusion import NEVER_DOWNLOADS, DiffusionConfig
from recon.repair.photo_reprojection import ReprojectConfig, ReprojectionRepairer
from recon.repair.views import RenderedView, Repairer, SourceView
from recon.scene import Camera, Scene
from recon.stages.optimize import Trained, refined_scene
from recon.train import OptimizeConfig, Target, Trainer

__all__ = ["RepairConfig", "Repaired", "RoundRecord", "check_config", "make_repairer", "run_repair",
           "DiffusionConfig", "DifixConfig", "ReprojectConfig"]

GROUP = "repair"
FOLDER = "repair"

Method = Literal["reproject", "img2img", "controlnet-tile", "difix"]
# which settings section each method reads; another method's section set is refused, not ignored
SECTIONS = {"reproject": "reproject", "img2img": "diffusion", "controlnet-tile": "diffusion", "difix": "difix"}


@dataclass
class RepairConfig:
    enabled: bool = False
    """Repair pseudo views after the optimisation and train on them (optimise ⇄ repair rounds)."""
    method: Method = "reproject"
    """reproject: the training photos reprojected through the splat's depth (no weights);
    img2img: SD 1.5 image-to-image; controlnet-tile: SD 1.5 + ControlNet-tile (GaussianObject);
    difix: Difix3D+ with a reference view. The diffusion methods load weights from disk only."""
    rounds: int = 2
    """Rounds of repair; each renders new pseudo views (farther from the photos each round)."""
    views: int = 6
    """Pseudo views repaired per round."""
    steps: int = 150
    """Training steps after each round's repair (each also fits one repaired view)."""
    weight: float = 0.5
    """Loss weight of the repaired views beside the photos' (the confidence weighs each pixel)."""
    spread: float = 0.5
    """How far the last round's pseudo views go: this fraction of the angle between a training
    camera and its nearest neighbour (0.5 = half way); earlier rounds go proportionally less."""
    scale: float = 1.0
    """Pseudo views are rendered and repaired at this fraction of the training resolution."""
    reproject: ReprojectConfig = field(default_factory=ReprojectConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    difix: DifixConfig = field(default_factory=DifixConfig)


def _positive(name: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ReconError(f"--config.repair.{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


def _fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ReconError(f"--config.repair.{name} must be between 0 and 1, got {value}")


def _check_model(flag: str, spec: str | None) -> None:
    if spec is not None and locate(spec) is None:
        raise ReconError(f"--config.repair.{flag} '{spec}' is neither a folder here nor in the local Hugging Face "
                         f"cache. {NEVER_DOWNLOADS}")


def _check_prompt(section: str, prompt: str, default: str, embeds: str | None) -> None:
    if embeds is not None:
        if prompt != default:
            raise ReconError(f"--config.repair.{section}.prompt and .prompt-embeds both set: give one")
        if not Path(embeds).is_file():
            raise ReconError("prompt embeddings file not found", Path(embeds))


def _check_diffusion(cfg: RepairConfig) -> None:
    d = cfg.diffusion
    if d.model is None:
        raise ReconError(f"--config.repair.method {cfg.method} needs --config.repair.diffusion.model (SD 1.5: a "
                         "local folder or a hub id in the local cache)")
    if cfg.method == "controlnet-tile" and d.controlnet is None:
        raise ReconError("--config.repair.method controlnet-tile needs --config.repair.diffusion.controlnet "
                         "(ControlNet-tile: a local folder or a hub id in the local cache)")
    if cfg.method == "img2img" and d.controlnet is not None:
        raise ReconError("--config.repair.diffusion.controlnet is for --config.repair.method controlnet-tile; "
                         "img2img would ignore it")
    for flag, spec in (("diffusion.model", d.model), ("diffusion.controlnet", d.controlnet), ("diffusion.lora", d.lora)):
        _check_model(flag, spec)
    _check_prompt("diffusion", d.prompt, "", d.prompt_embeds)
    if not 0.0 < d.strength <= 1.0:
        raise ReconError(f"--config.repair.diffusion.strength must be in (0, 1], got {d.strength}")
    _positive("diffusion.steps", d.steps)
    _positive("diffusion.size", d.size)


def _check_reproject(r: ReprojectConfig) -> None:
    _positive("reproject.sources", r.sources)
    for name in ("depth_tolerance", "colour_tolerance", "angle_sigma_deg"):
        _positive(f"reproject.{name.replace('_', '-')}", getattr(r, name))
    _fraction("reproject.single-source", r.single_source)
    _fraction("reproject.min-alpha", r.min_alpha)


def check_config(cfg: RepairConfig) -> None:
    """Refuse bad repair settings in one line before a run starts: a bad value, a setting the chosen
    method would ignore, repair settings while repair is off, or a diffusion model that is not on
    this disk."""
    if not cfg.enabled:
        if cfg != RepairConfig():
            raise ReconError("repair settings without --config.repair.enabled would do nothing: turn repair on "
                             "or leave them unset")
        return
    for f in fields(cfg):
        if f.name in SECTIONS.values() and f.name != SECTIONS[cfg.method] and getattr(cfg, f.name) != f.default_factory():
            raise ReconError(f"the repair.{f.name}.* settings are not used by --config.repair.method {cfg.method}")
    for name in ("rounds", "views", "steps", "weight", "spread", "scale"):
        _positive(name, getattr(cfg, name))
    if cfg.scale > 1:
        raise ReconError(f"--config.repair.scale must be at most 1, got {cfg.scale}")
    if cfg.method == "reproject":
        _check_reproject(cfg.reproject)
    elif cfg.method == "difix":
        if cfg.difix.model is None:
            raise ReconError("--config.repair.method difix needs --config.repair.difix.model (nvidia/difix_ref: a "
                             "local folder or a hub id in the local cache)")
        _check_model("difix.model", cfg.difix.model)
        _check_prompt("difix", cfg.difix.prompt, DifixConfig().prompt, cfg.difix.prompt_embeds)
        if not 0 <= cfg.difix.timestep < 1000:
            raise ReconError(f"--config.repair.difix.timestep must be in [0, 1000), got {cfg.difix.timestep}")
        _positive("difix.size", cfg.difix.size)
    else:
        _check_diffusion(cfg)
    if cfg.method != "reproject":
        try:
            import diffusers  # noqa: F401
        except ImportError:
            raise ReconError(f"--config.repair.method {cfg.method} needs diffusers: pip install 'recon[learned]'") from None


@dataclass
class RoundRecord:
    """What one round did: its pseudo views, their mean confidence, the confidence-weighted L1
    between render and target before and after the round's K steps, and its seconds."""

    views: int
    confidence: float
    error_before: float
    error_after: float
    seconds: float


@dataclass
class Repaired(Trained):
    """The repair stage's artifact: a `Trained` (the splat, the log, the Trainer's state) after the
    rounds, with which repairer ran and what each round did."""

    method: str = ""
    rounds: list[RoundRecord] = field(default_factory=list)
    seconds: float = 0.0


def make_repairer(cfg: RepairConfig, device: str = "cpu") -> Repairer:
    """The repairer `cfg.method` names (diffusion models load here, from disk only)."""
    if cfg.method == "reproject":
        return ReprojectionRepairer(cfg.reproject)
    if cfg.method == "difix":
        from recon.repair.difix import DifixRepairer

        return DifixRepairer(cfg.difix, device)
    from recon.repair.diffusion import StableDiffusionRepairer

    return StableDiffusionRepairer(cfg.diffusion, cfg.method, device)


def rendered(trainer: Trainer, cam: Camera) -> RenderedView:
    """The splat's colour, alpha and expected depth at `cam`, as numpy."""
    out, alpha = trainer.render(cam, "RGB+D")
    a = alpha.clamp(0, 1)
    depth = torch.where(a > 1e-6, out[..., 3] / a.clamp_min(1e-6), torch.zeros_like(a))
    return RenderedView(cam, out[..., :3].clamp(0, 1).cpu().numpy(), a.cpu().numpy(), depth.cpu().numpy())


def sources_of(trainer: Trainer, scene: Scene) -> list[SourceView]:
    """Each training view's photo with the splat's render there (for the occlusion test)."""
    out = []
    for v in scene.views:
        r = rendered(trainer, v.camera)
        out.append(SourceView(v.camera, r.render, r.alpha, r.depth, photo=v.image, mask=v.mask))
    return out


def target_error(trainer: Trainer, targets: list[Target]) -> float:
    """Mean over targets of the confidence-weighted L1 between the render and the target."""
    errs = []
    for t in targets:
        img, _ = trainer.render(t.camera, "RGB", torch.tensor(t.background, dtype=torch.float32, device=trainer.dev))
        w = np.ones(img.shape[:2], np.float32) if t.confidence is None else t.confidence
        if w.sum() > 0:
            diff = np.abs(img.cpu().numpy() - t.image).mean(-1)
            errs.append(float((w * diff).sum() / w.sum()))
    return float(np.mean(errs)) if errs else 0.0


def panel(render: np.ndarray, repaired: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """render | repaired | confidence (grey), side by side with white gutters, [H, 3W+8, 3]."""
    gutter = np.ones((render.shape[0], 4, 3), np.float32)
    conf = np.repeat(np.clip(confidence, 0, 1)[..., None], 3, -1)
    return np.concatenate([render, gutter, repaired, gutter, conf], axis=1)


def repair_round(trainer: Trainer, repairer: Repairer, cfg: RepairConfig, scene: Scene, r: int,
                 folder: Path, obs: Observer) -> list[Target]:
    """Round r's targets: render the pseudo views, repair each, save render | repaired | confidence."""
    centre, _ = scene.bounds()
    cams = pseudo_cameras(scene.cameras, centre, r, cfg.rounds, cfg.views, cfg.spread, cfg.scale)
    sources = sources_of(trainer, scene)
    targets, panels = [], []
    for k, cam in enumerate(cams):
        view = rendered(trainer, cam)
        order = nearest_sources(cam, scene.cameras, len(scene.cameras))
        rep = repairer.repair(view, [sources[i] for i in order])
        targets.append(Target(cam, rep.image, rep.confidence, rep.background))
        panels.append(panel(view.render, rep.image, rep.confidence))
        write_png(folder / f"round_{r + 1}" / f"view_{k:02d}.png", panels[-1])
    obs.images_ready(f"repair: round {r + 1} (render | repaired | confidence)", panels)
    return targets


def run_repair(cfg: RepairConfig, opt: OptimizeConfig, trained: Trained, scene: Scene, run_dir: Path, obs: Observer,
               device: str = "cpu", share_cpu: bool = False) -> Repaired:
    """Continue `trained`'s optimisation with cfg.rounds rounds of repaired pseudo views."""
    t0 = time.perf_counter()
    repairer = make_repairer(cfg, device)
    obs.log(f"repair: {repairer.name}; {cfg.rounds} rounds × {cfg.views} pseudo views, {cfg.steps} steps each, "
            f"weight {cfg.weight}")
    # The Trainer gets the scene's own cameras: the state holds camera refinement's corrections
    # relative to them. The rounds place pseudo cameras around the refined ones.
    trainer = Trainer(opt, scene, trained.gaussians, device, obs)
    trainer.load_state_dict(trained.state)
    refined = trainer.refined_cameras()
    seen = refined_scene(scene, refined)
    folder = Path(run_dir) / FOLDER
    shutil.rmtree(folder, ignore_errors=True)  # pictures of an earlier run's rounds
    share = CpuShare() if share_cpu and device == "cpu" else None
    records = []
    try:
        for r in range(cfg.rounds):
            t1 = time.perf_counter()
            targets = repair_round(trainer, repairer, cfg, seen, r, folder, obs)
            before = target_error(trainer, targets)
            trainer.add_targets(GROUP, targets, cfg.weight)
            trainer.train(cfg.steps, before_step=share.apply if share is not None else None)
            rec = RoundRecord(len(targets), float(np.mean([t.confidence.mean() for t in targets])) if targets else 0.0,
                              before, target_error(trainer, targets), time.perf_counter() - t1)
            records.append(rec)
            obs.log(f"repair: round {r + 1}/{cfg.rounds}: {rec.views} views (mean confidence {rec.confidence:.2f}), "
                    f"error to the targets {rec.error_before:.4f} → {rec.error_after:.4f}, {rec.seconds:.1f} s; "
                    f"saved to {folder / f'round_{r + 1}'}")
    finally:
        if share is not None:
            share.close()
    trainer.clear_targets(GROUP)
    result = trainer.finish()
    return Repaired(result, trainer.log, trainer.state_dict(), refined, method=repairer.name, rounds=records,
                    seconds=time.perf_counter() - t0)


def pass_through(trained: Trained, run_dir: Path, obs: Observer) -> Trained:
    """Repair off: the optimised splat goes on; pictures of an earlier run's rounds go."""
    shutil.rmtree(Path(run_dir) / FOLDER, ignore_errors=True)
    obs.log("repair: off (--config.repair.enabled to repair pseudo views), the splat passes through")
    return trained
