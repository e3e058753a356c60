"""Batch evaluation: many scenes × view counts under one or more protocols, resumable, locally or
on Ray, with one results.json per view count and a report over all of them.

Output folder (OUT):
  results.json                  one view count: #2's schema {"protocol","views","preset","device",
  views{N}/results.json           "scenes":{NAME:{...}},"mean":{...}}; several: one per count
  [views{N}/]NAME/              the job's scene folder (test/, run/, contact.png, score.json)
  [views{N}/]submission/        SpaRe --submission renders (+ submission.zip)
  results.csv, report.md, plots/*.png, [views{N}/]contact_sheet.png   (recon/eval/report.py)

Resume: each finished job leaves NAME/score.json with its key (Job.key: protocol and its options,
data path, view count, run config, eval version). A later batch skips a job whose score.json has
the same key, status "ok", and its test renders, unless --force. Failed and timed-out jobs are
recorded (status, error) and tried again by the next batch.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from recon.cache import atomic_write_bytes, atomic_write_json, reason
from recon.errors import ReconError
from recon.eval.evaluate import TOKEN_FILE, Job, execute
from recon.eval.protocols import Protocol, SceneRef
from recon.eval.registry import make_protocol
from recon.eval.report import write_report
from recon.eval.spec import BatchSpec, mean_entry
from recon.pipeline import resolve_device

__all__ = ["BatchSpec", "run_batch", "plan", "store", "write_results"]

AUTO_PROTOCOLS = ("dtu", "llff", "blender")


def parse_scene_arg(arg: str) -> tuple[str, tuple[int, ...] | None]:
    """"NAME" or "NAME@3" / "NAME@3,6" (this scene at these view counts only)."""
    name, _, views = arg.partition("@")
    if not views:
        return name, None
    try:
        return name, tuple(int(v) for v in views.split(","))
    except ValueError:
        raise ReconError(f"--scenes {arg}: expected NAME or NAME@VIEWS[,VIEWS] (e.g. fern@3)") from None


def discover(spec: BatchSpec) -> list[tuple[Protocol, SceneRef]]:
    """Every (protocol, scene) found under the data folder."""
    data = Path(spec.data).resolve()
    names = AUTO_PROTOCOLS if spec.protocol == "auto" else (spec.protocol,)
    found = []
    for name in names:
        protocol = make_protocol(name, **(spec.protocol_options if name == spec.protocol else {}))
        found += [(protocol, ref) for ref in protocol.find_scenes(data)]
    if not found:
        raise ReconError(f"no {spec.protocol} scenes found (see `recon eval --help` for the layouts)", data)
    return found


def select(found: list[tuple[Protocol, SceneRef]], scenes: tuple[str, ...]
           ) -> list[tuple[Protocol, SceneRef, tuple[int, ...] | None]]:
    """The --scenes subset (all when empty; "standard" = the protocol's benchmark scenes)."""
    if not scenes:
        return [(p, r, None) for p, r in found]
    chosen = []
    for arg in scenes:
        name, views = parse_scene_arg(arg)
        if name == "standard":
            chosen += [(p, r, views) for p, r in found if p.standard(r.name)]
            continue
        hits = [(p, r) for p, r in found if r.name == name]
        if not hits:
            known = ", ".join(sorted({r.name for _, r in found}))
            raise ReconError(f"--scenes: no scene '{name}' under the data folder (found: {known})")
        chosen += [(p, r, views) for p, r in hits]
    return chosen


def plan(spec: BatchSpec, token: str = "") -> list[Job]:
    """The batch's jobs, in order: scene by scene, view counts ascending."""
    if spec.submission and spec.protocol != "spare":
        raise ReconError("--submission writes SpaRe challenge files: use it with --protocol spare")
    chosen = select(discover(spec), spec.scenes)
    pairs = [(p, r, n) for p, r, views in chosen for n in sorted(set(p.view_counts(r, views or spec.views)))]
    # The layout follows --views too, so `--views 3 6 --scenes fern@3` still writes OUT/views3/.
    counts = sorted({n for _, _, n in pairs} | (set() if spec.protocol == "spare" else set(spec.views)))
    jobs = []
    for protocol, ref, n in pairs:
        base = layout_dir(spec.out, n, counts)
        jobs.append(Job(protocol, ref, n, str(base / ref.name), spec.cfg, threads=spec.threads,
                        train_masks=spec.train_masks,
                        submission_dir=str(base / "submission") if spec.submission else None,
                        token=token, progress=spec.progress))
    names = [(Path(j.scene_dir)) for j in jobs]
    if len(set(names)) != len(names):
        raise ReconError("two scenes of the batch have the same name: evaluate the protocols one at a time")
    return jobs


def layout_dir(out: Path, n_views: int, counts: list[int]) -> Path:
    """OUT with one view count in the batch, OUT/views{N} with several."""
    return Path(out) if len(counts) == 1 else Path(out) / f"views{n_views}"


def load_finished(job: Job, say: Callable[[str], None] | None = None) -> dict | None:
    """The stored record of `job` when it finished with the same key and its renders are there.
    A score.json that is there but unreadable (damaged, not a record) is a miss that `say` hears
    of in one line."""
    path = Path(job.scene_dir) / "score.json"
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or not isinstance(record.get("entry", {}), dict):
            raise ValueError(f"it holds a {type(record).__name__}, not a score record")
    except (OSError, ValueError) as e:  # ValueError: json.JSONDecodeError, UnicodeDecodeError
        if say is not None:
            say(f"  {job.label}: {path} is unreadable ({reason(e)}); evaluating it again")
        return None
    entry = record.get("entry", {})
    if record.get("key") != job.key() or entry.get("status") != "ok":
        return None
    test = Path(job.scene_dir) / "test"
    if any(not (test / f"{i:03d}.png").is_file() for i in entry.get("test_views", [])):
        return None
    return record


def store(job: Job, result: dict) -> dict:
    """Write a job's returned files (remote workers) and its score.json; returns the record."""
    for rel, data in result.get("files", {}).items():
        atomic_write_bytes(Path(job.scene_dir) / rel, data)
    for rel, data in result.get("submission_files", {}).items():
        atomic_write_bytes(Path(job.submission_dir) / rel, data)  # type: ignore[arg-type]
    record = {"key": job.key(), "scene": job.scene.name, "entry": result["entry"],
              "per_view": result.get("per_view", []), "notes": result.get("notes", [])}
    atomic_write_json(Path(job.scene_dir) / "score.json", record)
    if result.get("traceback"):
        Path(job.scene_dir, "error.log").write_text(result["traceback"])
    return record


def run_batch(spec: BatchSpec, say: Callable[[str], None] | None = None) -> dict[int, dict]:
    """Plan, skip what is finished, run the rest, write every output. Returns {views: results.json}."""
    say = say or (lambda text: print(text, file=sys.stderr, flush=True))
    # Absolute, so that Ray workers whose working directory differs still find OUT.
    spec.out = out = Path(spec.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(8)
    (out / TOKEN_FILE).write_text(token)
    if spec.threads is None:  # fixed per job so that local and Ray runs agree (see Job.threads)
        spec.threads = max(1, os.cpu_count() or 1)
    jobs = plan(spec, token)
    records: dict[str, dict] = {}
    todo = []
    for job in jobs:
        record = None if spec.force else load_finished(job, say)
        if record is not None:
            records[job.scene_dir] = record
        else:
            todo.append(job)
    say(f"recon eval: {len(jobs)} jobs, {len(jobs) - len(todo)} already finished, {len(todo)} to run"
        + (" on Ray" if spec.ray is not None and todo else "") + (f" ({spec.preset_reason})" if spec.preset_reason else ""))
    t0 = time.perf_counter()

    def finished(job: Job, result: dict) -> None:
        records[job.scene_dir] = store(job, result)
        e = result["entry"]
        if e["status"] == "ok":
            main = e.get(job.protocol.compare["psnr"])
            say(f"  {job.label}: {job.protocol.compare['psnr']} {_fmt(main)}  SSIM {_fmt(e['ssim'])}  "
                + _extra(job, e) + f"({e['seconds']:.0f} s)")
        else:
            say(f"  {job.label}: {e['status'].upper()}: {e['error']}"
                + (f" (views posed: {e['views_posed']} of {e['views_given']})" if e.get("views_given") else ""))
        write_results(spec, jobs, records)

    if todo and spec.ray is not None:
        from recon.eval.ray_runner import run_on_ray

        run_on_ray(todo, spec.ray, spec.threads, _gpus(spec), spec.timeout, finished, say)
    else:
        for job in todo:
            say(f"  {job.label} ...")
            finished(job, execute(job, spec.timeout))
    results = write_results(spec, jobs, records)
    if spec.submission:
        for folder in sorted({j.submission_dir for j in jobs if j.submission_dir}):
            zip_submission(Path(folder))
    write_report(spec, jobs, records, results)
    say(f"recon eval: done in {time.perf_counter() - t0:.1f} s → {out / 'report.md'}")
    return results


def _gpus(spec: BatchSpec) -> float:
    if spec.gpus_per_task is not None:
        return spec.gpus_per_task
    return 1.0 if spec.cfg.device == "cuda" else 0.0


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _extra(job: Job, e: dict) -> str:
    """The object's PSNR where the headline is the full image's, and the holdout protocol's poses."""
    text = ""
    if job.protocol.compare["psnr"] != "psnr_masked" and e.get("psnr_masked") is not None:
        text += f"masked PSNR {_fmt(e['psnr_masked'])}  "
    if e.get("views_given"):
        text += (f"{e['cameras']} cameras, {e['views_posed']} of {e['views_given']} posed, "
                 f"rotation error ≤ {_fmt(e['rot_err_max_deg'])}°  ")
    return text


def write_results(spec: BatchSpec, jobs: list[Job], records: dict[str, dict]) -> dict[int, dict]:
    """results.json per view count, beside the jobs' scene folders, from the records so far
    (rewritten as jobs finish)."""
    counts = sorted({j.n_views for j in jobs})
    try:
        device = resolve_device(spec.cfg.device)
    except ReconError:
        device = spec.cfg.device
    results = {}
    for n in counts:
        group = [j for j in jobs if j.n_views == n and j.scene_dir in records]
        protocols = sorted({j.protocol.name for j in jobs if j.n_views == n})
        keys = tuple(dict.fromkeys(k for j in group for k in j.protocol.metrics))
        entries = {j.scene.name: records[j.scene_dir]["entry"] for j in group}
        data = {"protocol": "+".join(protocols), "views": n, "preset": spec.preset, "device": device,
                "train_masks": spec.train_masks,
                "scenes": entries, "mean": mean_entry(list(entries.values()), keys or ("psnr",))}
        if len(protocols) > 1:
            data["mean_by_protocol"] = {
                p: mean_entry([records[j.scene_dir]["entry"] for j in group if j.protocol.name == p],
                              next(j.protocol.metrics for j in group if j.protocol.name == p))
                for p in protocols if any(j.protocol.name == p for j in group)}
        failed = sorted(name for name, e in entries.items() if e.get("status") != "ok")
        if failed:
            data["failed"] = failed
        notes = sorted({note for j in group for note in records[j.scene_dir].get("notes", [])})
        if notes:
            data["notes"] = notes
        folder = Path(next(j.scene_dir for j in jobs if j.n_views == n)).parent
        atomic_write_json(folder / "results.json", data)
        results[n] = data
    return results


def zip_submission(folder: Path) -> Path | None:
    """submission.zip beside `folder`'s scene folders, which sit at the archive's root."""
    if not folder.is_dir():
        return None
    target = folder / "submission.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(folder.rglob("*.png")):
            z.write(p, str(p.relative_to(folder)))
    return target
