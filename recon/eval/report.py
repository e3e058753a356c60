"""A batch's human-facing outputs: results.csv, report.md (tables, means, the comparison with
data/published.yaml), plots/*.png and contact sheets of renders above their photos.

Plots use matplotlib's object API (Figure + Agg canvas), so no global pyplot state or display.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import platform
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

import recon
from recon.eval.spec import BatchSpec, mean_entry
from recon.eval.evaluate import Job

PUBLISHED = Path(str(resources.files("recon.data"))) / "published.yaml"
ALL_METRICS = ("psnr", "psnr_masked", "ssim", "ssim_masked", "ssim_box", "lpips", "lpips_masked", "lpips_box")
LABELS = {"psnr": "PSNR", "psnr_masked": "masked PSNR", "ssim": "SSIM", "ssim_masked": "masked SSIM",
          "ssim_box": "box SSIM", "lpips": "LPIPS", "lpips_masked": "masked LPIPS", "lpips_box": "box LPIPS"}
# The holdout protocol's fields on the training views' poses (recon/eval/holdout.py pose_fields).
POSE_FIELDS = ("cameras", "views_posed", "views_given", "rot_err_max_deg", "rot_err_mean_deg", "poses_method")
CSV_COLUMNS = ("protocol", "scene", "views", "train_masks", "status", "standard", *ALL_METRICS, "train_psnr", "seconds",
               "num_gaussians", *POSE_FIELDS, "train_views", "test_views", "error")


def load_published(path: Path = PUBLISHED) -> dict:
    try:
        return yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


def table_rows(jobs: list[Job], records: dict[str, dict]) -> list[dict]:
    rows = []
    for j in jobs:
        if j.scene_dir not in records:
            continue
        e = records[j.scene_dir]["entry"]
        row = {"protocol": j.protocol.name, "scene": j.scene.name, "views": j.n_views, "status": e.get("status"),
               "train_masks": j.train_masks,
               "standard": j.protocol.standard(j.scene.name), "error": e.get("error") or "",
               "seconds": e.get("seconds"), "num_gaussians": e.get("num_gaussians"), "train_psnr": e.get("train_psnr"),
               "train_views": " ".join(map(str, e.get("train_views") or [])),
               "test_views": " ".join(map(str, e.get("test_views") or []))}
        row.update({k: e.get(k) for k in (*ALL_METRICS, *POSE_FIELDS)})
        row["_dir"], row["_compare"] = j.scene_dir, j.protocol.compare
        rows.append(row)
    return rows


def write_report(spec: BatchSpec, jobs: list[Job], records: dict[str, dict], results: dict[int, dict]) -> None:
    out = Path(spec.out)
    rows = table_rows(jobs, records)
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_COLUMNS})
    published = load_published()
    plots = write_plots(out / "plots", rows, published)
    sheets = []
    for n in sorted(results):
        folder = Path(next(j.scene_dir for j in jobs if j.n_views == n)).parent  # where results.json is
        sheet = write_contact_sheet(folder / "contact_sheet.png", [r for r in rows if r["views"] == n])
        sheets += [sheet] if sheet else []
    (out / "report.md").write_text(markdown(spec, rows, results, published, plots, sheets))


def _f(v, digits: int = 2) -> str:
    return "–" if v is None or v == "" else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def markdown(spec: BatchSpec, rows: list[dict], results: dict[int, dict], published: dict,
             plots: list[Path], sheets: list[Path]) -> str:
    import torch

    out = Path(spec.out)
    first = next(iter(results.values()), {})
    lines = ["# recon batch evaluation", "",
             f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
             f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; device {first.get('device')}",
             f"- recon {recon.__version__}, torch {torch.__version__}; preset `{spec.preset}`, "
             f"{spec.cfg.optimize.steps} optimisation steps, {spec.threads} thread(s) per job"
             + (", on Ray" if spec.ray is not None else ", locally"),
             f"- training masks: `{spec.train_masks}`" + {
                 "none": " (full photos, as the published protocols train)",
                 "gt": " (the dataset's object masks: an input the published methods do not use)",
                 "auto": " (u2netp masks refined across the training views: an input the published methods do not use)",
             }.get(spec.train_masks, ""),
             f"- command: `{spec.command}`" if spec.command else "- command: (library call)", ""]
    for protocol in dict.fromkeys(r["protocol"] for r in rows):
        prows = [r for r in rows if r["protocol"] == protocol]
        keys = [k for k in ALL_METRICS if any(r[k] is not None for r in prows)] or ["psnr"]
        poses = any(r["views_given"] is not None for r in prows)
        lines += [f"## {protocol}", "", "| scene | views | " + " | ".join(LABELS[k] for k in keys)
                  + (" | " + " | ".join(POSE_LABELS) if poses else "")
                  + " | seconds | Gaussians | status |", "|" + "---|" * (len(keys) + 5 + poses * len(POSE_LABELS))]
        for r in prows:
            status = r["status"] if r["status"] == "ok" else f"**{r['status']}**: {r['error']}"
            lines.append(f"| {r['scene']}{'' if r['standard'] else ' ¹'} | {r['views']} | "
                         + " | ".join(_f(r[k], 2 if k.startswith('psnr') else 3) for k in keys)
                         + ("".join(f" | {c}" for c in _pose_cells(r)) if poses else "")
                         + f" | {_f(r['seconds'], 0)} | {_f(r['num_gaussians'])} | {status} |")
        for n in sorted({r["views"] for r in prows}):
            group = [r for r in prows if r["views"] == n]
            m = mean_entry(group, tuple(keys))
            ok = sum(r["status"] == "ok" for r in group)
            lines.append(f"| **mean** ({ok} of {len(group)}) | {n} | "
                         + " | ".join(_f(m[k], 2 if k.startswith('psnr') else 3) for k in keys)
                         + " |" * (poses * len(POSE_LABELS))
                         + f" | {_f(m['seconds'], 0)} | {_f(m['num_gaussians'], 0)} | |")
        if not all(r["standard"] for r in prows):
            lines += ["", "¹ not one of the protocol's standard benchmark scenes."]
        lines += [""] + comparison(protocol, prows, published.get(protocol, {}), spec.train_masks)
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines += ["## Failures", ""] + [f"- {r['protocol']}/{r['scene']} at {r['views']} views: {r['status']}: "
                                        f"{r['error']} (log: {Path(r['_dir']).relative_to(out)}/)" for r in failed] + [""]
    if plots:
        lines += ["## Plots", ""] + [f"![{p.stem}]({p.relative_to(out)})" for p in plots] + [""]
    if sheets:
        lines += ["## Renders (top) above photos (bottom)", ""] + [
            f"![{s.parent.name}]({s.relative_to(out)})" for s in sheets] + [""]
    notes = sorted({n for d in results.values() for n in d.get("notes", [])})
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


POSE_LABELS = ("cameras", "views posed", "rotation error max / mean (°)", "posed by")


def _pose_cells(r: dict) -> list[str]:
    """A row's cells under POSE_LABELS."""
    posed = "–" if r["views_given"] is None else f"{_f(r['views_posed'])} of {r['views_given']}"
    return [_f(r["cameras"]), posed, f"{_f(r['rot_err_max_deg'])} / {_f(r['rot_err_mean_deg'])}",
            _f(r["poses_method"])]


