"""Benchmark the poses stage on real captures with ground truth.

For each case the selected photos are loaded as an unposed folder (as `recon run --images` would),
the poses stage estimates cameras (method "sfm", allow_partial so that failures still report), and
the estimate is compared with the dataset's cameras, pairwise (no alignment needed): relative
rotation error and relative translation-direction error, mean and max over all pairs of posed views.

    python scripts/bench_poses.py                       # all cases, into docs/benchmarks.md
    python scripts/bench_poses.py --cases dtu3 lund4    # a subset (the other rows on the page stay)
    python scripts/bench_poses.py --no-docs             # print only
    python scripts/bench_poses.py --matchers auto       # what `recon run` does: matching, the object check, the orbit path
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recon.errors import ReconError  # noqa: E402
from recon.events import Observer  # noqa: E402
from recon.io.colmap import read_colmap  # noqa: E402
from recon.io.dtu import read_dtu_idr  # noqa: E402
from recon.io.middlebury import read_middlebury  # noqa: E402
from recon.io.nerfstudio import read_nerfstudio  # noqa: E402
from recon.io.photos import load_photos  # noqa: E402
from recon.poses.metrics import pose_errors  # noqa: E402
from recon.stages.poses import PosesConfig, run_poses  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
DTU_TRAIN = [25, 22, 28, 40, 44, 48, 0, 8, 13]


def _lund(n: int):
    ids = [1, 4, 7, 10] if n == 4 else list(range(1, 13))
    gt = read_colmap(DATA / "lund_door" / "colmap_ground_truth", max_size=64)
    names = {f"DSC_{i:04d}" for i in ids}
    return [v for v in gt.views if v.name in names], gt.meta["image_files"]


def _dtu(n: int):
    gt = read_dtu_idr(DATA / "dtu_scan37", indices=DTU_TRAIN[:n], max_size=64)
    return gt.views, gt.meta["image_files"]


def _dtu_views(ids: list[int]):
    gt = read_dtu_idr(DATA / "dtu_scan37", indices=ids, max_size=64)
    return gt.views, gt.meta["image_files"]


def _temple():
    gt = read_middlebury(DATA / "middlebury" / "templeSparseRing", max_size=64)
    names = {"templeSR0001", "templeSR0005", "templeSR0009", "templeSR0013"}  # 4 views 90° apart
    return [v for v in gt.views if v.name in names], gt.meta["image_files"]


def _squirrel(n: int):
    """n of squirrel_ring's 36 turntable photos (10° apart), as the holdout protocol picks them."""
    from recon.eval.holdout import holdout_split

    gt = read_colmap(DATA / "squirrel_ring", max_size=64)
    return [gt.views[i] for i in holdout_split(n, len(gt)).train], gt.meta["image_files"]


def _squirrel_still(n: int):
    """A turntable with a still background, made from squirrel_ring: each photo's squirrel (its
    black backdrop thresholded away, not u2netp's mask, which the object check itself uses) pasted
    on one fixed photo of lund_door, as if the room stood still while the object turned."""
    from PIL import Image
    from scipy import ndimage

    views, files = _squirrel(n)
    out = Path(tempfile.gettempdir()) / f"bench_poses_still_{n}"
    out.mkdir(exist_ok=True)
    room = Image.open(DATA / "lund_door" / "images" / "DSC_0001.JPG").convert("RGB")
    made = {}
    for v in views:
        made[v.name] = str(out / f"{v.name}.jpg")
        if Path(made[v.name]).exists():
            continue
        photo = np.asarray(Image.open(files[v.name]).convert("RGB"), np.float32) / 255
        bright = ndimage.gaussian_filter(photo.max(-1), 2) > 0.12
        labels, count = ndimage.label(bright)
        biggest = labels == 1 + int(np.argmax(ndimage.sum(bright, labels, range(1, count + 1))))
        alpha = ndimage.gaussian_filter(ndimage.binary_fill_holes(biggest).astype(np.float32), 1)[..., None]
        back = np.asarray(room.resize(photo.shape[1::-1]), np.float32) / 255
        Image.fromarray(np.uint8(255 * (alpha * photo + (1 - alpha) * back) + 0.5)).save(made[v.name], quality=95)
    return views, made


