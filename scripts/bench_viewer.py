"""Issue 6's overhead measurement: optimisation time with and without the live viewer.

    python scripts/bench_viewer.py [--images PHOTOS | --eval-data DATASET] [--preset fast] [--repeats 2]

Runs the pipeline from scratch (fresh run folder, so nothing is cached) in three interleaved
modes: no viewer; `ViewerObserver` with nobody watching (the server side's cost); and
`ViewerObserver` with a headless Chromium (Debian's, via Playwright) connected. It reports the
optimise stage's seconds and Chromium's CPU seconds, split into the page's JavaScript and drawing.
The browser runs on the same machine; without a GPU it renders WebGL in software (SwiftShader),
so its drawing competes with the optimiser (which, with RunConfig.share_cpu, gives it cores:
--no-share-cpu keeps the thread count fixed). Without --images it uses a synthetic scene: an
opaque coloured ball seen by a ring of cameras (200×150). With --eval-data it trains on
the training views `recon eval` would use for that dataset (e.g. DTU scan37's 3 views with their
calibrated poses), so the poses stage does not rerun in every mode.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from recon.events import Observer
from recon.gaussians import Gaussians
from recon.pipeline import run_pipeline
from recon.presets import load_preset
from recon.scene import Camera, Scene, View

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def synthetic_scene(n_views: int = 4, width: int = 200, height: int = 150) -> Scene:
    """A ball of 2,000 coloured Gaussians rendered by recon from a ring of cameras (z up)."""
    from recon.render import rasterize

    rng = np.random.default_rng(0)
    pts = rng.normal(size=(2000, 3))
    pts = pts / np.linalg.norm(pts, axis=1, keepdims=True) * rng.uniform(0.3, 1.0, (2000, 1))
    g = Gaussians.from_points(pts, np.clip(0.5 + 0.5 * pts, 0, 1), sh_degree=0, opacity=0.9, scale=0.06)
    f = 0.5 * width / np.tan(np.radians(50) / 2)
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]])
    views = []
    for i, a in enumerate(np.linspace(0, 2 * np.pi, n_views, endpoint=False)):
        eye = np.array([4 * np.cos(a), 4 * np.sin(a), 1.0])
        z = -eye / np.linalg.norm(eye)
        x = np.cross(z, [0, 0, 1.0])
        x /= np.linalg.norm(x)
        R = np.stack([x, np.cross(z, x), z])
        w2c = np.eye(4)
        w2c[:3, :3], w2c[:3, 3] = R, -R @ eye
        cam = Camera(K, w2c, width, height)
        means, quats, scales, opac = g.activated()
        with torch.no_grad():
            img, _, _ = rasterize(means, quats, scales, opac, g.colors_sh,
                                  torch.tensor(w2c, dtype=torch.float32)[None],
                                  torch.tensor(K, dtype=torch.float32)[None], width, height, sh_degree=0)
        views.append(View(f"view{i:03d}", i, cam, img[0].clamp(0, 1).numpy().astype(np.float32)))
    return Scene(views, source="synthetic ball", meta={"posed": True})


def eval_training_scene(data: Path, n_views: int) -> Scene:
    """The posed training views `recon eval` would train on for this dataset."""
    from recon.eval.registry import detect_protocol, get_protocol

    name = detect_protocol(data)
    if name is None:
        sys.exit(f"{data}: not a dataset recon eval recognises")
    protocol = get_protocol(name)
    scenes = protocol.find_scenes(data)
    if not scenes:
        sys.exit(f"{data}: the {name} protocol found no scene")
    return protocol.prepare(scenes[0], n_views).train


def run_once(cfg, scene: Scene | None, images: Path | None, obs: Observer) -> float:
    """Seconds of the optimise stage for one uncached run."""
    with tempfile.TemporaryDirectory() as run_dir:
        if scene is not None:
            result = run_pipeline(cfg, Path(run_dir), obs, scene=scene, scene_key="bench")
        else:
            result = run_pipeline(cfg, Path(run_dir), obs, images=images)
    return result.seconds["optimize"]


def chromium_processes() -> Iterator[tuple[int, bytes]]:
    """(pid, command line) of every chromium process on the machine (from /proc): those whose
    program, not merely an argument, is chromium."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if b"chromium" in Path(cmdline.split(b"\0", 1)[0].decode(errors="replace")).name.encode():
                yield int(entry), cmdline


def chromium_cpu_seconds() -> dict[str, float]:
    """User+system CPU seconds of every chromium process, by process type: "renderer" runs the
    page's JavaScript (websocket decoding, the splat sort), "gpu" draws (WebGL in software here;
    on a GPU machine most of this work leaves the CPU), "other" the rest."""
    total: dict[str, float] = {"renderer": 0.0, "gpu": 0.0, "other": 0.0}
    for pid, cmdline in chromium_processes():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kind = "renderer" if b"--type=renderer" in cmdline else "gpu" if b"--type=gpu" in cmdline else "other"
        total[kind] += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def renice_chromium(nice: int) -> None:
    """Set every chromium process's nice value. Run as root, Chromium raises its GPU process to
    nice -8, above the optimiser; an ordinary user's browser cannot, so --browser-nice 0 measures
    what a user would see."""
    for pid, _ in chromium_processes():
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                os.setpriority(os.PRIO_PROCESS, int(task), nice)
        except OSError:
            continue


