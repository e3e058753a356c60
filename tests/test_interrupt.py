"""Ctrl-C and `kill` during `recon run`: one line saying where it stopped, no traceback or C++ stack
dump, a checkpoint in the run folder, and a rerun that resumes to the same splat as a run that
was never interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recon import interrupt
from recon.io.nerfstudio import write_nerfstudio
from recon.io.ply import read_ply

ARGS = ["--preset", "fast", "--device", "cpu", "--config.no-share-cpu", "--config.optimize.steps", "1500",
        "--config.init.num-random", "300", "--config.optimize.densify.no-enabled",
        "--config.export.no-renders"]


def recon(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "recon.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


def wait_for_training(run: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    log = run / "run.log"
    t0 = time.time()
    while time.time() - t0 < timeout and proc.poll() is None:
        if log.exists() and "[optimize] step 0 " in log.read_text():
            time.sleep(1.0)  # well into the steps
            return
        time.sleep(0.1)
    raise AssertionError("optimisation never started")


@pytest.fixture(scope="module")
def posed(tmp_path_factory):
    from synthetic import synthetic_scene

    folder = tmp_path_factory.mktemp("posed")
    write_nerfstudio(synthetic_scene(), folder)
    return folder


@pytest.fixture(scope="module")
def uninterrupted(posed, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    proc = recon("run", "--images", str(posed), "--out", str(out), *ARGS)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return read_ply(out / "splat.ply")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_cleanly_and_the_rerun_resumes(posed, uninterrupted, tmp_path, sig):
    out = tmp_path / "run"
    proc = recon("run", "--images", str(posed), "--out", str(out), *ARGS)
    wait_for_training(out, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"recon: interrupted ({sig.name}) at optimize step "), err
    assert "run the same command again to resume" in last
    for junk in ("Traceback", "stack trace", "SystemError", "*** "):
        assert junk not in err, err
    assert list((out / "cache").glob("optimize-*/checkpoint.pt")), "no checkpoint was saved"

    proc = recon("run", "--images", str(posed), "--out", str(out), *ARGS)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "resuming from the checkpoint at step" in (out / "run.log").read_text()
    assert not list((out / "cache").glob("optimize-*/checkpoint.pt")), "the artifact supersedes it"
    resumed = read_ply(out / "splat.ply")
    for k in ("means", "scales", "opacities", "sh0"):
        assert (getattr(resumed, k) == getattr(uninterrupted, k)).all(), k


def test_a_stage_interrupted_inside_compiled_code_names_the_stage(monkeypatch):
    """numba turns a KeyboardInterrupt into a SystemError; the pipeline reports the signal."""
    from recon.pipeline import Context, Stage, _run_stage

    def stage(ctx):
        raise SystemError("CPUDispatcher(<function raster_fwd>) returned a result with an exception set")

    monkeypatch.setattr(interrupt, "_received", signal.SIGINT)
    with pytest.raises(interrupt.Interrupted, match=r"interrupted \(SIGINT\) during init"):
        _run_stage(Stage("init", (), stage), Context(None, Path("."), "cpu", None), [])
    monkeypatch.setattr(interrupt, "_received", None)
    with pytest.raises(SystemError):
        _run_stage(Stage("init", (), stage), Context(None, Path("."), "cpu", None), [])