def _sacre():
    """10 tourist photos without ground truth: only how many register."""
    folder = DATA / "sacre_coeur_crowds" / "images"
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    from recon.scene import Camera, View

    views = [View(p.stem, i, Camera(np.eye(3), np.eye(4), 1, 1), np.zeros((1, 1, 3), np.float32))
             for i, p in enumerate(files)]
    return views, {p.stem: str(p) for p in files}


def _fox(n: int):
    gt = read_nerfstudio(DATA / "instant_ngp_fox", max_size=32)
    picks = np.round(np.linspace(0, len(gt) - 1, n)).astype(int)  # evenly spread over the sweep
    views = [gt.views[i] for i in picks]
    return views, gt.meta["image_files"]


CASES = {
    "lund4": ("lund_door, 4 views (DSC 1/4/7/10)", lambda: _lund(4)),
    "lund12": ("lund_door, 12 views", lambda: _lund(12)),
    "dtu3": ("DTU scan37, 3 views (25/22/28)", lambda: _dtu(3)),
    "dtu3b": ("DTU scan37, 3 views (40/44/48)", lambda: _dtu_views([40, 44, 48])),
    "dtu3c": ("DTU scan37, 3 views (0/8/13)", lambda: _dtu_views([0, 8, 13])),
    "dtu6": ("DTU scan37, 6 views", lambda: _dtu(6)),
    "dtu9": ("DTU scan37, 9 views", lambda: _dtu(9)),
    "fox4": ("fox, 4 views (evenly spaced of 67)", lambda: _fox(4)),
    "fox8": ("fox, 8 views (evenly spaced of 67)", lambda: _fox(8)),
    "temple4": ("Middlebury temple, 4 ring views 90° apart (SR 1/5/9/13)", _temple),
    "squirrel4": ("squirrel_ring, 4 photos 90° apart (0/9/18/27)", lambda: _squirrel(4)),
    "squirrel6": ("squirrel_ring, 6 photos 60° apart", lambda: _squirrel(6)),
    "squirrel8": ("squirrel_ring, 8 photos (every 4th: 40° apart, one gap of 80°)", lambda: _squirrel(8)),
    "squirrel6still": ("squirrel_ring, 6 photos 60° apart, pasted on a still background", lambda: _squirrel_still(6)),
    "sacre10": ("sacre_coeur_crowds, 10 tourist photos (no ground truth)", _sacre),
}


class _Log(Observer):
    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose

    def log(self, message: str) -> None:
        if self.verbose:
            print("   ", message, flush=True)


def run_case(key: str, cfg: PosesConfig, max_size: int, verbose: bool, label: str = "sift") -> dict:
    gt_views, files = CASES[key][1]()
    truth = {v.name: v.camera.world_to_cam for v in gt_views if v.camera.width > 1}  # sacre: none
    with tempfile.TemporaryDirectory(prefix="bench_poses_") as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        for v in gt_views:
            src = Path(files[v.name])
            os.symlink(src, photos / f"{v.name}{src.suffix}")
        t, cpu = time.perf_counter(), time.process_time()
        scene = load_photos(photos, max_size=max_size)
        try:
            out = run_poses(cfg, scene, Path(tmp) / "out", _Log(verbose))
            est = {v.name: v.camera.world_to_cam for v in out.views}
            method = out.meta.get("poses_method", "")
        except ReconError as e:  # fewer than 2 views registered
            est, method = {}, f"failed: {str(e)[:60]}"
        seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    err = pose_errors(est, truth)
    return {"case": CASES[key][0], "matcher": label, "registered": f"{len(est)}/{len(gt_views)}",
            "method": method,
            "errors": err, "seconds": seconds, "cpu": cpu}