def run_with_viewer(cfg, scene: Scene | None, images: Path | None, port: int,
                    viewport: tuple[int, int] | None, browser_nice: int | None = None,
                    interval: float = 0.3, query: str = "") -> tuple[float, int, float, dict[str, float]]:
    """(optimise seconds, splat updates sent, seconds in the viewer's worker, chromium CPU seconds
    by process type during the run) with the viewer on and a browser of that viewport watching
    (None: no browser)."""
    from playwright.sync_api import sync_playwright

    from recon_viewer import ViewerObserver

    with ViewerObserver(port=port, interval=interval) as obs, sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS) if viewport else None
        try:
            if b is not None:
                page = b.new_page(viewport={"width": viewport[0], "height": viewport[1]})
                page.goto(obs.url + query)
                deadline = time.monotonic() + 120
                while not obs.server.get_clients() and time.monotonic() < deadline:
                    time.sleep(0.2)
                if not obs.server.get_clients():
                    raise RuntimeError("the browser did not connect")
                if browser_nice is not None:
                    renice_chromium(browser_nice)
            cpu0 = chromium_cpu_seconds()
            seconds = run_once(cfg, scene, images, obs)
            cpu1 = chromium_cpu_seconds()
            cpu = {k: cpu1[k] - cpu0[k] for k in cpu1}
        finally:
            if b is not None:
                b.close()
        return seconds, obs.pushes, obs.push_seconds, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path, help="a folder of posed photos (default: synthetic scene)")
    ap.add_argument("--eval-data", type=Path,
                    help="a dataset `recon eval` reads (its protocol detected); train on its --views")
    ap.add_argument("--views", type=int, default=3, help="training views with --eval-data")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--steps", type=int, help="override the preset's optimisation steps")
    ap.add_argument("--num-random", type=int, help="override the preset's random init count")
    ap.add_argument("--repeats", type=int, default=2, help="pairs of (without, with) runs")
    ap.add_argument("--port", type=int, default=0, help="viewer port (0: any free one)")
    ap.add_argument("--browser-nice", type=int,
                    help="renice the browser to this (0: an ordinary user's browser; default: as it starts)")
    ap.add_argument("--viewports", default="1024x768",
                    help="browser window sizes to measure, comma-separated WxH (software WebGL "
                         "costs CPU in proportion to the pixels drawn); none: no browser")
    ap.add_argument("--interval", type=float, default=0.3,
                    help="the viewer's shortest time between splat updates, seconds")
    ap.add_argument("--dpr", type=float,
                    help="open the page with viser's ?fixedDpr= (render at this pixel ratio)")
    ap.add_argument("--browser-only", action="store_true",
                    help="measure only the modes with a browser (quick experiments)")
    ap.add_argument("--no-share-cpu", action="store_true",
                    help="keep the optimiser's thread count fixed whatever else runs (RunConfig.share_cpu)")
    args = ap.parse_args()
    query = f"?fixedDpr={args.dpr}" if args.dpr else ""
    if not os.path.exists(CHROMIUM):
        sys.exit(f"{CHROMIUM} is missing: apt-get install chromium")

    cfg = dataclasses.replace(load_preset(args.preset), device="cpu", share_cpu=not args.no_share_cpu)
    if args.steps:
        cfg.optimize.steps = args.steps
    if args.num_random:
        cfg.init.num_random = args.num_random
    if args.eval_data:
        scene = eval_training_scene(args.eval_data, args.views)
    else:
        scene = None if args.images else synthetic_scene()
    warm = dataclasses.replace(cfg, optimize=dataclasses.replace(cfg.optimize, steps=20))
    run_once(warm, scene, args.images, Observer())  # numba compiles its kernels on first use

    viewer_modes = {} if args.browser_only else {"viewer, no browser": None}
    for vp in args.viewports.split(",") if args.viewports != "none" else []:
        w, h = (int(v) for v in vp.split("x"))
        viewer_modes[f"viewer + browser {w}×{h}"] = (w, h)
    modes = {"no viewer": [], **{name: [] for name in viewer_modes}}
    for r in range(args.repeats):  # interleaved, so drift in machine load hits every mode alike
        if not args.browser_only:
            modes["no viewer"].append(run_once(cfg, scene, args.images, Observer()))
            print(f"repeat {r}, no viewer: {modes['no viewer'][-1]:.1f} s", flush=True)
        for name, viewport in viewer_modes.items():
            secs, pushes, push_s, cpu = run_with_viewer(cfg, scene, args.images, args.port, viewport,
                                                        args.browser_nice, args.interval, query)
            modes[name].append(secs)
            print(f"repeat {r}, {name}: {secs:.1f} s ({pushes} updates, {push_s:.2f} s in the viewer's "
                  f"worker; chromium CPU s: {sum(cpu.values()):.1f}, of which page/JS {cpu['renderer']:.1f}, "
                  f"drawing {cpu['gpu']:.1f})", flush=True)

    if args.browser_only:
        del modes["no viewer"]
        base = float("nan")
    else:
        base = statistics.median(modes["no viewer"])
    cpu = platform.processor() or platform.machine()
    cmd = f"python scripts/bench_viewer.py {' '.join(sys.argv[1:])}".strip()
    print(f"\n{datetime.date.today()}, {cpu}, {os.cpu_count()} cores, CPU only; `{cmd}`; "
          f"median optimise seconds of {args.repeats}\n")
    print("| mode | optimise | vs no viewer |")
    print("|---|---|---|")
    for name, values in modes.items():
        m = statistics.median(values)
        print(f"| {name} | {m:.1f} s | {100 * (m - base) / base:+.1f}% |")


if __name__ == "__main__":
    main()
