"""Run a batch's jobs as Ray tasks: one task per (scene, view count).

`--ray` alone starts a local Ray instance (or joins the cluster RAY_ADDRESS names); `--ray ADDRESS`
joins a running cluster ("auto", "ray://head:10001", "head:6379"). If Ray is already initialised
in this process (tests, notebooks) that instance is used as it is.

Each task asks for `threads` CPUs (and `gpus` GPUs) and runs `recon.eval.evaluate.execute`, the
function a local batch runs, with the same thread counts — so a seed gives the same metrics on
Ray as locally. Workers import recon: on a cluster, install it on every node (or pass a Ray
runtime_env). Outputs go straight to OUT when the workers see it (one machine, shared storage);
otherwise the task sends the renders and the splat back to the driver (see evaluate.run_job).
"""

from __future__ import annotations

from collections.abc import Callable

from recon.errors import ReconError
from recon.eval.evaluate import Job, error_result, execute


def _task(job: Job, timeout: float | None) -> dict:
    return execute(job, timeout)


def run_on_ray(jobs: list[Job], address: tuple[str, ...], threads: int, gpus: float,
               timeout: float | None, finished: Callable[[Job, dict], None],
               say: Callable[[str], None]) -> None:
    """Submit every job, call `finished(job, result)` as each completes (in completion order)."""
    try:
        import ray
    except ImportError:
        raise ReconError('--ray needs Ray: pip install "recon[ray]" (or pip install "ray[default]")') from None
    started = False
    if not ray.is_initialized():
        target = address[0] if address else None
        try:
            ray.init(address=target, include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR", configure_logging=True)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ReconError(f"cannot start or reach Ray at {target or 'a local instance'}: {e}") from None
        started = True
    try:
        # A task that no node can hold would wait forever: refuse it up front.
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        biggest = {r: max((n.get(r, 0) for n in nodes), default=0) for r in ("CPU", "GPU")}
        if threads > biggest["CPU"]:
            raise ReconError(f"each task asks for {threads} CPUs (--threads) but the largest Ray node has "
                             f"{biggest['CPU']:g}")
        if gpus > biggest["GPU"]:
            raise ReconError(f"each task asks for {gpus:g} GPU(s) but the largest Ray node has {biggest['GPU']:g} "
                             "(--gpus-per-task 0, or --device cpu)")
        cpus = ray.cluster_resources().get("CPU", 0)
        remote = ray.remote(num_cpus=threads, num_gpus=gpus, max_retries=0)(_task)
        pending = {remote.remote(job, timeout): job for job in jobs}
        say(f"  Ray: {len(pending)} tasks, {threads} CPU(s) and {gpus:g} GPU(s) each, cluster CPUs {cpus:g}")
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                job = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - a crashed worker fails its job, not the batch
                    result = error_result(job, "error", f"Ray task failed: {type(e).__name__}: "
                                          f"{str(e).strip().splitlines()[-1][:300] if str(e).strip() else ''}")
                finished(job, result)
    finally:
        if started:
            ray.shutdown()
