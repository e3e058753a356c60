"""The stage graph, its artifact cache and the run folder.

    ingest → poses → filters → init → optimize → repair → stylize → export

Every stage is a config dataclass (a field of RunConfig) plus a function from input artifacts to
an output artifact. An artifact's cache key hashes its stage's config and its inputs' keys, so a
rerun recomputes only the stages whose inputs or config changed.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import torch

import recon
from recon.cache import ArtifactStore, atomic_write_json, chain_key, config_digest, files_digest
from recon.errors import ReconError
from recon.events import Observer
from recon.scene import Scene
from recon.stages.export import ExportConfig, run_export
from recon.stages.ingest import IngestConfig, run_ingest
from recon.stages.init import InitConfig, run_init
from recon.stages.optimize import OptimizeConfig, run_optimize
from recon.stages.passthrough import FiltersConfig, RepairConfig, StylizeConfig, pass_through
from recon.stages.poses import PosesConfig, run_poses

StageName = Literal["ingest", "poses", "filters", "init", "optimize", "repair", "stylize", "export"]


@dataclass
class RunConfig:
    """Every stage's settings. Presets (configs/*.yaml) override the defaults; flags override both."""

    ingest: IngestConfig = field(default_factory=IngestConfig)
    poses: PosesConfig = field(default_factory=PosesConfig)
    filters: FiltersConfig = field(default_factory=FiltersConfig)
    init: InitConfig = field(default_factory=InitConfig)
    optimize: OptimizeConfig = field(default_factory=OptimizeConfig)
    repair: RepairConfig = field(default_factory=RepairConfig)
    stylize: StylizeConfig = field(default_factory=StylizeConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to optimise: auto = CUDA when available."""
    share_cpu: bool = True
    """On the CPU, train on fewer threads while other processes keep cores busy (a local browser
    drawing the viewer in software, say): threads that wait for a busy core stall every step.
    Off in `recon eval`, whose numbers must not depend on the machine's load."""


@dataclass
class Context:
    cfg: RunConfig
    run_dir: Path
    device: str
    obs: Observer


@dataclass
class Stage:
    name: StageName
    inputs: tuple[str, ...]
    run: Callable[..., Any]  # (ctx, *input artifacts) -> artifact
    version: int = 1  # bump when the stage's code changes what it produces
    cached: bool = True  # False: cheap or pass-through stages that always run


def _poses(ctx: Context, scene: Scene) -> Scene:
    posed = run_poses(ctx.cfg.poses, scene, ctx.run_dir, ctx.obs)
    ctx.obs.scene_ready(posed)
    return posed


# The whole pipeline on one screen. "source" is the ingested scene the run starts from.
GRAPH: list[Stage] = [
    Stage("ingest", ("source",), lambda ctx, s: s, cached=False),
    Stage("poses", ("ingest",), _poses),
    Stage("filters", ("poses",), lambda ctx, s: pass_through("filters", s, ctx.obs), cached=False),
    Stage("init", ("filters",), lambda ctx, s: run_init(ctx.cfg.init, s, ctx.obs)),
    Stage("optimize", ("filters", "init"),
          lambda ctx, s, g: run_optimize(ctx.cfg.optimize, s, g, ctx.obs, ctx.device,
                                        ctx.cfg.share_cpu)),
    Stage("repair", ("optimize",), lambda ctx, r: pass_through("repair", r, ctx.obs), cached=False),
    Stage("stylize", ("repair",), lambda ctx, r: pass_through("stylize", r, ctx.obs), cached=False),
    Stage("export", ("filters", "stylize"),
          lambda ctx, s, r: run_export(ctx.cfg.export, s, r[0], ctx.run_dir, ctx.obs, ctx.device),
          cached=False),  # always rewrite the deliverables so a deleted file comes back
]
STAGE_NAMES: list[str] = [s.name for s in GRAPH]


@dataclass
class RunResult:
    run_dir: Path
    artifacts: dict[str, Any]
    seconds: dict[str, float]
    cached: dict[str, bool]


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ReconError("--device cuda asked for, but torch sees no CUDA GPU")
    return device


def run_pipeline(
    cfg: RunConfig,
    run_dir: Path,
    obs: Observer,
    *,
    images: Path | None = None,
    scene: Scene | None = None,
    scene_key: str | None = None,
    until: str | None = None,
    force: str | None = None,
) -> RunResult:
    """Run the graph on `images` (a folder) or on an already loaded `scene` (with a `scene_key`
    that identifies it for the cache, e.g. a protocol's split)."""
    for name in (until, force):
        if name is not None and name not in STAGE_NAMES:
            raise ReconError(f"unknown stage '{name}'; stages are: {', '.join(STAGE_NAMES)}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(cfg, run_dir, resolve_device(cfg.device), obs)
    store = ArtifactStore(run_dir)
    if force is not None:
        for name in STAGE_NAMES[STAGE_NAMES.index(force):]:
            store.drop(name)

    obs.stage_started("ingest")
    t0 = time.perf_counter()
    if scene is None:
        if images is None:
            raise ValueError("run_pipeline needs images or scene")
        scene = run_ingest(cfg.ingest, images, obs)
        paths = [p for p in Path(images).rglob("*") if p.is_file()] if Path(images).is_dir() else [Path(images)]
        scene_key = config_digest([files_digest(paths), cfg.ingest])
    artifacts: dict[str, Any] = {"source": scene}
    keys: dict[str, str] = {"source": scene_key or config_digest(scene.source)}
    seconds: dict[str, float] = {}
    cached: dict[str, bool] = {}

    for stage in GRAPH:
        if stage.name != "ingest":
            obs.stage_started(stage.name)
            t0 = time.perf_counter()
        section = getattr(cfg, stage.name, None)
        device_part = ctx.device if stage.name == "optimize" else None
        key = chain_key(stage.name, stage.version, [section, device_part], [keys[i] for i in stage.inputs])
        if stage.cached and store.has(stage.name, key):
            artifacts[stage.name] = store.load(stage.name, key)
            cached[stage.name] = True
        else:
            artifacts[stage.name] = stage.run(ctx, *[artifacts[i] for i in stage.inputs])
            cached[stage.name] = False
            if stage.cached:
                store.save(stage.name, key, artifacts[stage.name])
        keys[stage.name] = key
        seconds[stage.name] = time.perf_counter() - t0
        obs.stage_finished(stage.name, seconds[stage.name], cached[stage.name])
        if stage.name == "init":
            obs.gaussians_updated(artifacts["init"], 0)
        if stage.name == until:
            break

    _write_run_json(run_dir, cfg, ctx.device, seconds, cached, artifacts)
    return RunResult(run_dir, artifacts, seconds, cached)


def _write_run_json(run_dir: Path, cfg: RunConfig, device: str, seconds: dict, cached: dict,
                    artifacts: dict) -> None:
    import gsplat

    summary: dict[str, Any] = {"views": len(artifacts["source"])}
    if "optimize" in artifacts:
        g, log = artifacts["optimize"]
        summary.update(num_gaussians=len(g), final_psnr=log.psnr[-1] if log.psnr else None)
    atomic_write_json(run_dir / "run.json", {
        "recon_version": recon.__version__,
        "versions": {"torch": torch.__version__, "gsplat": gsplat.__version__, "python": platform.python_version()},
        "device": device,
        "machine": platform.platform(),
        "config": cfg,
        "stage_seconds": seconds,
        "stage_cached": cached,
        "summary": summary,
    })


def load_run_json(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "run.json").read_text())
