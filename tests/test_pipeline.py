"""The stage graph end to end on a tiny synthetic scene: artifacts, cache reuse, --until, --force."""

from __future__ import annotations

import dataclasses
import json

import pytest

from recon.errors import ReconError
from recon.events import Observer
from recon.pipeline import STAGE_NAMES, RunConfig, run_pipeline


class Recorder(Observer):
    def __init__(self) -> None:
        self.finished: list[tuple[str, bool]] = []
        self.logs: list[str] = []
        self.updates = 0
        self.metrics: list[dict] = []

    def stage_finished(self, stage, seconds, cached):
        self.finished.append((stage, cached))

    def log(self, message):
        self.logs.append(message)

    def gaussians_updated(self, gaussians, step):
        self.updates += 1

    def step_metrics(self, step, metrics):
        self.metrics.append(metrics)


def tiny_config(steps: int = 30) -> RunConfig:
    cfg = RunConfig(device="cpu")
    cfg.init.num_random = 300
    cfg.init.sh_degree = 1
    cfg.optimize.steps = steps
    cfg.optimize.densify.start = 10
    cfg.optimize.densify.every = 10
    cfg.optimize.densify.stop = steps - 5
    cfg.export.renders = True
    return cfg


def test_full_run_writes_deliverables_and_improves(tmp_path, scene):
    rec = Recorder()
    result = run_pipeline(tiny_config(60), tmp_path, rec, scene=scene, scene_key="s")
    assert [s for s, _ in rec.finished] == STAGE_NAMES
    assert (tmp_path / "splat.ply").exists() and (tmp_path / "cameras.json").exists()
    assert len(list((tmp_path / "renders").glob("*.png"))) == len(scene)
    run = json.loads((tmp_path / "run.json").read_text())
    assert set(run["stage_seconds"]) == set(STAGE_NAMES) and run["device"] == "cpu"
    g, log = result.artifacts["optimize"].gaussians, result.artifacts["optimize"].log
    assert log.psnr[-1] > log.psnr[0] + 1.0, "optimisation should raise training PSNR"
    assert rec.updates >= 2 and rec.metrics
    assert any("repair: off" in m for m in rec.logs), "stages that are off say so in the log"
    assert any(m.startswith("filters auto:") for m in rec.logs), "the filters' detectors say what they found"


def test_rerun_reuses_and_config_change_recomputes(tmp_path, scene):
    cfg = tiny_config()
    run_pipeline(cfg, tmp_path, Recorder(), scene=scene, scene_key="s")
    rec = Recorder()
    run_pipeline(cfg, tmp_path, rec, scene=scene, scene_key="s")
    cached = dict(rec.finished)
    assert cached["poses"] and cached["init"] and cached["optimize"]

    changed = dataclasses.replace(cfg, optimize=dataclasses.replace(cfg.optimize, ssim_lambda=0.5))
    rec = Recorder()
    run_pipeline(changed, tmp_path, rec, scene=scene, scene_key="s")
    cached = dict(rec.finished)
    assert cached["init"] and not cached["optimize"], "only the changed stage and later recompute"


def test_until_and_force(tmp_path, scene):
    rec = Recorder()
    result = run_pipeline(tiny_config(), tmp_path, rec, scene=scene, scene_key="s", until="init")
    assert [s for s, _ in rec.finished][-1] == "init" and "optimize" not in result.artifacts
    rec = Recorder()
    run_pipeline(tiny_config(), tmp_path, rec, scene=scene, scene_key="s", until="init", force="poses")
    assert dict(rec.finished)["poses"] is False and dict(rec.finished)["init"] is False


def test_unknown_stage_is_a_clear_error(tmp_path, scene):
    with pytest.raises(ReconError, match="unknown stage 'optimise'"):
        run_pipeline(tiny_config(), tmp_path, Recorder(), scene=scene, until="optimise")


def test_diverging_optimisation_stops_with_message(tmp_path, scene):
    cfg = tiny_config(20)
    cfg.optimize.lr_opacities = float("nan")
    with pytest.raises(ReconError, match="diverged"):
        run_pipeline(cfg, tmp_path, Recorder(), scene=scene, scene_key="s")
