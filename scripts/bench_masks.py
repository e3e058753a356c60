"""Automatic object masks against ground truth (issue 14): u2netp alone, and refined across the posed
views (recon/masks/refine.py), on every view of DTU scan37 (its IDR masks) and of NeRF-synthetic
lego (its alpha), and on the 3 views a sparse protocol trains on.

    python scripts/bench_masks.py [--no-docs]

IoU per view, then the mean. The datasets' own cameras pose the views (the refinement needs poses).
DTU at 400×300 (the protocol's size), lego at 200×200. Replaces its section of docs/benchmarks.md
(`<!-- bench:masks -->`) unless --no-docs.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"

from recon.io.dtu import read_dtu_idr  # noqa: E402
from recon.io.nerfstudio import read_nerfstudio  # noqa: E402
from recon.masks.refine import refine_masks  # noqa: E402
from recon.masks.saliency import SaliencyModel  # noqa: E402


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def cases():
    dtu = read_dtu_idr(DATA / "dtu_scan37", downscale=4)
    lego = read_nerfstudio(DATA / "nerf_synthetic_lego", max_size=200)
    return [("DTU scan37", dtu, [25, 22, 28]), ("lego (train frames)", lego, [26, 86, 2])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-docs", "--no-append", dest="no_docs", action="store_true",
                    help="print only, do not touch docs/benchmarks.md")
    args = ap.parse_args()
    net = SaliencyModel()
    rows = ["| scene | views | u2netp mean IoU (min) | refined mean IoU (min) | seconds (network + refinement) |",
            "|---|---|---|---|---|"]
    for name, scene, three in cases():
        t = time.perf_counter()
        probs = [net(v.image) for v in scene.views]
        t_net = time.perf_counter() - t
        for label, idx in ((f"all {len(scene)}", list(range(len(scene)))), (f"3 ({'/'.join(map(str, three))})", three)):
            views = [scene.views[i] for i in idx]
            t = time.perf_counter()
            refined, _ = refine_masks([v.camera for v in views], [v.image for v in views], [probs[i] for i in idx])
            t_ref = time.perf_counter() - t
            raw = [iou(probs[i] >= 0.5, scene.views[i].mask) for i in idx]
            ref = [iou(r, v.mask) for r, v in zip(refined, views)]
            share = t_net * len(idx) / len(scene)
            rows.append(f"| {name} | {label} | {np.mean(raw):.3f} ({min(raw):.2f}) | {np.mean(ref):.3f} ({min(ref):.2f}) "
                        f"| {share:.0f} + {t_ref:.0f} |")
            print(rows[-1], flush=True)
    table = "\n".join(rows)
    print(table)
    if not args.no_docs:
        from bench_doc import replace_section

        head = ("## Object masks\n\n"
                "- Command: `python scripts/bench_masks.py`: u2netp alone, then refined across the posed views "
                "(a k-of-n visual hull, a strict hull for the sure foreground, GrabCut); intersection over union "
                "with the datasets' own masks; DTU at 400×300, lego at 200×200; the datasets' cameras\n"
                f"- Machine: {platform.platform()}, {os.cpu_count()} CPU cores; load average {os.getloadavg()[0]:.1f}\n"
                f"- Date: {date.today()}\n\n")
        replace_section("masks", head + table)


if __name__ == "__main__":
    main()
