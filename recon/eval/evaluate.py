"""One evaluation job: train a protocol's views of one scene, render its test views, score them.

A job runs the same way in the batch's own process, in a child process (with a timeout) or in a
Ray worker, so the numbers cannot depend on where it ran: the thread counts are fixed per job, and
the pipeline is seeded by its config.

A job writes into its scene folder (the contract of #2):
  NAME/test/VIEW.png    test renders at the evaluated resolution (VIEW = the dataset's index, 3 digits)
  NAME/run/splat.ply    the trained splat (and the rest of the run folder, with its stage cache)
  NAME/contact.png      a few test renders above their photos, for the batch's contact sheet (and
                        below them the training views' auto masks and the filters' trust maps)
A worker that does not see the batch's output folder (a multi-node Ray cluster without shared
storage) works in a temporary folder and returns those files as bytes for the driver to write.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from recon import interrupt
from recon.cache import config_digest
from recon.eval.metrics import Lpips, masked_psnr, psnr
from recon.eval.protocols import Prepared, Protocol, SceneRef
from recon.errors import ReconError
from recon.events import Observer, Observers
from recon.pipeline import RunConfig, resolve_device, run_pipeline
from recon.stages.optimize import refined_scene
from recon.scene import Scene
from recon.stages.filters import trust_maps

# Bump when a change to the protocols or the scoring makes finished jobs' numbers stale.
EVAL_VERSION = 1
TOKEN_FILE = ".batch-token"


@dataclass
class Job:
    """One (scene, view count) of a batch; picklable, so it can travel to a Ray worker."""

    protocol: Protocol
    scene: SceneRef
    n_views: int
    scene_dir: str
    """OUT[/views{N}]/NAME on the driver's filesystem."""
    cfg: RunConfig
    threads: int | None = None
    """torch/numba threads; fixed so local and Ray runs sum floats in the same order."""
    submission_dir: str | None = None
    """Write challenge-named renders here (SpaRe --submission)."""
    token: str = ""
    """The batch's token, also written to OUT/.batch-token: a worker that reads it there shares
    the driver's filesystem and writes in place."""
    progress: bool = False
    """Show the optimisation progress on the console (local runs)."""
    train_masks: str = "none"
    """none: train on the full photos (the published protocols); gt: with the dataset's masks;
    auto: with u2netp masks refined across the training views (the masks stage)."""

    @property
    def label(self) -> str:
        return f"{self.protocol.name}/{self.scene.name}@{self.n_views}"

    def key(self) -> str:
        """What a finished job's numbers depend on: a job with the same key is not recomputed."""
        return config_digest({
            "eval_version": EVAL_VERSION, "protocol": self.protocol.name, "options": self.protocol.options(),
            "data": str(Path(self.scene.path).resolve()), "scene": self.scene.name, "views": self.n_views,
            "config": self.cfg, "submission": self.submission_dir is not None, "train_masks": self.train_masks,
        })


def _set_threads(n: int | None) -> tuple[int, int] | None:
    """Fix torch's and numba's thread counts; returns the previous ones."""
    if not n:
        return None
    import numba
    import torch

    before = (torch.get_num_threads(), numba.get_num_threads())
    torch.set_num_threads(n)
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    return before


def _restore_threads(before: tuple[int, int] | None) -> None:
    if before is not None:
        import numba
        import torch

        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])


def _shares_filesystem(job: Job) -> bool:
    if not job.token:
        return True  # a direct call (evaluate_scene, tests): no batch folder to check
    for folder in (Path(job.scene_dir).parent, Path(job.scene_dir).parent.parent):
        marker = folder / TOKEN_FILE
        if marker.is_file():
            return marker.read_text().strip() == job.token
    return False


class _PosesWatch(Observer):
    """What a failed job knows of its poses: the stage last started and the posed scene, when the
    poses stage ran (a cached poses stage reports no scene)."""

    def __init__(self) -> None:
        self.stage: str | None = None
        self.posed: Scene | None = None

    def stage_started(self, stage: str) -> None:
        self.stage = stage

    def scene_ready(self, scene: Scene) -> None:
        self.posed = scene

    def fields(self, prep: Prepared, posed: Scene | None) -> dict:
        """The protocol's pose fields for a failure: from the posed scene, views_posed 0 when the
        poses stage (or ingest) failed, none when it is unknown how the poses went."""
        posed = posed if posed is not None else self.posed
        if prep.pose_fields is None or (posed is None and self.stage not in (None, "ingest", "poses")):
            return {}
        return prep.pose_fields(posed)


def error_result(job: Job, status: str, message: str, trace: str = "", fields: dict | None = None) -> dict:
    """The record of a job that failed or timed out (the batch goes on); `fields`: what the job
    knew when it failed (the holdout protocol's pose fields)."""
    entry = {k: None for k in job.protocol.metrics}
    entry.update(protocol=job.protocol.name, views=job.n_views, status=status, error=message,
                 seconds=None, num_gaussians=None, train_views=[], test_views=[], **(fields or {}))
    return {"entry": entry, "per_view": [], "notes": [], "files": {}, "submission_files": {}, "traceback": trace}


