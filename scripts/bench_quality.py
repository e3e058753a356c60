"""Sparse-view quality benchmark (issue 5): the same `recon eval` users run, on DTU scan37 3-view
and LLFF fern 3-view, for each preset and for `vanilla` (every few-view part off) in the same run,
plus an ablation of the fast preset (each part switched off in turn) and the no-tuning checks
(DTU scan37's other view triplets, Middlebury temple with 4 views).

    python scripts/bench_quality.py                          # presets fast + vanilla, both scenes
    python scripts/bench_quality.py --ablation --extra       # + ablation table + other scenes
    python scripts/bench_quality.py --presets quality --device cuda   # on a CUDA machine

Puts its tables in its section of docs/benchmarks.md (`<!-- bench:quality -->`) unless --no-docs:
one table per kind of run, the latest row per run and scene (the rows this run did not measure
stay). Wall seconds on a shared machine are pessimistic; "CPU s" is the child processes' CPU time
(both cores together), which other jobs do not inflate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SCENES = {"dtu_scan37": ("dtu", DATA / "dtu_scan37"), "llff_fern": ("llff", DATA / "llff_fern")}
# Leave-one-out of the fast preset: the flags that switch one of its parts off.
ABLATION = {
    "− stereo seeds": ["--config.init.stereo.no-enabled"],
    "− visual hull seeds": ["--config.init.hull.no-enabled"],
    "− masks (train on full photos)": ["--config.optimize.no-use-masks"],
    "− random background": ["--config.optimize.background", "black"],
    "− pseudo views": ["--config.optimize.regularize.pseudo.every", "0"],
    "− hull alpha in pseudo views": ["--config.optimize.regularize.pseudo.hull-alpha", "0"],
    "− 3D filter": ["--config.optimize.regularize.filter-3d", "0"],
    "− L1 only (SSIM weight 0.2)": ["--config.optimize.ssim-lambda", "0.2"],
    "− growth threshold 5e-4 (gsplat's 2e-4)": ["--config.optimize.densify.grow-grad2d", "0.0002"],
}


# The few-view parts of issue 15, each alone and together, on the fast preset trained on the full
# photos (DTU with --train-masks none, as published). Black background under the DTU rows: the
# random one paints DTU's black backdrop and white table as floaters (docs/benchmarks.md).
R = "--config.optimize.regularize."
BLACK = ["--config.optimize.background", "black"]
DECAY = [R + "opacity-decay.factor", "0.995"]
ANISO = [R + "anisotropy.weight", "1.0"]
FILL = ["--config.init.stereo.fill-stride", "4", "--config.init.stereo.fill-farthest", "0"]
TODAY = DECAY + ANISO + FILL  # the fast preset from the stereo fill until the farthest fill
XFEAT = ["--config.init.matches.enabled", "--config.init.matches.features", "xfeat",
         "--config.init.matches.min-views", "3"]
SIFT = ["--config.init.matches.enabled", "--config.init.matches.min-views", "3"]
NO_STEREO = ["--config.init.stereo.no-enabled"]
FARTHEST = ["--config.init.stereo.fill-farthest", "2"]
NOW = TODAY + FARTHEST  # the fast preset from the farthest fill until the random seeds went behind
# The fast base: the fast preset without opacity decay, the anisotropy term, the stereo fill and the
# hidden random seeds (it now has them on): every PARTS row starts from it, so the table stays what
# it measured.
BEFORE = [R + "opacity-decay.factor", "1.0", R + "anisotropy.weight", "0", "--config.init.stereo.fill-stride", "0",
          "--config.init.stereo.fill-farthest", "0", "--config.init.no-random-hidden"]
PARTS = [  # (scene, row name, flags), in the order they run: the telling ones first
    ("dtu_scan37", "black background", BLACK),
    ("dtu_scan37", "anisotropy 1.0 (needles)", ANISO),
    ("llff_fern", "anisotropy 1.0 (needles)", ANISO),
    ("dtu_scan37", "black + opacity decay 0.995", BLACK + DECAY),
    # Candidates for the fast preset, on its own random background (the masked-training trick)
    ("dtu_scan37", "decay + anisotropy", DECAY + ANISO),
    ("llff_fern", "decay + anisotropy", DECAY + ANISO),
    ("llff_fern", "opacity decay 0.995", DECAY),
    ("dtu_scan37", "fast base (random background)", []),
    ("llff_fern", "fast base", []),
    # Textureless surfaces (DTU's white table) get no stereo seed: seed every 4th such pixel at
    # the nearest confident depth (init.stereo.fill_stride), on today's fast preset.
    ("dtu_scan37", "decay + anisotropy + stereo fill 4", DECAY + ANISO + FILL),
    ("llff_fern", "decay + anisotropy + stereo fill 4", DECAY + ANISO + FILL),
    # Item 6: features triangulated with the known poses, agreed on by a third view, beside the
    # plane sweep and instead of it (today's fast preset otherwise).
    ("dtu_scan37", "today + XFeat triangulated", TODAY + XFEAT),
    ("llff_fern", "today + XFeat triangulated", TODAY + XFEAT),
    ("dtu_scan37", "today + SIFT triangulated", TODAY + SIFT),
    ("llff_fern", "today + SIFT triangulated", TODAY + SIFT),
    ("dtu_scan37", "XFeat triangulated instead of the plane sweep", DECAY + ANISO + NO_STEREO + XFEAT),
    ("llff_fern", "XFeat triangulated instead of the plane sweep", DECAY + ANISO + NO_STEREO + XFEAT),
    # The fill errs backwards: the farthest confident depth within twice the distance to the nearest, not the
    # nearest (a wrong surface behind the true one is hidden in other views, one in front is not).
    ("dtu_scan37", "today, fill at the farthest depth within 2x", TODAY + FARTHEST),
    ("llff_fern", "today, fill at the farthest depth within 2x", TODAY + FARTHEST),
    # With the farthest fill every textureless pixel has a seed: are the random ones still needed,
    # and does a denser fill help?
    ("dtu_scan37", "now, no random seeds", NOW + ["--config.init.num-random", "0"]),
    ("llff_fern", "now, no random seeds", NOW + ["--config.init.num-random", "0"]),
    ("dtu_scan37", "now, random seeds behind the stereo depth (the preset since)", NOW + ["--config.init.random-hidden"]),
    ("llff_fern", "now, random seeds behind the stereo depth (the preset since)", NOW + ["--config.init.random-hidden"]),
    ("dtu_scan37", "now, fill every 2nd pixel", NOW + ["--config.init.stereo.fill-stride", "2"]),
    ("llff_fern", "now, fill every 2nd pixel", NOW + ["--config.init.stereo.fill-stride", "2"]),
    # DropGaussian, binocular consistency and DropoutGS's consistency term (on decay + anisotropy,
    # at the paper's DTU and LLFF settings) and the dark-background alpha term (on a black
    # background, before and on the preset as of the random seeds behind the stereo depth) were
    # measured here too and removed as they lost (docs/experiments.md).
]


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def recon_command() -> str:
    """The `recon` console script of this interpreter's environment (also when it is not on PATH)."""
    beside = Path(sys.executable).parent / "recon"
    return str(beside) if beside.exists() else "recon"