def _scene_match(name: str, scene: str) -> bool:
    return name == scene or name.endswith("_" + scene)


def comparison(protocol: str, prows: list[dict], pub: dict, train_masks: str = "none") -> list[str]:
    """The published table for each view count in the run, with recon's mean on top. The
    published methods train on the full photos: with other training masks recon's row says that
    it is not comparable."""
    if not pub:
        return []
    cmp = pub.get("compare", {"psnr": "psnr", "ssim": "ssim", "lpips": "lpips"})
    other_input = train_masks != "none" and any(r.get("train_masks") == train_masks for r in prows)
    lines = [f"### {protocol}: comparison with published numbers", "",
             f"Published numbers are over {pub.get('scenes', 'the standard scenes')}. "
             f"Definition: {pub.get('definition', '').strip()}", ""]
    if other_input:
        lines += [f"The published methods train on the full photos; this run trained with `{train_masks}` "
                  "masks, so its numbers are not comparable with theirs.", ""]
    lines += ["| method | views | PSNR | SSIM | LPIPS | source |", "|---|---|---|---|---|---|"]
    for n in sorted({r["views"] for r in prows}):
        ok = [r for r in prows if r["views"] == n and r["status"] == "ok"]
        std = [r for r in ok if r["standard"]]
        if std:
            m = mean_entry(std, tuple(cmp.values()))
            what = f"recon, this run: mean over {len(std)} standard scene(s)"
            if other_input:
                what += f", trained with {train_masks} masks: not comparable"
        else:
            m = mean_entry(ok, tuple(cmp.values()))
            what = f"recon, this run: {', '.join(r['scene'] for r in ok) or 'no scene'} (not standard scenes: not comparable)"
        lines.append(f"| **{what}** | {n} | " + " | ".join(_f(m[cmp[k]], 2 if k == 'psnr' else 3)
                                                            for k in ("psnr", "ssim", "lpips")) + " | |")
        for meth in pub.get("methods", []):
            vals = (meth.get("views") or {}).get(n)
            if not vals:
                continue
            name = meth["name"]
            if meth.get("scene"):
                mine = [r for r in ok if _scene_match(r["scene"], meth["scene"])]
                if not mine:
                    continue
                name += f" (recon here: {_f(mine[0][cmp['psnr']])} dB)"
            src = meth.get("source", "") + (f" <{meth['url']}>" if meth.get("url") else "")
            lines.append(f"| {name} | {n} | " + " | ".join(_f(vals.get(k), 2 if k == 'psnr' else 3)
                                                           for k in ("psnr", "ssim", "lpips")) + f" | {src} |")
    return lines + [""]