def run_job(job: Job, obs: Observer | None = None) -> dict:
    """Run one job and return {"entry", "per_view", "notes", "files", "submission_files"}.
    Exceptions propagate (see `execute` for the isolating wrapper)."""
    shared = _shares_filesystem(job)
    work = Path(job.scene_dir) if shared else Path(tempfile.mkdtemp(prefix="recon-eval-"))
    sub = Path(job.submission_dir) if (shared and job.submission_dir) else work / "_submission"
    before = _set_threads(job.threads)
    try:
        result = _train_and_score(job, work, sub, obs)
    finally:
        _restore_threads(before)
    result["files"], result["submission_files"] = {}, {}
    if not shared:  # ship the deliverables back; the stage cache stays behind
        for rel in ["contact.png", "run/splat.ply", "run/run.json", *sorted(
                str(p.relative_to(work)) for p in (work / "test").glob("*.png"))]:
            if (work / rel).is_file():
                result["files"][rel] = (work / rel).read_bytes()
        if job.submission_dir:
            for p in sorted(sub.rglob("*.png")):
                result["submission_files"][str(p.relative_to(sub))] = p.read_bytes()
        shutil.rmtree(work, ignore_errors=True)
    return result


def _train_and_score(job: Job, work: Path, sub: Path, obs: Observer | None) -> dict:
    from recon.progress import ConsoleProgress, RunLog
    from recon.io.images import write_png
    from recon.render.views import render_view

    observers = Observers([RunLog(work / "eval.log")] + ([ConsoleProgress()] if job.progress else []))
    if obs is not None:
        observers.add(obs)
    t0 = time.perf_counter()
    prep: Prepared = job.protocol.prepare(job.scene, job.n_views)
    train = training_scene(prep.train, job.train_masks)
    key = config_digest([str(Path(job.scene.path).resolve()), job.scene.name, job.protocol.name,
                         job.protocol.options(), prep.split.train, job.train_masks])
    # Fixed threads: a benchmark's numbers must not depend on what else the machine was doing.
    cfg = replace(job.cfg, share_cpu=False)
    # none means none: not even the masks the pipeline makes by itself for photos the orbit path posed.
    masks = {"auto": "auto", "gt": "files", "none": "none"}[job.train_masks]
    cfg = replace(cfg, ingest=replace(cfg.ingest, masks=masks))
    watch, posed = _PosesWatch(), None
    observers.add(watch)
    try:
        result = run_pipeline(cfg, work / "run", observers, scene=train, scene_key=key)
        posed = result.artifacts["poses"]
        # The training cameras the splat was fitted to: refined with it when optimize.camera_refine was on.
        trained_views = refined_scene(posed, result.artifacts["repair"].refined_cameras)
        test_cameras = prep.test_cameras if prep.align is None else prep.align(trained_views)
    except ReconError as e:  # e.g. the poses stage could not pose the views: say how far it got
        e.job_fields = watch.fields(prep, posed)
        raise
    gaussians = result.artifacts["repair"].gaussians  # the optimised splat, repaired when repair is on
    device = resolve_device(job.cfg.device)
    backend = job.cfg.optimize.backend
    lpips = Lpips()
    per_view, renders = [], {}
    for index, cam in sorted(test_cameras.items()):
        img = render_view(gaussians, cam, backend, device)
        write_png(work / "test" / f"{index:03d}.png", img)
        # Score the 8-bit image a reader of the PNG gets, so files and numbers agree.
        renders[index] = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8).astype(np.float32) / 255
        if job.submission_dir:
            name = job.protocol.submission_name(job.scene, index)
            from recon.eval.spare import SUBMISSION_SIZE

            full = img if (cam.width, cam.height) == SUBMISSION_SIZE else render_view(
                gaussians, cam.resized(*SUBMISSION_SIZE), backend, device)
            write_png(sub / name, full)
        if index in prep.gt:
            per_view.append({"view": index, **job.protocol.score(renders[index], prep.gt[index], lpips)})
    seconds = time.perf_counter() - t0
    masked = result.artifacts.get("masks") if job.train_masks == "auto" else None
    trust = trust_maps(result.artifacts["filters"], result.artifacts["optimize"].state)  # None: filters off
    _write_contact(work / "contact.png", renders, prep, masked, trust)
    entry = {k: _mean([r[k] for r in per_view]) for k in job.protocol.metrics}
    # The training views' PSNR beside the novel views': a preset must not trade the one for the other
    # unseen. Inside the mask when training had masks (off it the splat was taught transparency).
    entry["train_psnr"] = _mean([_train_view_psnr(gaussians, v, backend, device) for v in trained_views.views])
    entry.update(protocol=job.protocol.name, views=job.n_views, train_masks=job.train_masks, status="ok", error=None,
                 seconds=round(seconds, 2), num_gaussians=len(gaussians), train_views=prep.split.train,
                 test_views=prep.split.test, scored_views=len(per_view))
    if prep.pose_fields is not None:
        entry.update(prep.pose_fields(posed))
    # Lpips.reason can run on for lines: its first sentence says enough in a report.
    notes = list(prep.notes) + ([lpips.reason.split(". ")[0].rstrip(".") + "."] if lpips.reason else [])
    return {"entry": entry, "per_view": per_view, "notes": notes}


