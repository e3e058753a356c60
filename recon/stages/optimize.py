"""optimize: fit the Gaussians to the training views with the Trainer (recon/train/): 3DGS's Adam,
L1 + SSIM and gsplat's DefaultStrategy densification (pure PyTorch, so it runs on the CPU too),
plus the few-view parts the preset switches on. Checkpoints itself and resumes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from recon.cache import reason
from recon.cpu_share import CpuShare
from recon.events import Observer
from recon.gaussians import Gaussians
from recon.scene import Camera, Scene
from recon.train import OptimizeConfig, Trainer, TrainLog
from recon.train.checkpoint import Checkpointer

__all__ = ["OptimizeConfig", "Trained", "refined_scene", "run_optimize"]


@dataclass
class Trained:
    """The optimise stage's artifact: the splat as saved, the training log, and the Trainer's
    state (parameters, Adam, densification), so later stages continue the same optimisation."""

    gaussians: Gaussians
    log: TrainLog
    state: dict
    refined_cameras: dict[str, Camera] | None = None
    """The training cameras by view name as refined with the splat (optimize.camera_refine);
    None when they were not refined. `refined_scene` puts them into a scene."""


def refined_scene(scene: Scene, cameras: dict[str, Camera] | None) -> Scene:
    """`scene` with its views' cameras replaced by `cameras` (by view name; views not named keep
    theirs), or `scene` itself when there are none: what the stages after the optimisation see
    as the training cameras (export's cameras.json and renders, repair's pseudo cameras,
    stylize's views)."""
    if not cameras:
        return scene
    views = [replace(v, camera=cameras.get(v.name, v.camera)) for v in scene.views]
    return replace(scene, views=views)


def run_optimize(cfg: OptimizeConfig, scene: Scene, init: Gaussians, obs: Observer, device: str = "cpu",
                 share_cpu: bool = False, checkpoint: Path | None = None) -> Trained:
    """Train for cfg.steps. With `checkpoint`, save there as training goes and on an interrupt,
    and resume from it when it exists. With share_cpu (on the CPU), use fewer threads while other
    processes keep the cores busy."""
    trainer = Trainer(cfg, scene, init, device, obs)
    saver = Checkpointer(checkpoint, cfg.checkpoint_every_s)
    state = saver.load(obs.log)
    if state is not None:
        try:
            trainer.load_state_dict(state)
            obs.log(f"optimize: resuming from the checkpoint at step {trainer.step}/{trainer.total}")
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as e:
            # a state of another shape (a hand-copied checkpoint): half loaded, so start a new Trainer
            saver.unusable(f"{type(e).__name__}: {reason(e)}", obs.log)
            trainer = Trainer(cfg, scene, init, device, obs)
    share = CpuShare() if share_cpu and device == "cpu" else None
    try:
        trainer.train(on_step=saver, before_step=share.apply if share is not None else None)
    finally:
        if share is not None:
            share.close()
            if share.reduced_steps:
                obs.log(f"optimize: other processes were using the CPU; {share.reduced_steps} of "
                        f"{cfg.steps} steps ran on fewer than {share.max_threads} threads")
    result = trainer.finish()
    # The checkpoint stays until the pipeline has stored this artifact (which holds the state).
    return Trained(result, trainer.log, trainer.state_dict(), trainer.refined_cameras())
