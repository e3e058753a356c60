"""The Trainer: resuming from a checkpoint gives the same Gaussians as an uninterrupted run; extra
targets, per-pixel weights and frozen parameters do what they say."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from recon import interrupt
from recon.events import Observer
from recon.gaussians import Gaussians
from recon.train import OptimizeConfig, Target, Trainer
from recon.train.checkpoint import Checkpointer

from synthetic import colored_blob, random_init, render_scene, ring_cameras


@pytest.fixture(scope="module")
def scene():
    return render_scene(colored_blob(300), ring_cameras(3, 32, 24))


def fast_like(steps: int = 40) -> OptimizeConfig:
    """The fast preset's parts (masks on a random background, 3D filter, pseudo views with depth
    smoothness and hull alpha, densification) on a tiny schedule, so a resume has to restore all
    of their state: Adam, the strategy's statistics, the filter, three random streams."""
    cfg = OptimizeConfig(steps=steps, backend="cpu", stream_every_s=1e9, checkpoint_every_s=0,
                         use_masks=True, background="random", ssim_lambda=0.2, sh_degree_interval=10)
    cfg.densify = dataclasses.replace(cfg.densify, start=5, stop=35, every=10, grow_grad2d=1e-5,
                                      reset_opacity_every=20)
    pseudo = dataclasses.replace(cfg.regularize.pseudo, every=2, depth_smooth=0.1, hull_alpha=1.0,
                                 hull_resolution=24)
    cfg.regularize = dataclasses.replace(cfg.regularize, filter_3d=0.45, pseudo=pseudo)
    return cfg


def init() -> Gaussians:
    g = random_init(120)
    g.shN = torch.zeros(len(g), 3, 3)  # SH degree 1, raised during training
    return g


def assert_same(a: Gaussians, b: Gaussians) -> None:
    assert len(a) == len(b)
    for k in Gaussians.KEYS:
        assert torch.equal(getattr(a, k), getattr(b, k)), k


def test_resume_from_a_checkpoint_matches_an_uninterrupted_run(scene, tmp_path):
    cfg = fast_like()
    straight = Trainer(cfg, scene, init())
    straight.train()
    expected = straight.finish()
    assert len(expected) != 120, "densification ran, so its state is part of what must resume"

    first = Trainer(cfg, scene, init())
    first.train(steps=17)  # stop mid-densification, between pseudo views
    saver = Checkpointer(tmp_path / "checkpoint.pt")
    saver.save(first)
    resumed = Trainer(cfg, scene, init())
    resumed.load_state_dict(saver.load())
    assert resumed.step == 17
    resumed.train()
    assert_same(resumed.finish(), expected)
    assert resumed.log.steps == straight.log.steps and resumed.log.loss == straight.log.loss


def test_resume_with_camera_refinement_matches_an_uninterrupted_run(scene, tmp_path):
    """The cameras' corrections and their Adam resume too: stopped inside the refinement window
    (20 of 40 steps), the resumed run ends with the same Gaussians and the same cameras."""
    from recon.train.parts.camera_refine import CameraRefineConfig

    cfg = dataclasses.replace(fast_like(), camera_refine=CameraRefineConfig(mode="on", until=0.5))
    straight = Trainer(cfg, scene, init())
    straight.train()
    expected, cameras = straight.finish(), straight.refined_cameras()
    first = Trainer(cfg, scene, init())
    first.train(steps=13)
    saver = Checkpointer(tmp_path / "checkpoint.pt")
    saver.save(first)
    resumed = Trainer(cfg, scene, init())
    resumed.load_state_dict(saver.load())
    resumed.train()
    assert_same(resumed.finish(), expected)
    got = resumed.refined_cameras()
    assert not np.array_equal(got[scene.views[1].name].world_to_cam, scene.views[1].camera.world_to_cam)
    for name, cam in cameras.items():
        assert np.array_equal(got[name].world_to_cam, cam.world_to_cam), name