def _save(fig, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def write_plots(folder: Path, rows: list[dict], published: dict) -> list[Path]:
    """Per protocol: bars per scene (one per view count) of its headline PSNR and SSIM; and PSNR
    against the number of views (a line per scene, the mean, and published means)."""
    from matplotlib.figure import Figure

    ok = [r for r in rows if r["status"] == "ok"]
    protocols = list(dict.fromkeys(r["protocol"] for r in ok))
    paths = []
    for protocol in protocols:
        prows = [r for r in ok if r["protocol"] == protocol]
        cmp = prows[0]["_compare"]
        scenes = list(dict.fromkeys(r["scene"] for r in prows))
        counts = sorted({r["views"] for r in prows})
        fig = Figure(figsize=(max(5.0, 1.2 * len(scenes) + 2) + 1.5, 6.5), layout="constrained")
        for ax, metric in zip(fig.subplots(2, 1), (cmp["psnr"], cmp["ssim"])):
            width = 0.8 / len(counts)
            for k, n in enumerate(counts):
                vals = [next((r[metric] for r in prows if r["scene"] == s and r["views"] == n), None) for s in scenes]
                xs = np.arange(len(scenes)) + (k - (len(counts) - 1) / 2) * width
                bars = ax.bar(xs, [np.nan if v is None else v for v in vals], width, label=f"{n} views")
                ax.bar_label(bars, fmt="%.2f" if metric.startswith("psnr") else "%.3f", fontsize=7)
            ax.set_xticks(np.arange(len(scenes)), scenes, rotation=20 if len(scenes) > 4 else 0)
            ax.set_ylabel(LABELS[metric])
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.suptitle(f"{protocol}: per scene")
        paths.append(_save(fig, folder / f"{protocol}_by_scene.png"))
    if protocols:
        fig = Figure(figsize=(8.5, 3.8 * len(protocols)), layout="constrained")
        axes = np.atleast_1d(fig.subplots(len(protocols), 1))
        for ax, protocol in zip(axes, protocols):
            prows = [r for r in ok if r["protocol"] == protocol]
            metric = prows[0]["_compare"]["psnr"]
            for s in dict.fromkeys(r["scene"] for r in prows):
                pts = sorted((r["views"], r[metric]) for r in prows if r["scene"] == s and r[metric] is not None)
                if pts:
                    ax.plot(*zip(*pts), "o-", alpha=0.8, zorder=2, label=s)
            counts = sorted({r["views"] for r in prows})
            means = [mean_entry([r for r in prows if r["views"] == n], (metric,))[metric] for n in counts]
            ax.plot(counts, [np.nan if m is None else m for m in means], "ks-", lw=2.5, zorder=1,
                    label="recon, mean of this run's scenes")
            for meth in published.get(protocol, {}).get("methods", []):
                pts = sorted((int(n), v["psnr"]) for n, v in (meth.get("views") or {}).items() if "psnr" in v)
                if pts and not meth.get("scene"):
                    ax.plot(*zip(*pts), "--", marker="x", alpha=0.7, label=f"{meth['name']} (published)")
            ax.set_xlabel("training views")
            ax.set_ylabel(f"{LABELS[metric]} (dB)")
            ax.set_xticks(sorted({r["views"] for r in prows} | {3, 6, 9} if protocol in ("dtu", "llff") else counts))
            ax.set_title(f"{protocol}: published means are over the standard scenes")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        paths.append(_save(fig, folder / "psnr_vs_views.png"))
    return paths


def write_contact_sheet(path: Path, rows: list[dict]) -> Path | None:
    """One row per scene: its contact.png strip (test renders above photos), titled."""
    from matplotlib.figure import Figure
    from PIL import Image

    strips = [(r, Path(r["_dir"]) / "contact.png") for r in rows if r["status"] == "ok"]
    strips = [(r, p) for r, p in strips if p.is_file()]
    if not strips:
        return None
    fig = Figure(figsize=(10, 2.6 * len(strips)))
    axes = np.atleast_1d(fig.subplots(len(strips), 1))
    for ax, (r, p) in zip(axes, strips):
        with Image.open(p) as im:
            ax.imshow(np.asarray(im.convert("RGB")))
        score = r[r["_compare"]["psnr"]]
        ax.set_title(f"{r['protocol']}/{r['scene']}, {r['views']} views: {LABELS[r['_compare']['psnr']]} "
                     f"{_f(score)} dB (top: render, bottom: photo)", fontsize=9)
        ax.axis("off")
    return _save(fig, path)
