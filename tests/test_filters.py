"""The filters stage on small synthetic scenes made here: an occluder pasted into one view loses
trust while the clean pixels keep it, a drop at the same pixel of every view is found, rain streaks
are masked, and the stage's settings are honoured or refused."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from recon.errors import ReconError
from recon.events import Observer
from recon.stages.filters import FiltersConfig, check_config, run_filters, trust_maps, write_trust_maps
from recon.train import OptimizeConfig, Trainer
from recon.train.parts.filter_plan import plan_parts
from recon.train.parts.robust import RobustWeights

from recon.scene import Camera

from synthetic import colored_blob, look_at, render_scene

W, H = 96, 72


@pytest.fixture(scope="module")
def truth():
    return colored_blob(500)


def arc_cameras(n: int, spread_deg: float = 50.0, radius: float = 3.2) -> list[Camera]:
    """n cameras on an arc of `spread_deg` looking at the blob, as a few-view capture walks
    around its subject: neighbouring views see mostly the same surface."""
    f = 0.5 * W / np.tan(np.radians(25))
    K = np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]])
    angles = np.radians(np.linspace(-spread_deg / 2, spread_deg / 2, n))
    return [Camera(K, look_at(np.array([radius * np.cos(a), radius * np.sin(a), 0.6]), np.zeros(3)), W, H)
            for a in angles]


def clean_scene(truth, n: int = 4):
    return render_scene(truth, arc_cameras(n), with_masks=False)


def train_with_filters(scene, init, steps: int = 80, **kw) -> Trainer:
    """A short fit from a jittered copy of the truth (so the splat explains the clean pixels
    early) with the filters stage's plan."""
    cfg = FiltersConfig(mode="on", weather="off", haze="off", **kw)
    filtered = run_filters(cfg, scene, "unused", Observer())
    opt = OptimizeConfig(steps=steps, backend="cpu", stream_every_s=1e9, checkpoint_every_s=0, ssim_lambda=0.0)
    opt.densify = dataclasses.replace(opt.densify, enabled=False)
    trainer = Trainer(opt, filtered, init, "cpu")
    trainer.train()
    return trainer


def jittered(g, seed: int = 1):
    rng = torch.Generator().manual_seed(seed)
    g = dataclasses.replace(g)
    g.means = g.means + 0.03 * torch.randn(g.means.shape, generator=rng)
    g.sh0 = g.sh0 + 0.05 * torch.randn(g.sh0.shape, generator=rng)
    return g


def robust_part(trainer: Trainer) -> RobustWeights:
    return next(p for p in trainer.parts if isinstance(p, RobustWeights))


BOX = (slice(22, 50), slice(34, 62))  # a grey-green block over the middle of the blob


@pytest.fixture(scope="module")
def occluded(truth):
    """(the clean scene, the same with an occluder pasted into view 1, a fit of it with the filters)."""
    clean = clean_scene(truth)
    scene = clean_scene(truth)
    img = scene.views[1].image.copy()
    img[BOX] = np.array([0.15, 0.6, 0.2], np.float32)
    scene.views[1] = dataclasses.replace(scene.views[1], image=img)
    return clean, scene, train_with_filters(scene, jittered(truth))


def test_an_occluder_in_one_view_loses_trust_and_clean_pixels_keep_it(occluded):
    _, _, trainer = occluded
    part = robust_part(trainer)
    occ = np.zeros((H, W), bool)
    occ[BOX] = True
    w1 = part.trust(1).numpy()
    assert np.mean(w1[occ] < 0.5) >= 0.9, f"occluder pixels distrusted: {np.mean(w1[occ] < 0.5):.2f}"
    clean = np.concatenate([w1[~occ]] + [part.trust(i).numpy().ravel() for i in (0, 2, 3)])
    assert np.mean(clean >= 0.9) >= 0.95, f"clean pixels trusted: {np.mean(clean >= 0.9):.3f}"


def test_a_drop_at_the_same_pixel_of_every_view_is_found(truth):
    scene = clean_scene(truth)
    yy, xx = np.mgrid[:H, :W]
    drop = (yy - 30) ** 2 + (xx - 44) ** 2 < 10 ** 2
    for i, v in enumerate(scene.views):
        img = v.image.copy()
        img[drop] = 0.85  # a pale blur where the drop refracts the sky
        scene.views[i] = dataclasses.replace(v, image=img)
    trainer = train_with_filters(scene, jittered(truth))
    part = robust_part(trainer)
    for i in range(len(scene)):
        w = part.trust(i).numpy()
        assert np.mean(w[drop] < 0.5) >= 0.8, (i, np.mean(w[drop] < 0.5))
        assert np.mean(w[~drop] >= 0.9) >= 0.9, (i, np.mean(w[~drop] >= 0.9))