def run_eval(protocol: str, data: Path, preset: str, out: Path, device: str, flags: list[str],
             resume: bool = False) -> dict:
    """One `recon eval` in a child process → its results.json mean, wall and CPU seconds, load.
    resume: no --force, so a job already scored in `out` with the same settings is reused."""
    cmd = [recon_command(), "eval", "--protocol", protocol, "--data", str(data), "--views", "3", "--preset", preset,
           "--out", str(out), "--device", device, *([] if resume else ["--force"]), *flags]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    results = json.loads(next(out.rglob("results.json")).read_text())
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if resume and wall < results["mean"].get("seconds", 0):  # reused: the job's own seconds, its CPU time unknown
        wall, cpu = results["mean"]["seconds"], None
    return {"mean": results["mean"], "wall": wall, "cpu": cpu, "load": os.getloadavg()[0], "cmd": " ".join(cmd)}


def extra_scenes() -> list[tuple[str, Path, list[int], list[int], bool]]:
    """(name, folder, train ids, test ids, masked): DTU scan37 with the protocol's other two view
    triplets (same 25 test views), Middlebury temple with 4 views 90° apart (the other 12 test)."""
    from recon.eval.protocols import DTU_EXCLUDED, DTU_TRAIN

    test = [i for i in range(49) if i not in DTU_TRAIN and i not in DTU_EXCLUDED]
    out = [(f"dtu_scan37 {t}", DATA / "dtu_scan37", t, test, True) for t in ([40, 44, 48], [0, 8, 13])]
    temple = DATA / "middlebury" / "templeSparseRing"
    if temple.exists():
        from recon.io.detect import load_scene

        ids = sorted(v.index for v in load_scene(temple).views)
        train = ring_views(temple, 4)
        out.append(("middlebury temple", temple, train, [i for i in ids if i not in train], False))
    return out


