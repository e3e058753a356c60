"""The filters' benchmark: `recon eval` on a scene's few training views, clean and corrupted
(scripts/corrupt.py, test views kept clean), with the filters off, auto (the default) and on.

    python scripts/bench_filters.py                        # fern and DTU scan37, every corruption
    python scripts/bench_filters.py --scene llff:../shared/data/llff_fern --kinds people mix
    python scripts/bench_filters.py --scene holdout:../shared/data/lund_door:4 --kinds   # clean only

Each scene gets a row for its clean photos and one per corruption kind, with the protocol's PSNR
(DTU: inside its object masks, as published) for filters off / auto / on, what auto switched on
(read from the run's log) and each eval's seconds. A condition whose results.json is already in
--work is read, not rerun (the corrupted copies are deterministic in --seed). The table is printed
and its rows replace the same (scene, photos) rows in docs/benchmarks.md's `filters` section
(scripts/bench_doc.py), unless --no-docs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from corrupt import KINDS, corrupt_dataset  # noqa: E402

MODES = ("off", "auto", "on")
SCENES = ("llff:../shared/data/llff_fern", "dtu:../shared/data/dtu_scan37")
HEADER = ("| scene | photos | off | auto | on | auto − clean off | auto switched on | eval s off / auto / on | date |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- |")


def run_eval(args, protocol: str, views: int, data: Path, out: Path, mode: str) -> dict:
    """One `recon eval` (skipped when out/results.json exists) → its scene's row, with what the
    filters' auto mode switched on."""
    done = out / "results.json"
    if not done.exists():
        cmd = ["recon", "eval", "--protocol", protocol, "--data", str(data), "--views", str(views),
               "--preset", args.preset, "--out", str(out), "--config.filters.mode", mode]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    row = dict(next(iter(json.loads(done.read_text())["scenes"].values())))
    log = next(out.glob("*/eval.log"), None)
    row["switched"] = switched(log.read_text() if log else "")
    return row


def switched(log: str) -> str:
    """What the filters' auto mode switched on, from a run's log ("–" when it did not run)."""
    for line in log.splitlines():
        if "filters auto: nothing to filter" in line:
            return "nothing"
        if "filters auto: found" in line and "switched on: " in line:
            return line.split("switched on: ", 1)[1].strip()
    return "–"


def measure(args, spec: str) -> tuple[str, list[tuple[str, dict[str, dict]]]]:
    """(scene name, [(photos, {mode: row})]) for one PROTOCOL:PATH[:VIEWS], the clean photos first
    (their filters-off splat gives haze its depth: scripts/corrupt.py --depth-from)."""
    protocol, path, *rest = spec.split(":")
    views = int(rest[0]) if rest else args.views
    data = (ROOT / path).resolve() if not Path(path).is_absolute() else Path(path)
    name = data.name
    work = args.work / name
    clean = {m: run_eval(args, protocol, views, data, work / f"clean_{m}", m) for m in MODES}
    rows = [("clean", clean)]
    for kind in args.kinds:
        copy = work / f"data_{kind}" / name  # the scene's own name, so results are named alike
        depth_from = next((work / "clean_off").glob("*/run/splat.ply")) if kind == "haze" else None
        corrupt_dataset(protocol, data, views, kind, args.seed, copy, depth_from=depth_from)
        rows.append((kind, {m: run_eval(args, protocol, views, copy, work / f"{kind}_{m}", m) for m in MODES}))
    return f"{name} ({views} views)", rows


def metric(r: dict) -> float:
    """The protocol's PSNR: masked for DTU (its test views are scored inside the object masks)."""
    return r["psnr_masked"] if r.get("psnr_masked") is not None else r["psnr"]


def table_lines(scene: str, rows: list[tuple[str, dict[str, dict]]]) -> list[str]:
    ref = metric(rows[0][1]["off"])
    today = date.today().isoformat()
    out = []
    for photos, by_mode in rows:
        psnr = " | ".join(f"{metric(by_mode[m]):.2f}" for m in MODES)
        secs = " / ".join(f"{by_mode[m]['seconds']:.0f}" for m in MODES)
        out.append(f"| {scene} | {photos} | {psnr} | {metric(by_mode['auto']) - ref:+.2f} | "
                   f"{by_mode['auto']['switched']} | {secs} | {today} |")
    return out


def section(rows: list[str]) -> str:
    return "\n".join([
        "## Filters", "",
        "- Command: `python scripts/bench_filters.py` (LLFF fern and DTU scan37, 3 views, every kind of "
        "`scripts/corrupt.py`) and `--scene holdout:../shared/data/lund_door:4 --kinds` (clean only): "
        "`recon eval --preset fast --config.filters.mode off|auto|on` on copies whose training views are "
        "corrupted (`scripts/corrupt.py --seed 0`; test views clean; haze by the depth of the clean run's "
        "splat). PSNR of the test views; DTU's inside its object masks, trained on full photos (its "
        "published protocol).",
        f"- Machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores, CPU only; each row's "
        "date is its own.",
        "- The corruptions are recon's own, not the kept-apart set the targets also name.", "",
        HEADER, *rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scene", action="append", help="PROTOCOL:PATH[:VIEWS], repeatable (default: fern and DTU scan37)")
    ap.add_argument("--views", type=int, default=3)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--kinds", nargs="*", default=list(KINDS), choices=KINDS,
                    help="scripts/corrupt.py kinds (none: the clean photos only)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_filters"))
    ap.add_argument("--no-docs", action="store_true", help="print the table, leave docs/benchmarks.md alone")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    lines = []
    for spec in args.scene or SCENES:
        lines += table_lines(*measure(args, spec))
    print(HEADER, *lines, f"({time.perf_counter() - t0:.0f} s)", sep="\n")
    if not args.no_docs:
        from bench_doc import merge_rows, read_section, replace_section, table_rows

        old = table_rows(read_section("filters"), HEADER)
        replace_section("filters", section(merge_rows(old, lines, key=(0, 1))))


if __name__ == "__main__":
    main()
