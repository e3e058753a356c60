"""CpuShare: fewer optimiser threads while other processes hold cores, restored afterwards."""

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import numba
import pytest
import torch

from recon import cpu_share
from recon.cpu_share import CpuShare, threads_for
from recon.events import Observer
from recon.stages.optimize import OptimizeConfig, run_optimize

from synthetic import colored_blob, random_init, render_scene, ring_cameras


def test_threads_for_leaves_busy_cores_and_takes_them_back_without_flapping():
    assert threads_for(0.0, cores=2, max_threads=2, current=2) == 2
    assert threads_for(0.37, cores=2, max_threads=2, current=2) == 2  # a loop busy half the time
    assert threads_for(0.65, cores=2, max_threads=2, current=2) == 1  # a full one, beside our 2
    assert threads_for(1.0, cores=2, max_threads=2, current=1) == 1  # ... and beside our 1: stay
    assert threads_for(0.75, cores=2, max_threads=2, current=1) == 1  # between the thresholds: stay
    assert threads_for(0.5, cores=2, max_threads=2, current=1) == 2  # the half-busy loop beside 1
    assert threads_for(0.0, cores=2, max_threads=2, current=1) == 2  # it left
    assert threads_for(1.9, cores=2, max_threads=2, current=2) == 1  # never below one
    assert threads_for(1.0, cores=8, max_threads=8, current=8) == 7
    assert threads_for(2.6, cores=8, max_threads=8, current=8) == 5
    assert threads_for(0.0, cores=8, max_threads=3, current=3) == 3  # never above the run's own setting


def test_apply_sets_torch_and_numba_threads_and_close_restores_them():
    before = (torch.get_num_threads(), numba.get_num_threads())
    share = CpuShare(max_threads=2, cores=2)
    try:
        share.observe(1.5)
        assert share.apply() == 1
        assert (torch.get_num_threads(), numba.get_num_threads()) == (1, 1)
        share.apply()
        assert share.reduced_steps == 2 and share.changes == [1]
        share.observe(0.0)
        assert share.apply() == 2 and share.changes == [1, 2]
        share.observe(1.5)
        share.apply()
    finally:
        share.close()
    assert (torch.get_num_threads(), numba.get_num_threads()) == before


needs_proc = pytest.mark.skipif(not Path("/proc/stat").exists() or (os.cpu_count() or 1) < 2,
                                reason="needs Linux /proc and at least 2 cores")


def _busy_loops(n: int, nice: int = 0) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"],
                             preexec_fn=(lambda: os.nice(nice)) if nice else None) for _ in range(n)]


def _wait_for_others(share: CpuShare, at_least: float, seconds: float = 10.0) -> float:
    """Wait until the sampler reports `at_least` cores used by others (or time runs out)."""
    deadline = time.monotonic() + seconds
    while share.others < at_least and time.monotonic() < deadline:
        time.sleep(0.1)
    return share.others


@needs_proc
@pytest.mark.parametrize("nice", [0, 19])
def test_sampler_sees_busy_processes_and_proposes_fewer_threads(monkeypatch, nice):
    """Niced processes count too: a browser at nice 19 still held up two optimiser threads
    (docs/benchmarks.md), as a thread woken at a barrier does not get its core back at once."""
    monkeypatch.setattr(cpu_share, "SAMPLE_SECONDS", 0.25)
    cores = os.cpu_count() or 2
    hogs = _busy_loops(cores, nice=nice)
    try:
        share = CpuShare(max_threads=cores, cores=cores)
        assert share.active
        assert _wait_for_others(share, 1.0) >= 1.0, share.others  # `cores` loops: a core's worth at least
        assert share.proposed < cores
        share.close()
    finally:
        for h in hogs:
            h.kill()
            h.wait()


class _Log(Observer):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, message: str) -> None:
        self.lines.append(message)


def test_optimise_applies_the_proposal_each_step_and_reports_it(monkeypatch):
    """With the sampler replaced by a machine that is always busy, every step runs on one thread,
    the run says so, and the thread counts are back afterwards."""
    seen: list[int] = []

    class Busy(CpuShare):
        def __init__(self) -> None:
            super().__init__(max_threads=2, cores=2)
            self.observe(1.5)

        def _sample(self) -> None:  # no real sampler: the machine stays "busy"
            pass

        def apply(self) -> int:
            n = super().apply()
            seen.append(torch.get_num_threads())
            return n

    monkeypatch.setattr("recon.stages.optimize.CpuShare", Busy)
    before = (torch.get_num_threads(), numba.get_num_threads())
    scene = render_scene(colored_blob(200), ring_cameras(3, 32, 24))
    init = random_init(100)
    cfg = OptimizeConfig(steps=12, backend="cpu", stream_every_s=1e9)
    cfg.densify = dataclasses.replace(cfg.densify, enabled=False)
    obs = _Log()
    run_optimize(cfg, scene, init, obs, share_cpu=True)
    assert seen == [1] * 12
    assert any("12 of 12 steps ran on fewer than 2 threads" in line for line in obs.lines), obs.lines
    assert (torch.get_num_threads(), numba.get_num_threads()) == before
    seen.clear()
    run_optimize(cfg, scene, init, obs, share_cpu=False)
    assert seen == []