def ring_views(folder: Path, n: int) -> list[int]:
    """Indices of n views about 360°/n apart around a ring of cameras (by azimuth in the ring's
    best-fit plane), starting from the first view."""
    import numpy as np

    from recon.io.detect import load_scene

    views = load_scene(folder).views
    C = np.stack([v.camera.center for v in views])
    _, _, Vt = np.linalg.svd(C - C.mean(0))
    P = (C - C.mean(0)) @ Vt[:2].T
    ang = np.degrees(np.arctan2(P[:, 1], P[:, 0]))
    picks = []
    for k in range(n):
        target = ang[0] + k * 360 / n
        diff = np.abs((ang - target + 180) % 360 - 180)
        picks.append(views[int(np.argmin(diff))].index)
    return picks


def run_library(data: Path, train: list[int], test: list[int], masked: bool, preset: str, out: Path,
                device: str, before: bool = False, repair: bool = False) -> dict:
    """Train with `recon.pipeline.run_pipeline` on chosen views, on the full photos as `recon eval
    --train-masks none` does, and score the test views as it does (8-bit renders, PSNR, masked
    PSNR, SSIM). before: the fast preset as it was before issue 15 (no decay, no anisotropy).
    repair: with the repair stage on (scripts/bench_repair.py); the splat scored is then the
    repaired one, and the result carries the stage seconds and whether optimise came from the cache."""
    import numpy as np

    from recon.eval.metrics import masked_psnr, psnr, ssim
    from recon.events import Observer
    from recon.io.detect import load_scene
    from recon.pipeline import run_pipeline
    from recon.presets import load_preset
    from recon.render.views import render_view

    scene = load_scene(data, downscale=4, with_masks=True) if masked else load_scene(data)
    from recon.eval.evaluate import training_scene

    cfg = load_preset(preset)
    cfg.device = device
    if before:
        cfg.optimize.regularize.opacity_decay.factor, cfg.optimize.regularize.anisotropy.weight = 1.0, 0.0
        cfg.init.stereo.fill_stride, cfg.init.stereo.fill_farthest = 0, 0.0  # fill_farthest needs the fill
    cfg.repair.enabled = repair
    t0, c0 = time.perf_counter(), time.process_time()
    result = run_pipeline(cfg, out, Observer(), scene=training_scene(scene.subset(train), "none"),
                          scene_key=f"{data}:{train}")
    g = result.artifacts["repair"].gaussians if repair else result.artifacts["optimize"].gaussians
    rows = []
    for v in scene.subset(test).views:
        r = np.round(np.clip(render_view(g, v.camera, cfg.optimize.backend, result_device(cfg)), 0, 1) * 255) / 255
        rows.append((psnr(r, v.image), masked_psnr(r, v.image, v.mask) if masked else None, ssim(r, v.image)))
    mean = {"psnr": float(np.mean([x[0] for x in rows])), "ssim": float(np.mean([x[2] for x in rows])),
            "psnr_masked": float(np.mean([x[1] for x in rows])) if masked else None, "num_gaussians": len(g)}
    return {"mean": mean, "wall": time.perf_counter() - t0, "cpu": time.process_time() - c0,
            "load": os.getloadavg()[0], "stage_seconds": result.seconds, "stage_cached": result.cached,
            "repair": result.artifacts.get("repair") if repair else None}


def result_device(cfg) -> str:
    from recon.pipeline import resolve_device

    return resolve_device(cfg.device)


