"""The Ray path: a local Ray with 2 worker CPUs runs each (scene, view count) as a task and gets
exactly the metrics a local batch gets; and the hand-back of files from a worker that does not
share the output folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recon.eval.batch import BatchSpec, plan, run_batch, store
from recon.eval.evaluate import TOKEN_FILE, run_job
from test_batch import tiny_cfg
from test_eval_layouts import write_llff


@pytest.fixture(scope="module")
def two_scenes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("llff")
    write_llff(root / "fern")
    write_llff(root / "trex", seed=1)
    return root


def test_ray_with_two_local_workers_gives_the_local_metrics(tmp_path, two_scenes):
    ray = pytest.importorskip("ray", reason='Ray is not installed (pip install "recon[ray]")')

    def spec(out: str, on_ray: bool) -> BatchSpec:
        # timeout: local jobs run in their own processes, as Ray's do (see below).
        return BatchSpec(protocol="llff", data=two_scenes, views=(2,), out=tmp_path / out, cfg=tiny_cfg(),
                         threads=1, ray=() if on_ray else None, timeout=None if on_ray else 600)

    # numba code compiled in a process differs in the last float bits from the same code loaded
    # from numba's disk cache (docs/benchmarks.md, batch evaluation). Ray workers load the cache,
    # so the local side must too: a first batch fills the cache, and the compared local batch runs
    # each job in a fresh process that loads it.
    run_batch(spec("warm-numba-cache", False), say=lambda s: None)
    local = run_batch(spec("local", False), say=lambda s: None)[2]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        assert ray.cluster_resources()["CPU"] == 2
        said: list[str] = []
        remote = run_batch(spec("ray", True), say=said.append)[2]
        assert ray.is_initialized(), "a Ray the caller started is left running"
    finally:
        ray.shutdown()
    assert any("Ray: 2 tasks, 1 CPU(s)" in s for s in said), said
    for name in ("fern", "trex"):
        a, b = local["scenes"][name], remote["scenes"][name]
        assert b["status"] == "ok"
        for key in ("psnr", "ssim", "num_gaussians", "train_views", "test_views"):
            assert a[key] == b[key], (name, key, a[key], b[key])
    assert (tmp_path / "ray" / "fern" / "run" / "splat.ply").is_file()
    assert json.loads((tmp_path / "ray" / "results.json").read_text())["mean"]["psnr"] == local["mean"]["psnr"]


def test_a_worker_without_the_output_folder_sends_the_files_back(tmp_path, two_scenes):
    out = tmp_path / "out"
    s = BatchSpec(protocol="llff", data=two_scenes, views=(2,), out=out, cfg=tiny_cfg(), threads=1,
                  scenes=("fern",))
    [job] = plan(s, token="driver-token")
    out.mkdir()
    (out / TOKEN_FILE).write_text("another-batch")  # what a worker on another machine would (not) see
    result = run_job(job)
    assert not (out / "fern").exists(), "nothing written where the driver's files live"
    assert {"run/splat.ply", "contact.png", "test/000.png", "test/008.png"} <= set(result["files"])
    store(job, result)
    assert (out / "fern" / "test" / "008.png").is_file() and (out / "fern" / "run" / "splat.ply").is_file()
    assert json.loads((out / "fern" / "score.json").read_text())["entry"]["status"] == "ok"