def test_a_signal_between_steps_saves_and_raises(scene, tmp_path):
    cfg = fast_like(30)
    saver = Checkpointer(tmp_path / "checkpoint.pt", every_s=0)

    class Stop:
        def __call__(self, trainer: Trainer) -> None:
            if trainer.step == 9:
                interrupt._received = 2  # what the handler records for SIGINT
            saver(trainer)

    trainer = Trainer(cfg, scene, init())
    try:
        with pytest.raises(interrupt.Interrupted, match="at optimize step 9/30"):
            trainer.train(on_step=Stop())
    finally:
        interrupt.reset()
    assert saver.saved_step == 9 and saver.load()["step"] == 9


def colour_fit(steps: int = 40) -> OptimizeConfig:
    """Fixed Gaussians whose colours learn fast: what these tests look at is colour."""
    cfg = OptimizeConfig(steps=steps, backend="cpu", stream_every_s=1e9, checkpoint_every_s=0, lr_sh0=0.05)
    cfg.densify = dataclasses.replace(cfg.densify, enabled=False)
    return cfg


def test_extra_targets_pull_a_novel_view_towards_them(scene):
    cfg = colour_fit()
    cfg.densify = dataclasses.replace(cfg.densify, enabled=False)
    cam = ring_cameras(5, 32, 24)[1]  # not one of the three training cameras
    red = np.zeros((cam.height, cam.width, 3), np.float32)
    red[..., 0] = 1.0

    def redness(t: Trainer) -> float:
        img, _ = t.render(cam)
        return float(img[..., 0].mean() - img[..., 1:].mean())

    plain = Trainer(cfg, scene, init())
    plain.train()
    pulled = Trainer(cfg, scene, init())
    pulled.add_targets("repair", [Target(cam, red)], weight=1.0)
    pulled.train()
    assert redness(pulled) > redness(plain) + 0.1
    none = Trainer(cfg, scene, init())
    none.add_targets("repair", [Target(cam, red, confidence=np.zeros(red.shape[:2], np.float32))], weight=1.0)
    none.train()
    assert abs(redness(none) - redness(plain)) < 0.02, "zero confidence: the target teaches nothing"


def test_zero_pixel_weights_ignore_a_corrupted_region(scene):
    """A pasted blob in one photo, weighted 0 where it is: the splat does not learn it."""
    cfg = colour_fit()
    corrupted = dataclasses.replace(scene, views=list(scene.views))
    view = corrupted.views[0]
    image = view.image.copy()
    image[6:18, 10:22] = [0.0, 1.0, 0.0]
    corrupted.views[0] = dataclasses.replace(view, image=image)
    weights = [None] * len(scene.views)
    weights[0] = np.ones(image.shape[:2], np.float32)
    weights[0][6:18, 10:22] = 0.0

    def green(t: Trainer) -> float:
        img, _ = t.render(view.camera)
        return float(img[6:18, 10:22, 1].mean() - img[6:18, 10:22, 0].mean())

    fitted = Trainer(cfg, corrupted, init())
    fitted.train()
    trusted = Trainer(cfg, corrupted, init())
    trusted.set_pixel_weights(weights)
    trusted.train()
    assert green(trusted) < green(fitted) - 0.05


def test_frozen_geometry_keeps_means_and_changes_colour(scene):
    cfg = OptimizeConfig(steps=15, backend="cpu", stream_every_s=1e9, checkpoint_every_s=0)
    t = Trainer(cfg, scene, init())
    t.freeze(["means", "quats", "scales", "opacities"])
    before = t.gaussians()
    t.train()
    after = t.finish()
    assert len(after) == len(before), "no densification with the geometry frozen"
    assert torch.equal(after.means, before.means) and torch.equal(after.scales, before.scales)
    assert not torch.equal(after.sh0, before.sh0)
    with pytest.raises(ValueError, match="unknown parameters"):
        t.freeze(["colour"])


def test_an_observer_sees_metrics_and_the_log_records_them(scene):
    seen = []

    class Watch(Observer):
        def step_metrics(self, step, metrics):
            seen.append((step, metrics["gaussians"]))

    cfg = OptimizeConfig(steps=21, backend="cpu", stream_every_s=1e9, checkpoint_every_s=0)
    t = Trainer(cfg, scene, init(), obs=Watch())
    t.train()
    assert [s for s, _ in seen] == [0, 10, 20] == t.log.steps
    assert np.isfinite(t.log.loss).all()