def _train_view_psnr(g, view, backend: str, device: str) -> float:
    from recon.render.views import render_view

    img = np.clip(render_view(g, view.camera, backend, device), 0, 1)
    return psnr(img, view.image) if view.mask is None else masked_psnr(img, view.image, view.mask)


def training_scene(train: Scene, train_masks: str) -> Scene:
    """The training views as `train_masks` says: with the dataset's masks only for gt (auto masks
    are made later, by the masks stage, from the photos alone)."""
    if train_masks not in ("none", "gt", "auto"):
        raise ReconError(f"--train-masks must be none, gt or auto, not {train_masks!r}")
    if train_masks == "gt":
        if not train.has_masks:
            raise ReconError("--train-masks gt: this dataset has no masks for its training views", train.source)
        return train
    return replace(train, views=[replace(v, mask=None) for v in train.views])


def _mean(values: list) -> float | None:
    """Mean over views; None when any view lacks the metric (never a mean of a subset)."""
    if not values or any(v is None for v in values):
        return None
    return float(np.mean(values))


def _write_contact(path: Path, renders: dict[int, np.ndarray], prep: Prepared, masked: Scene | None = None,
                   trust: list[np.ndarray] | None = None, k: int = 3, height: int = 120) -> None:
    """Up to `k` test views, render above photo, scaled to `height` px per image. Below them, one
    row per training view set: with `masked` (automatic masks) the masks tinted in green, with
    `trust` (the filters' trust maps, one per training view) the distrusted pixels tinted red."""
    from recon.io.images import write_png

    ids = [i for i in sorted(renders) if i in prep.gt]
    if not ids:
        return
    picks = [ids[j] for j in sorted({int(round(x)) for x in np.linspace(0, len(ids) - 1, min(k, len(ids)))})]
    grid = _strip([np.concatenate([renders[i], prep.gt[i].image], axis=0) for i in picks], 2 * height)
    rows = []
    if masked is not None and masked.has_masks:
        rows.append([np.where(v.mask[..., None], 0.55 * v.image + 0.45 * np.array([0.1, 0.9, 0.2]), 0.35 * v.image)
                     for v in masked.views])
    if trust is not None:
        red = np.array([0.95, 0.1, 0.1], np.float32)
        rows.append([v.image * t[..., None] + (0.4 * v.image + 0.6 * red) * (1 - t[..., None])
                     for v, t in zip(prep.train.views, trust)])
    for tiles in rows:
        row = _strip(tiles, height)[:, : grid.shape[1]]
        row = np.pad(row, ((4, 0), (0, grid.shape[1] - row.shape[1]), (0, 0)), constant_values=1.0)
        grid = np.concatenate([grid, row], axis=0)
    write_png(path, grid)


def _strip(images: list[np.ndarray], height: int) -> np.ndarray:
    """Images scaled to `height` px, side by side with 4 px white gutters, [height, W, 3]."""
    from PIL import Image

    tiles = []
    for image in images:
        h, w = image.shape[:2]
        im = Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)).resize(
            (max(1, round(w * height / h)), height), Image.BOX)
        tiles += [np.asarray(im, np.float32) / 255, np.ones((height, 4, 3), np.float32)]
    return np.concatenate(tiles[:-1], axis=1)


def execute(job: Job, timeout: float | None = None) -> dict:
    """`run_job` with failure isolation: an exception becomes an error record; with a timeout the
    job runs in a child process that is killed when the time is up."""
    if timeout:
        return _execute_in_child(job, timeout)
    try:
        return run_job(job)
    except Exception as e:  # noqa: BLE001 - any failure of one scene must not stop the batch
        if interrupt.received() is not None:  # a signal, wrapped by numba: stop the batch
            raise
        return error_result(job, "error", _one_line(e), traceback.format_exc(), getattr(e, "job_fields", None))


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}"[:400]


def _child(job: Job, conn) -> None:
    conn.send(execute(job))
    conn.close()


def _execute_in_child(job: Job, timeout: float) -> dict:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # fork would copy torch/numba thread pools in odd states
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(job, child), daemon=True)
    proc.start()
    child.close()
    try:
        if parent.poll(timeout):
            try:
                return parent.recv()
            except EOFError:
                pass
        else:
            return error_result(job, "timeout", f"timed out after {timeout:g} s")
        proc.join(5)
        return error_result(job, "error", f"the job's process died (exit code {proc.exitcode})")
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        parent.close()
