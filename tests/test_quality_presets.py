"""Presets load and say what they promise; the optional depth prior loads from a local folder
(a tiny randomly initialised model built here — never downloaded) and trains one step."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from recon.errors import ReconError
from recon.events import Observer
from recon.gaussians import Gaussians
from recon.presets import load_preset, preset_names, resolve_preset
from recon.stages.optimize import run_optimize


def test_every_preset_loads():
    names = preset_names()
    assert {"fast", "quality", "vanilla"} <= set(names)
    for name in names:
        load_preset(name)


def test_auto_picks_fast_on_a_cpu_and_quality_on_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_preset("auto")[0] == "fast"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    name, why = resolve_preset("auto")
    assert name == "quality" and "CUDA" in why
    assert resolve_preset("auto", device="cpu")[0] == "fast", "--device cpu on a CUDA machine"
    assert resolve_preset("vanilla") == ("vanilla", None)


def test_vanilla_switches_every_few_view_part_off():
    cfg = load_preset("vanilla")
    assert cfg.init.method == "random"
    assert not (cfg.init.stereo.enabled or cfg.init.hull.enabled or cfg.init.matches.enabled)
    reg = cfg.optimize.regularize
    assert not cfg.optimize.use_masks and cfg.optimize.background == "black"
    assert reg.filter_3d == 0 and reg.pseudo.every == 0 and not reg.depth_prior.model
    from recon.train.registry import build_parts

    from synthetic import synthetic_scene

    assert build_parts(cfg.optimize, synthetic_scene(2)) == [], "no part is switched on"


def test_fast_uses_the_few_view_parts_and_quality_keeps_them_on_a_longer_schedule():
    fast, quality = load_preset("fast"), load_preset("quality")
    for cfg in (fast, quality):
        assert cfg.init.stereo.enabled and cfg.init.hull.enabled and cfg.optimize.use_masks
        assert not cfg.optimize.regularize.depth_prior.model, "no weights by default"
    assert quality.optimize.regularize.pseudo == fast.optimize.regularize.pseudo
    assert fast.optimize.steps < quality.optimize.steps


@pytest.fixture(scope="module")
def tiny_depth_model(tmp_path_factory):
    """A randomly initialised Depth Anything with a 2-layer backbone, saved like a local checkout."""
    transformers = pytest.importorskip("transformers")
    backbone = transformers.Dinov2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=32, patch_size=14, image_size=56,
                                         out_indices=[1, 2], reshape_hidden_states=False)
    cfg = transformers.DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=16,
                                           neck_hidden_sizes=[8, 16], fusion_hidden_size=16,
                                           head_hidden_size=8, reassemble_factors=[2, 1])
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_depth_anything")
    transformers.DepthAnythingForDepthEstimation(cfg).save_pretrained(folder)
    transformers.DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=True,
                                   ensure_multiple_of=14).save_pretrained(folder)
    return folder


def test_depth_prior_loads_from_a_local_folder_and_predicts(tiny_depth_model):
    from recon.priors.depth import load_depth_prior

    prior = load_depth_prior(str(tiny_depth_model))
    depth = prior.predict(np.random.default_rng(0).random((30, 40, 3)).astype(np.float32))
    assert depth.shape == (30, 40) and torch.isfinite(depth).all()


def test_depth_prior_that_is_not_on_disk_is_a_clear_error(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    from recon.priors.depth import load_depth_prior

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ReconError, match="never downloads"):
        load_depth_prior(str(tmp_path / "missing-model"))


def test_depth_prior_without_transformers_says_what_to_install(monkeypatch):
    import sys

    from recon.priors.depth import load_depth_prior

    monkeypatch.setitem(sys.modules, "transformers", None)  # import fails as if not installed
    with pytest.raises(ReconError, match="needs transformers"):
        load_depth_prior("depth-anything/Depth-Anything-V2-Small-hf")


def test_optimise_with_the_depth_prior(tiny_depth_model, scene):
    from recon.stages.optimize import OptimizeConfig

    cfg = OptimizeConfig(steps=3, backend="cpu")
    cfg.densify = dataclasses.replace(cfg.densify, enabled=False)
    dp = dataclasses.replace(cfg.regularize.depth_prior, model=str(tiny_depth_model), weight=0.5)
    pseudo = dataclasses.replace(cfg.regularize.pseudo, every=1, scale=1.0)
    cfg.regularize = dataclasses.replace(cfg.regularize, depth_prior=dp, pseudo=pseudo)
    pts = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32) * 0.5
    logs = []

    class Log(Observer):
        def log(self, message):
            logs.append(message)

    log = run_optimize(cfg, scene, Gaussians.from_points(pts, None, sh_degree=0, scale=0.2), Log()).log
    assert len(log.loss) and np.isfinite(log.loss).all()
    assert any("depth prior" in m for m in logs)
