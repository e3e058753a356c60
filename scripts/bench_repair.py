"""Repair off against on (issue 16): the weights-free reprojection repairer on the fast preset, DTU
scan37 and LLFF fern with 3 views, through the same `recon eval` users run.

    python scripts/bench_repair.py [--work DIR] [--scenes dtu_scan37 llff_fern] [--no-docs]
                                   [-- EXTRA FLAGS FOR THE REPAIR RUN]
    python scripts/bench_repair.py --extra [--work DIR] [--no-docs]

--extra: DTU scan37's other two view triplets and Middlebury temple with 4 views, the scenes of
`scripts/bench_quality.py --extra`, trained through the library as that script does (full photos,
DTU scored inside its masks); off and on share one run folder, so on continues off's cached
optimisation and the two differ by the repair stage alone.

For each scene: `recon eval` with repair off into WORK/SCENE/off; then that folder is copied to
WORK/SCENE/on (unless there) and evaluated again with --config.repair.enabled.
The copy carries the run's stage cache, so the repaired run continues the very splat the off run
scored (the optimise stage's key does not depend on repair) and the two differ by the repair
stage alone. Seconds: the off run's job seconds; for on, the off run's plus the repair stage's
(from its run.json), i.e. what one `recon eval` with repair on takes. An off run already in WORK
is resumed by `recon eval` (its recorded numbers are reused), so the script can be rerun cheaply.
Prints a table and puts its rows in its section of docs/benchmarks.md (`<!-- bench:repair -->`,
the latest row per scene and repair setting) unless --no-docs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SCENES = {"dtu_scan37": "dtu", "llff_fern": "llff"}


def recon_command() -> str:
    beside = Path(sys.executable).parent / "recon"
    return str(beside) if beside.exists() else "recon"


def run_eval(protocol: str, data: Path, out: Path, flags: list[str], run: bool = True) -> tuple[dict, str]:
    """One `recon eval` (fast preset, 3 views, CPU) → (its scene's results.json entry, command).
    run=False reads the results an earlier run of the same command left in `out`."""
    cmd = [recon_command(), "eval", "--protocol", protocol, "--data", str(data), "--views", "3", "--preset", "fast",
           "--device", "cpu", "--out", str(out), *flags]
    if run:
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
        if proc.returncode != 0:
            raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    results = json.loads(next(out.rglob("results.json")).read_text())
    entry = next(iter(results["scenes"].values()))
    if entry.get("status") != "ok":
        raise SystemExit(f"{out}: {entry.get('error')}")
    return entry, " ".join(cmd)


def stage_seconds(out: Path) -> dict:
    run_json = next(out.rglob("run/run.json"))
    data = json.loads(run_json.read_text())
    return data.get("stage_seconds", {}), data.get("summary", {}).get("repair")


def fmt(v: float | None, digits: int) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def bench_scene(name: str, work: Path, extra: list[str], run: bool = True) -> tuple[list[str], str]:
    protocol, data = SCENES[name], DATA / name
    off_dir, on_dir = work / name / "off", work / name / "on"
    off, cmd_off = run_eval(protocol, data, off_dir, [], run)
    if run and not on_dir.exists():
        shutil.copytree(off_dir, on_dir)
    # No --force: the job's key holds its config, so a changed repair setting reruns (from the
    # cached optimisation) and an unchanged one reuses the recorded numbers.
    on, cmd_on = run_eval(protocol, data, on_dir, ["--config.repair.enabled", *extra], run)
    seconds, repair = stage_seconds(on_dir)
    if repair is None:
        raise SystemExit(f"{on_dir}: run.json has no repair summary: repair did not run")
    cached = json.loads(next(on_dir.rglob("run/run.json")).read_text())["stage_cached"].get("optimize")
    if not cached:  # the code changed between the two runs: the on run optimised its own splat
        print(f"{name}: the repair run did not find the off run's optimisation in its cache", file=sys.stderr)
    on_seconds = off["seconds"] + seconds.get("repair", repair["seconds"]) if cached else on["seconds"]
    # The time ratio from stages timed in one process where possible: wall seconds of two runs
    # apart in time differ with the machine's load more than by the repair stage.
    opt = stage_seconds(off_dir)[0]["optimize"] if cached else seconds["optimize"]
    ratio = (opt + seconds.get("repair", repair["seconds"])) / opt
    rows = []
    for label, e, s in (("off", off, off["seconds"]), ("on (reproject)", on, on_seconds)):
        rows.append(f"| {name} | {label} | {fmt(e.get('psnr'), 2)} | {fmt(e.get('psnr_masked'), 2)} | "
                    f"{fmt(e.get('ssim'), 3)} | {fmt(e.get('lpips'), 3)} | {s:.0f} | {'–' if label == 'off' else f'{ratio:.2f}'} | {date.today()} |")
    gain = on["psnr"] - off["psnr"]
    rounds = "; ".join(f"round {i + 1}: confidence {r['confidence']:.2f}, target error {r['error_before']:.4f} → "
                       f"{r['error_after']:.4f}" for i, r in enumerate(repair["rounds"]))
    note = (f"- {name}: {gain:+.2f} dB PSNR, SSIM {on['ssim'] - off['ssim']:+.3f}, time ×{ratio:.2f} of the optimise stage "
            f"(repair stage {seconds.get('repair', repair['seconds']):.0f} s); {rounds}; pictures in "
            f"{on_dir / name / 'run' / 'repair'}\n  - off: `{cmd_off}`\n  - on: `{cmd_on}`")
    return rows, note


def bench_extra(work: Path) -> tuple[list[str], list[str]]:
    """Rows and notes for bench_quality's extra scenes, repair off then on in one run folder."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from bench_quality import extra_scenes, run_library

    rows, notes = [], []
    for name, data, train, test, masked in extra_scenes():
        out = work / name.replace(" ", "_")
        off = run_library(data, train, test, masked, "fast", out, "cpu")
        on = run_library(data, train, test, masked, "fast", out, "cpu", repair=True)
        if not on["stage_cached"].get("optimize"):
            raise SystemExit(f"{out}: the repair run did not reuse the off run's optimisation")
        opt, rep = off["stage_seconds"]["optimize"], on["stage_seconds"]["repair"]
        for label, r, s in (("off", off, off["wall"]), ("on (reproject)", on, off["wall"] + rep)):
            m = r["mean"]
            rows.append(f"| {name} | {label} | {fmt(m['psnr'], 2)} | {fmt(m['psnr_masked'], 2)} | "
                        f"{fmt(m['ssim'], 3)} | – | {s:.0f} | {'–' if label == 'off' else f'{(opt + rep) / opt:.2f}'} | {date.today()} |")
        key = "psnr_masked" if masked else "psnr"
        rounds = "; ".join(f"round {i + 1}: confidence {r.confidence:.2f}, target error {r.error_before:.4f} → "
                           f"{r.error_after:.4f}" for i, r in enumerate(on["repair"].rounds))
        notes.append(f"- {name} (train {train}): {on['mean'][key] - off['mean'][key]:+.2f} dB ({key}), time ×{(opt + rep) / opt:.2f} "
                     f"of the optimise stage (repair stage {rep:.0f} s); {rounds}")
        print(rows[-2] + "\n" + rows[-1], flush=True)
    return rows, notes


HEADER = ("| scene | repair | PSNR | PSNR masked | SSIM | LPIPS | seconds | × optimise | date |\n"
          "|---|---|---|---|---|---|---|---|---|")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_repair"))
    ap.add_argument("--scenes", nargs="+", default=list(SCENES), choices=list(SCENES))
    ap.add_argument("--no-docs", "--no-append", dest="no_docs", action="store_true",
                    help="print only, do not touch docs/benchmarks.md")
    ap.add_argument("--no-run", action="store_true",
                    help="tabulate what earlier runs left in --work (e.g. scenes benchmarked in parallel)")
    ap.add_argument("--extra", dest="extra_scenes", action="store_true",
                    help="DTU scan37's other triplets and Middlebury temple (see the docstring)")
    ap.add_argument("extra", nargs="*", help="flags for the repair run (after --)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    rows = HEADER.splitlines()
    notes = []
    if args.extra_scenes:
        rows_extra, notes = bench_extra(args.work)
        rows += rows_extra
    for name in [] if args.extra_scenes else args.scenes:
        r, n = bench_scene(name, args.work, args.extra, not args.no_run)
        rows += r
        notes.append(n)
        print("\n".join(r), flush=True)
    table = "\n".join(rows) + "\n\n" + "\n".join(notes)
    print(table)
    if not args.no_docs:
        from bench_doc import merge_rows, read_section, replace_section, table_rows

        cmd = "python scripts/bench_repair.py" + (" --extra" if args.extra_scenes else "") + (
            " --no-run" if args.no_run else "") + (
            " -- " + " ".join(args.extra) if args.extra else "")
        merged = merge_rows(table_rows(read_section("repair"), HEADER), rows[2:], key=(0, 1))
        replace_section("repair", "\n".join([
            "## Repair\n",
            "- Command: `python scripts/bench_repair.py` (DTU scan37, LLFF fern) and `python scripts/bench_repair.py "
            "--extra` (DTU scan37's other triplets, Middlebury temple 4 views); fast preset, 3 views, trained on full "
            "photos (DTU scored inside its masks); repair with its defaults (2 rounds × 6 pseudo views, 150 steps "
            "each, weight 0.5); on = off's cached optimisation + the repair stage, so the two differ by the stage "
            "alone. \"× optimise\": (optimise + repair) / optimise seconds, timed in one run.",
            f"- Machine: {platform.platform()}, {os.cpu_count()} CPU cores, device cpu; load average {load0:.1f} at "
            f"the start, {os.getloadavg()[0]:.1f} at the end of the last run, `{cmd}` ({time.perf_counter() - t0:.0f} "
            "s); each row's date is its own.",
            "- LPIPS: – where its weights are not on disk (never computed with random weights).",
            "", HEADER, *merged, "", "The last run's rounds:", "", *notes]))


if __name__ == "__main__":
    main()
