"""Reruns that survive a damaged run folder (issue 26): a cached artifact or a checkpoint that is
truncated, garbage or of the wrong type is a cache miss: one line names the file, the stage
recomputes and overwrites it, and the run succeeds."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from test_cli import TINY
from test_pipeline import Recorder, tiny_config

from recon.cache import MAGIC, ArtifactStore, Unreadable
from recon.cli import main
from recon.errors import ReconError
from recon.eval.batch import load_finished
from recon.gaussians import Gaussians
from recon.io.nerfstudio import write_nerfstudio
from recon.pipeline import CHECKPOINT, run_pipeline
from recon.train.checkpoint import FORMAT, Checkpointer


GARBAGE = random.Random(0).randbytes(5000)


def truncate(path: Path, size: int = 1000) -> None:
    """What a disk error or a half-copied folder leaves (`truncate -s 1000`)."""
    assert path.stat().st_size > size, f"{path} is too small to truncate"
    os.truncate(path, size)


def only(folder: Path, pattern: str) -> Path:
    found = list(folder.glob(pattern))
    assert len(found) == 1, found
    return found[0]


# --- the artifact store on its own -------------------------------------------------------------------------


class Gone:
    """A class that an older recon had and this one no longer does (see test below)."""


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "zeros", "bit flip", "headerless truncated",
                                    "class gone", "wrong type"])
def test_the_store_says_why_an_artifact_cannot_be_read(tmp_path, damage):
    store = ArtifactStore(tmp_path)
    artifact = {"means": torch.arange(3000.0), "name": "x"}
    store.save("init", "k", artifact)
    path = store.path("init", "k")
    assert path.read_bytes().startswith(MAGIC)
    assert torch.equal(store.load("init", "k", dict)["means"], artifact["means"])
    expect, why = dict, "truncated: 1,000 of"
    if damage == "truncated":
        truncate(path)
    elif damage == "empty":
        truncate(path, 0)
        why = "Ran out of input"
    elif damage == "garbage":
        path.write_bytes(GARBAGE)
        why = ""
    elif damage == "zeros":
        path.write_bytes(bytes(5000))
        why = "invalid load key"
    elif damage == "bit flip":  # still unpickles (it flips a float), but the checksum catches it
        data = bytearray(path.read_bytes())
        data[-200] ^= 0x10
        path.write_bytes(bytes(data))
        why = "checksum"
    elif damage == "headerless truncated":  # an artifact an older recon wrote, without the header
        path.write_bytes(pickle.dumps(artifact, protocol=4)[:1000])
        why = "pickle data was truncated"
    elif damage == "class gone":
        path.write_bytes(pickle.dumps(Gone()).replace(b"Gone", b"Went"))
        why = "Went"
        expect = None
    elif damage == "wrong type":
        store.save("init", "k", [1, 2, 3])
        why = "it holds a list, not a dict"
    with pytest.raises(Unreadable) as e:
        store.load("init", "k", expect)
    assert e.value.path == path and why in e.value.reason and "\n" not in e.value.reason


def test_an_artifact_from_before_the_header_still_loads(tmp_path):
    store = ArtifactStore(tmp_path)
    store.path("init", "k").parent.mkdir(parents=True)
    store.path("init", "k").write_bytes(pickle.dumps([1, 2, 3]))
    assert store.load("init", "k", list) == [1, 2, 3]


# --- the pipeline --------------------------------------------------------------------------------------------


def test_a_truncated_init_artifact_is_recomputed_with_one_line(tmp_path, scene):
    cfg = tiny_config()
    first = run_pipeline(cfg, tmp_path, Recorder(), scene=scene, scene_key="s", until="init")
    artifact = only(tmp_path / "cache", "init-*/artifact.pkl")
    truncate(artifact)

    rec = Recorder()
    again = run_pipeline(cfg, tmp_path, rec, scene=scene, scene_key="s", until="init")
    said = [m for m in rec.logs if "unreadable" in m]
    assert said == [f"init: the cached artifact {artifact} is unreadable (truncated: 1,000 of "
                    f"{said[0].split(' of ')[1].split(' bytes')[0]} bytes); recomputing init"], rec.logs
    cached = dict(rec.finished)
    assert cached["poses"] and not cached["init"], "only init recomputed"
    g = ArtifactStore(tmp_path).load("init", artifact.parent.name.split("-", 1)[1], Gaussians)
    assert torch.equal(g.means, again.artifacts["init"].means)
    assert torch.equal(g.means, first.artifacts["init"].means), "the same config makes the same init"

    rec = Recorder()  # and the next rerun reuses the rewritten artifact, silently
    run_pipeline(cfg, tmp_path, rec, scene=scene, scene_key="s", until="init")
    assert dict(rec.finished)["init"] and not any("unreadable" in m for m in rec.logs)


def test_an_artifact_of_the_wrong_type_is_recomputed(tmp_path, scene):
    cfg = tiny_config()
    run_pipeline(cfg, tmp_path, Recorder(), scene=scene, scene_key="s", until="init")
    poses = only(tmp_path / "cache", "poses-*/artifact.pkl")
    ArtifactStore(tmp_path).save("poses", poses.parent.name.split("-", 1)[1], ["not", "a", "scene"])
    rec = Recorder()
    run_pipeline(cfg, tmp_path, rec, scene=scene, scene_key="s", until="init")
    assert [m for m in rec.logs if "unreadable" in m] == [
        f"poses: the cached artifact {poses} is unreadable (it holds a list, not a Scene); recomputing poses"]
    assert not dict(rec.finished)["poses"] and dict(rec.finished)["init"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny run: (run folder, its config, the scene)."""
    from synthetic import synthetic_scene

    scene, cfg = synthetic_scene(), tiny_config()
    run = tmp_path_factory.mktemp("finished")
    run_pipeline(cfg, run, Recorder(), scene=scene, scene_key="s")
    return run, cfg, scene