def _fmt(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{x:.2f}"


HEADER = ("| case | matcher | posed | path | rot. err. mean / max (°) | transl. dir. err. mean / max (°) | seconds "
          "| CPU s | date |\n|---|---|---|---|---|---|---|---|---|")


def table_lines(rows: list[dict]) -> list[str]:
    day = datetime.date.today().isoformat()
    lines = []
    for r in rows:
        e = r["errors"]
        lines.append(f"| {r['case']} | {r['matcher']} | {r['registered']} | {r['method']} | {_fmt(e.rot_mean)} / "
                     f"{_fmt(e.rot_max)} | {_fmt(e.trans_mean)} / {_fmt(e.trans_max)} | {r['seconds']:.0f} | {r['cpu']:.0f} "
                     f"| {day} |")
    return lines


def table(rows: list[dict]) -> str:
    return "\n".join([HEADER, *table_lines(rows)])


def section(rows: list[str]) -> str:
    """docs/benchmarks.md's poses section around the table's rows (the latest per case and matcher)."""
    return "\n".join([
        "## Poses\n",
        "- Command: `python scripts/bench_poses.py --matchers auto` (what `recon run` does: SIFT, affine SIFT, "
        "XFeat + LighterGlue where SIFT's model is weak, the object check and the orbit path); `--matchers sift "
        "xfeat xfeat+lighterglue` runs each matcher alone; `--cases …` a subset (the other rows stay).",
        f"- Machine: {machine()} (this run's; each row's date is its own).",
        f"- Photos at ≤ 1,600 px, focal from EXIF or a 50° guess (pycolmap {_pycolmap_version()}); errors are "
        "pairwise relative rotation and translation-direction errors against the dataset's cameras, mean / max "
        "over the pairs of posed views; seconds (wall) include loading the photos; CPU s is the process's own "
        "(both cores). \"path\" is what posed them: `sift`, `affine-sift` (SIFT's retry with affine shape), "
        "`learned` (XFeat + LighterGlue) or `orbit` (an orbit fitted to the object's silhouettes).",
        "", HEADER, *rows])


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.machine()} Linux, {os.cpu_count()} CPU cores, no GPU, Python {platform.python_version()}; "
            f"load average {load:.1f} at the end (the cores are shared, so seconds are pessimistic)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--max-size", type=int, default=1600, help="ingest's longest image side (its default)")
    ap.add_argument("--features", default="auto", choices=["auto", "sift", "affine-sift"])
    ap.add_argument("--matchers", nargs="*", default=["sift"], choices=["sift", "xfeat", "xfeat+lighterglue", "auto"],
                    help="sift: the weights-free path; xfeat*: the packaged learned matchers alone (method learned); "
                         "auto: what `recon run` does (both, the stage's choice)")
    ap.add_argument("--no-docs", "--no-append", dest="no_docs", action="store_true",
                    help="print the table, do not touch docs/benchmarks.md")
    ap.add_argument("-v", "--verbose", action="store_true", help="print the stage's log")
    args = ap.parse_args()
    os.environ.setdefault("GLOG_minloglevel", "2")
    rows = []
    for key in args.cases:
        for matcher in args.matchers:
            cfg = (PosesConfig(method="sfm", allow_partial=True, features=args.features, matcher="sift")
                   if matcher == "sift"
                   else PosesConfig(method="auto", allow_partial=True, features=args.features) if matcher == "auto"
                   else PosesConfig(method="learned", allow_partial=True, matcher=matcher))
            print(f"== {CASES[key][0]}, {matcher}", flush=True)
            rows.append(run_case(key, cfg, args.max_size, args.verbose, matcher))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    text = table(rows)
    print(text)
    if not args.no_docs:
        from bench_doc import DOC, merge_rows, read_section, replace_section, table_rows

        if args.max_size != 1600 or args.features != "auto":
            print("--max-size / --features differ from recon run's: not written to docs/benchmarks.md")
            return
        old = table_rows(read_section("poses"), HEADER)
        replace_section("poses", section(merge_rows(old, table_lines(rows), key=(0, 1))))
        print(f"written to {DOC} (<!-- bench:poses -->)")


def _pycolmap_version() -> str:
    import pycolmap

    return pycolmap.__version__


if __name__ == "__main__":
    main()