class Pictures(Observer):
    def __init__(self) -> None:
        self.images: dict[str, list[np.ndarray]] = {}

    def images_ready(self, title: str, images: list[np.ndarray]) -> None:
        self.images[title] = images


def test_rain_streaks_get_no_trust_and_the_pictures_are_written(tmp_path, truth):
    scene = clean_scene(truth)
    rng = np.random.default_rng(0)
    streaks = np.zeros((H, W), bool)
    for _ in range(40):  # thin near-vertical bright streaks, one wind
        x, y, n = rng.integers(0, W), rng.integers(0, H - 12), rng.integers(8, 12)
        for k in range(n):
            streaks[y + k, min(W - 1, x + k // 6)] = True
    img = scene.views[0].image.copy()
    img[streaks] = np.maximum(img[streaks], 0.95)
    scene.views[0] = dataclasses.replace(scene.views[0], image=img)
    cfg = FiltersConfig(mode="on", weather="on", haze="off", transients=False)
    filtered = run_filters(cfg, scene, tmp_path, Observer())
    trust = filtered.meta["filters"].trust[0]
    assert trust is not None and np.mean(trust[streaks] < 0.5) >= 0.8
    assert np.mean(trust[~streaks] >= 0.5) >= 0.8, "streaks are masked, not the whole photo"
    seen = Pictures()
    write_trust_maps(filtered, {"parts": {}}, tmp_path, seen)
    assert (tmp_path / "filters" / f"{scene.views[0].name}.png").exists()
    # The viewer gets the same rows: photo | trust | removed, the streaks dark in the trust panel.
    (title, rows), = seen.images.items()
    assert title.startswith("filters:") and len(rows) == len(scene)
    assert rows[0].shape == (H, 3 * W, 3) and rows[0][:, W:2 * W][streaks].mean() < 0.5
    assert (tmp_path / "filters" / "contact.png").exists()
    assert trust_maps(scene, {}) is None, "no pictures without the stage's plan"


@pytest.mark.parametrize("cfg, setting", [
    (FiltersConfig(mode="off", haze="on"), "filters.haze"),
    (FiltersConfig(mode="off", appearance=True), "filters.appearance"),
    (FiltersConfig(mode="on", occluder_share=0.02), "filters.occluder-share"),
    (FiltersConfig(mode="on", transients=False, robust=dataclasses.replace(FiltersConfig().robust, k=2.0)),
     "filters.robust"),
    (FiltersConfig(mode="on", weather="off", rain=dataclasses.replace(FiltersConfig().rain, contrast=0.1)),
     "filters.rain"),
    (FiltersConfig(mode="on", haze="off", haze_fit=dataclasses.replace(FiltersConfig().haze_fit, lr=0.1)),
     "filters.haze-fit"),
])
def test_settings_that_would_do_nothing_are_refused(cfg, setting):
    with pytest.raises(ReconError, match=setting):
        check_config(cfg)


def test_settings_that_do_something_are_accepted():
    check_config(FiltersConfig())
    check_config(FiltersConfig(mode="on", haze="on", appearance=True,
                               robust=dataclasses.replace(FiltersConfig().robust, k=2.0)))


def test_the_pipeline_runs_the_stage_draws_trust_maps_and_keys_the_cache_on_it(tmp_path, scene):
    from recon.pipeline import run_pipeline

    from test_pipeline import Recorder, tiny_config

    cfg = tiny_config(20)
    cfg.filters = FiltersConfig(mode="off")
    off = run_pipeline(cfg, tmp_path / "off", Recorder(), scene=scene, scene_key="s")
    assert "filters" not in off.artifacts["filters"].meta and not (tmp_path / "off" / "filters").exists()
    cfg.filters = FiltersConfig(mode="on")
    rec = Recorder()
    on = run_pipeline(cfg, tmp_path / "on", rec, scene=scene, scene_key="s")
    assert on.artifacts["filters"].meta["filters"].robust is not None
    assert any(p.name == "robust weights" for p in plan_parts(on.artifacts["filters"].meta["filters"]))
    for v in scene.views:
        assert (tmp_path / "on" / "filters" / f"{v.name}.png").exists()
    assert any("filters: robust weights on" in m for m in rec.logs)
    run = json.loads((tmp_path / "on" / "run.json").read_text())
    assert run["stage_keys"]["filters"] != run["stage_keys"]["masks"], "filters on keys the stages after it"