def _optimize_folder(run: Path) -> Path:
    return only(run / "cache", "optimize-*/artifact.pkl").parent


@pytest.mark.parametrize("damage", ["truncated", "garbage", "other format", "other shape"])
def test_a_damaged_checkpoint_restarts_the_optimisation_with_one_line(tmp_path, finished, damage):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished[0], run)
    cfg, scene = finished[1], finished[2]
    folder = _optimize_folder(run)
    state = ArtifactStore(run).load("optimize", folder.name.split("-", 1)[1]).state
    checkpoint = folder / CHECKPOINT
    # what an interrupted run leaves: the checkpoint, no artifact; then the damage
    torch.save({"format": FORMAT, "state": state}, checkpoint)
    (folder / "artifact.pkl").unlink()
    why = {"truncated": "failed finding central directory", "garbage": "", "other format": "format 0",
           "other shape": "KeyError"}[damage]
    if damage == "truncated":
        truncate(checkpoint)
    elif damage == "garbage":
        checkpoint.write_bytes(GARBAGE)
    elif damage == "other format":
        torch.save({"format": 0, "state": state}, checkpoint)
    else:  # readable, but not the state of a Trainer
        torch.save({"format": FORMAT, "state": {"step": 3}}, checkpoint)

    rec = Recorder()
    result = run_pipeline(cfg, run, rec, scene=scene, scene_key="s")
    said = [m for m in rec.logs if str(checkpoint) in m]
    assert len(said) == 1 and said[0].startswith(f"optimize: the checkpoint {checkpoint} is unreadable (")
    assert said[0].endswith("); training starts from step 0") and why in said[0], said
    assert not any("resuming" in m for m in rec.logs)
    assert not dict(rec.finished)["optimize"] and dict(rec.finished)["init"]
    assert len(result.artifacts["optimize"].log.psnr) > 0 and rec.metrics, "it trained from scratch"
    assert (folder / "artifact.pkl").is_file() and not checkpoint.exists(), "the artifact supersedes it"


def test_a_damaged_optimise_artifact_is_one_line_for_recon_stylize(tmp_path, finished, capsys):
    """`recon stylize` cannot recompute the optimisation: one line says how to."""
    import shutil

    import imageio.v3 as iio
    import numpy as np

    run = tmp_path / "run"
    shutil.copytree(finished[0], run)
    artifact = _optimize_folder(run) / "artifact.pkl"
    truncate(artifact)
    style = tmp_path / "style.png"
    iio.imwrite(style, (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8))
    assert main(["stylize", str(run), "--style", str(style), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith(f"recon: error: {artifact}: the cached optimize stage is unreadable (truncated: 1,000 of ")
    assert "run `recon run` again with the same command" in err[0]


# --- recon eval's finished jobs ------------------------------------------------------------------------------


def test_a_damaged_score_json_is_evaluated_again_with_one_line(tmp_path):
    job = SimpleNamespace(scene_dir=str(tmp_path), label="dtu/scan8@3", key=lambda: "k")
    said: list[str] = []
    assert load_finished(job, said.append) is None and said == [], "no score.json: silently not finished"
    (tmp_path / "score.json").write_text('{"key": "k", "entry": {"status": "o')
    assert load_finished(job, said.append) is None
    assert said == [f"  dtu/scan8@3: {tmp_path / 'score.json'} is unreadable "
                    "(Unterminated string starting at: line 1 column 34 (char 33)); evaluating it again"]
    (tmp_path / "score.json").write_text("[1, 2]")
    assert load_finished(job, said.append) is None and "it holds a list" in said[-1]
    (tmp_path / "score.json").write_text('{"key": "k", "entry": {"status": "ok", "test_views": []}}')
    assert load_finished(job, said.append) is not None and len(said) == 2


# --- the command line, as a user meets it ---------------------------------------------------------------------


def test_recon_run_after_truncate_says_one_line_and_exits_0(tmp_path, scene, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # rich wraps log lines at the terminal's width, 80 in a pipe
    posed = tmp_path / "posed"
    write_nerfstudio(scene, posed)
    out = tmp_path / "run"
    args = ["run", "--images", str(posed), "--out", str(out), "--until", "init", *TINY]
    assert main(args) == 0
    artifact = only(out / "cache", "init-*/artifact.pkl")
    truncate(artifact)
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "UnpicklingError" not in err
    lines = [ln.strip() for ln in err.splitlines() if "unreadable" in ln]
    assert len(lines) == 1 and lines[0].startswith(f"init: the cached artifact {artifact} is unreadable "
                                                    "(truncated: 1,000 of "), err
    assert lines[0].endswith("; recomputing init")
    assert lines[0] in (out / "run.log").read_text(), "the run log has the line too"
    assert ArtifactStore(out).load("init", artifact.parent.name.split("-", 1)[1], Gaussians) is not None


def test_recon_stylize_refuses_a_damaged_run_json_in_one_line(tmp_path):
    from recon.restyle import read_run

    (tmp_path / "run.json").write_text('{"config": {"stylize"')
    with pytest.raises(ReconError, match="run `recon run` again with the same command, it rewrites it"):
        read_run(tmp_path)
    (tmp_path / "run.json").write_text("[]")
    with pytest.raises(ReconError, match="not a run.json recon wrote"):
        read_run(tmp_path)
