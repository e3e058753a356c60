"""`recon eval` for one scene: train on the protocol's views, render its test views, score them.

Writes (the contract other tools read):
  OUT/results.json                {"protocol","views","preset","device","scenes":{NAME:{...}},"mean":{...}}
  OUT/NAME/test/VIEW.png          test renders (VIEW = the dataset's 3-digit image index)
  OUT/NAME/run/splat.ply          the trained splat (and the rest of the run folder)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon.cache import atomic_write_json, config_digest
from recon.eval.metrics import Lpips, masked_psnr, psnr, ssim
from recon.eval.protocols import get_protocol
from recon.events import Observer
from recon.pipeline import RunConfig, resolve_device, run_pipeline
from recon.stages.export import render_view, write_png


@dataclass
class SceneScore:
    psnr: float
    psnr_masked: float | None
    ssim: float
    lpips: float | None
    seconds: float
    num_gaussians: int
    train_views: list[int]
    test_views: list[int]


def score_views(renders: dict[int, np.ndarray], scene, test_ids: list[int], masked: bool,
                lpips: Lpips) -> dict[str, float | None]:
    """Mean per-view metrics of `renders` {index: [H,W,3]} against the scene's photos."""
    by_index = {v.index: v for v in scene.views}
    rows = []
    for i in test_ids:
        v, r = by_index[i], renders[i]
        row = {"psnr": psnr(r, v.image), "ssim": ssim(r, v.image), "lpips": lpips(r, v.image)}
        row["psnr_masked"] = masked_psnr(r, v.image, v.mask) if masked and v.mask is not None else None
        rows.append(row)
    return {k: (None if any(r[k] is None for r in rows) else float(np.mean([r[k] for r in rows])))
            for k in ("psnr", "psnr_masked", "ssim", "lpips")}


def evaluate_scene(protocol_name: str, data: Path, n_views: int, cfg: RunConfig, preset: str,
                   out: Path, obs: Observer) -> dict:
    """Train + test one scene under a protocol; writes results.json and returns it."""
    protocol = get_protocol(protocol_name)
    full = protocol.load(Path(data))
    split = protocol.split(full, n_views)
    name = Path(data).resolve().name
    scene_dir = Path(out) / name
    t0 = time.perf_counter()
    train = full.subset(split.train)
    result = run_pipeline(cfg, scene_dir / "run", obs, scene=train,
                          scene_key=config_digest([str(Path(data).resolve()), protocol_name, split.train]))
    gaussians, _ = result.artifacts["optimize"]
    seconds = time.perf_counter() - t0
    device = resolve_device(cfg.device)
    renders = {}
    test = full.subset(split.test)
    for v in test.views:
        renders[v.index] = render_view(gaussians, v.camera, cfg.optimize.backend, device)
        # Scores are computed from the 8-bit PNG a reader would load, so files and numbers agree.
        write_png(scene_dir / "test" / f"{v.index:03d}.png", renders[v.index])
        renders[v.index] = np.round(np.clip(renders[v.index], 0, 1) * 255) / 255
    lpips = Lpips()
    scores = score_views(renders, test, split.test, protocol.masked, lpips)
    entry = SceneScore(psnr=scores["psnr"], psnr_masked=scores["psnr_masked"], ssim=scores["ssim"],
                       lpips=scores["lpips"], seconds=round(seconds, 2), num_gaussians=len(gaussians),
                       train_views=split.train, test_views=split.test)
    results = {"protocol": protocol_name, "views": n_views, "preset": preset, "device": device,
               "scenes": {name: vars(entry)}, "mean": _mean([vars(entry)])}
    if lpips.reason:
        results["notes"] = [lpips.reason]
    atomic_write_json(Path(out) / "results.json", results)
    return results


def _mean(entries: list[dict]) -> dict:
    keys = ("psnr", "psnr_masked", "ssim", "lpips", "seconds", "num_gaussians")
    return {k: (None if any(e[k] is None for e in entries) else float(np.mean([e[k] for e in entries])))
            for k in keys}