def fmt(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def row(name: str, scene: str, r: dict) -> str:
    m = r["mean"]
    return (f"| {name} | {scene} | {fmt(m['psnr'])} | {fmt(m.get('psnr_masked'))} | {fmt(m['ssim'], 3)} | "
            f"{int(m['num_gaussians'])} | {r['wall']:.0f} | {fmt(r['cpu'], 0)} | {r['load']:.1f} | "
            f"{date.today().isoformat()} |")


HEADER = ("| run | scene | PSNR | masked PSNR | SSIM | Gaussians | seconds (wall) | CPU s | load | date |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["fast"], help="presets to run beside vanilla")
    ap.add_argument("--scenes", nargs="+", default=list(SCENES), choices=list(SCENES))
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--no-presets", action="store_true", help="skip the presets-against-vanilla table")
    ap.add_argument("--ablation", action="store_true", help="leave-one-out table of the fast preset")
    ap.add_argument("--ablation-parts", nargs="+", default=[],
                    help="only the ablation rows whose name contains one of these words (default: all)")
    ap.add_argument("--ablation-scenes", nargs="+", default=["dtu_scan37"], choices=list(SCENES),
                    help="scenes of the ablation (each row is a whole fast-preset run)")
    ap.add_argument("--parts", action="store_true", help="the few-view parts alone and together on the fast base (PARTS)")
    ap.add_argument("--parts-rows", nargs="+", default=[], help="only the PARTS rows whose name contains one of these")
    ap.add_argument("--resume", action="store_true", help="reuse jobs already scored in --out (no --force)")
    ap.add_argument("--extra", action="store_true", help="DTU scan37 other triplets, Middlebury temple 4 views")
    ap.add_argument("--no-before", action="store_true", help="with --extra: only today's fast preset, not the fast base")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_quality")
    ap.add_argument("--no-docs", "--no-append", dest="no_docs", action="store_true",
                    help="print the tables, do not touch docs/benchmarks.md")
    args = ap.parse_args()

    sections = []
    if not args.no_presets:
        lines = [HEADER]
        for scene in args.scenes:
            protocol, data = SCENES[scene]
            for preset in ["vanilla", *args.presets]:
                r = run_eval(protocol, data, preset, args.out / preset / scene, args.device, [])
                lines.append(row(preset, scene, r))
                print(lines[-1], flush=True)
        sections.append((TITLES["presets"], lines))
    if args.ablation:
        abl = [HEADER]
        for scene in args.ablation_scenes:
            protocol, data = SCENES[scene]
            for name, flags in ABLATION.items():
                if args.ablation_parts and not any(w in name for w in args.ablation_parts):
                    continue
                r = run_eval(protocol, data, "fast", args.out / "ablation" / name.strip("− ").split(" (")[0].replace(" ", "_") / scene,
                             args.device, flags)
                abl.append(row(f"fast {name}", scene, r))
                print(abl[-1], flush=True)
        sections.append((TITLES["ablation"], abl))
    if args.parts:
        rows = [HEADER]
        for scene, name, flags in PARTS:
            if args.parts_rows and not any(w in name for w in args.parts_rows):
                continue
            protocol, data = SCENES[scene]
            r = run_eval(protocol, data, "fast", args.out / "parts" / slug(name) / scene, args.device, BEFORE + flags,
                         args.resume)
            rows.append(row(name, scene, r))
            print(rows[-1], flush=True)
        sections.append((TITLES["parts"], rows))
    if args.extra:
        extra = [HEADER]
        for name, data, train, test, masked in extra_scenes():
            for before in (False,) if args.no_before else (True, False):
                label = "fast base" if before else "fast"
                r = run_library(data, train, test, masked, "fast", args.out / "extra" / slug(label) / name, args.device,
                                before)
                extra.append(row(f"{label}, views {','.join(map(str, train))}", name, r))
                print(extra[-1], flush=True)
        sections.append((TITLES["extra"], extra))
    print("\n\n".join(f"### {title}\n\n" + "\n".join(lines) for title, lines in sections))
    if not args.no_docs:
        from bench_doc import read_section, replace_section

        replace_section("quality", render_report(sections, args, read_section("quality")))


# The section's tables, in the page's order: title, and the line under it.
TITLES = {
    "presets": "Presets against vanilla",
    "extra": "Other views and scenes",
    "ablation": "Ablation: the fast preset with one part switched off",
    "parts": "Few-view parts on the fast base",
}
UNDER = {
    TITLES["presets"]: "`python scripts/bench_quality.py`: `recon eval --views 3 --preset P` on DTU scan37 (trained "
                       "on full photos, scored inside its masks, as published) and LLFF fern.",
    TITLES["extra"]: "`python scripts/bench_quality.py --no-presets --extra`: DTU scan37's other two triplets and the "
                     "Middlebury temple with 4 views 90° apart, trained on full photos in-process (`recon eval` "
                     "has no option to pick training views).",
    TITLES["ablation"]: "`python scripts/bench_quality.py --no-presets --ablation`: each part switched off in turn.",
    TITLES["parts"]: "`python scripts/bench_quality.py --no-presets --parts`: each part on the fast base (the fast "
                     "preset without opacity decay, the anisotropy term, the stereo fill and hidden random seeds), "
                     "trained on full photos.",
}


def render_report(sections: list[tuple[str, list[str]]], args: argparse.Namespace, old: str | None) -> str:
    """The quality section: this run's rows merged into the tables already on the page."""
    from bench_doc import merge_rows, table_rows

    cpu = platform.processor() or platform.machine()
    new = {title: lines[1:] for title, lines in sections}  # without HEADER
    out = ["## Few-view quality\n",
           "- Command: `python scripts/bench_quality.py [--no-presets] [--extra] [--ablation] [--parts]` (each row "
           "is one `recon eval --views 3 --preset P` or its in-process equivalent, flags as named).",
           f"- Machine: {platform.platform()}, {os.cpu_count()} CPU cores ({cpu}), device {args.device}; load "
           f"average {os.getloadavg()[0]:.1f} at the end of the last run (shared cores: wall seconds are "
           "pessimistic); each row's date is its own.", ""]
    for title in TITLES.values():
        rows = merge_rows(table_rows(old, HEADER, f"### {title}"), new.get(title, []), key=(0, 1))
        if rows:
            out += [f"### {title}", "", UNDER[title], "", HEADER, *rows, ""]
    return "\n".join(out)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
