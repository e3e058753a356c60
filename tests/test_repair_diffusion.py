"""The diffusion repairers, plumbing only: tiny random SD 1.5 / ControlNet-tile / Difix stand-in
models written by the test (tests/tiny_diffusion.py) run through the whole optimise ⇄ repair loop
with the network cut off, and weights that are not there, or not a pipeline, stop in one line
naming the setting. Their outputs are noise: nothing here measures what diffusion repair does."""

from __future__ import annotations

import dataclasses
import socket

import numpy as np
import pytest

pytest.importorskip("diffusers")

from recon.errors import ReconError  # noqa: E402
from recon.events import Observer  # noqa: E402
from recon.stages.optimize import Trained  # noqa: E402
from recon.stages.repair import RepairConfig, check_config, make_repairer, run_repair  # noqa: E402
from recon.train import OptimizeConfig, Trainer  # noqa: E402

from synthetic import colored_blob, random_init, render_scene, ring_cameras  # noqa: E402
from tiny_diffusion import write_controlnet, write_difix, write_embeds, write_sd15  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny_diffusion")
    return {"sd": str(write_sd15(d / "sd15")), "controlnet": str(write_controlnet(d / "tile")),
            "embeds": str(write_embeds(d / "embeds.pt")), "difix": str(write_difix(d / "difix"))}


@pytest.fixture
def offline(monkeypatch):
    """No network: a connection attempt fails the test, and the hub is told it is offline."""
    def refuse(*args, **kwargs):
        raise AssertionError("a repairer tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def small():
    cfg = OptimizeConfig(steps=20, backend="cpu", stream_every_s=1e9, checkpoint_every_s=0)
    cfg.densify = dataclasses.replace(cfg.densify, enabled=False)
    scene = render_scene(colored_blob(200), ring_cameras(3, 40, 32))
    t = Trainer(cfg, scene, random_init(150))
    t.train()
    return cfg, scene, Trained(t.finish(), t.log, t.state_dict())


def config(method: str, models: dict) -> RepairConfig:
    base = RepairConfig(enabled=True, method=method, rounds=1, views=2, steps=3, weight=0.5)
    if method == "difix":
        return dataclasses.replace(base, difix=dataclasses.replace(base.difix, model=models["difix"], size=32))
    return dataclasses.replace(base, diffusion=dataclasses.replace(
        base.diffusion, model=models["sd"], prompt_embeds=models["embeds"], steps=4, size=32,
        controlnet=models["controlnet"] if method == "controlnet-tile" else None))


@pytest.mark.parametrize("method, name", [("img2img", "SD 1.5 img2img"), ("controlnet-tile", "ControlNet-tile"),
                                          ("difix", "Difix3D+")])
def test_a_tiny_random_pipeline_runs_through_the_whole_loop_offline(method, name, models, small, offline, tmp_path):
    opt, scene, trained = small
    cfg = config(method, models)
    check_config(cfg)
    out = run_repair(cfg, opt, trained, scene, tmp_path, Observer())
    assert name in out.method and len(out.rounds) == 1 and out.rounds[0].views == 2
    assert out.state["step"] == trained.state["step"] + cfg.steps
    assert out.rounds[0].confidence == 1.0  # diffusion gives no per-pixel confidence
    pictures = sorted((tmp_path / "repair" / "round_1").glob("*.png"))
    assert len(pictures) == 2
    import imageio.v3 as iio

    panel = iio.imread(pictures[0])
    assert panel.shape == (32, 3 * 40 + 8, 3)
    repaired = panel[:, 44:84].astype(np.float32)
    assert repaired.std() > 0, "the repaired view is the pipeline's output, not a blank"


def test_weights_that_are_missing_or_not_a_pipeline_stop_in_one_line(models, tmp_path, offline):
    base = config("img2img", models)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ReconError) as e:
        make_repairer(dataclasses.replace(base, diffusion=dataclasses.replace(base.diffusion, model=str(empty))))
    assert "cannot load the SD 1.5 pipeline from folder" in str(e.value) and str(empty) in str(e.value)
    assert "\n" not in str(e.value) and "never downloads" in str(e.value)
    with pytest.raises(ReconError) as e:  # a hub id that is not in the cache: refused before the run
        check_config(dataclasses.replace(base, diffusion=dataclasses.replace(base.diffusion, model="nobody/sd15")))
    assert "--config.repair.diffusion.model 'nobody/sd15'" in str(e.value) and "\n" not in str(e.value)
    # an SD folder given as Difix (it lacks the text encoder a plain pipeline needs, and Difix's class)
    difix = config("difix", models)
    with pytest.raises(ReconError) as e:
        make_repairer(dataclasses.replace(difix, difix=dataclasses.replace(difix.difix, model=models["sd"])))
    assert "cannot load the Difix pipeline" in str(e.value) and "\n" not in str(e.value)
