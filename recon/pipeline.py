"""The stage graph, its artifact cache and the run folder.

    ingest → poses → masks → filters → init → optimize → repair → stylize → export

Every stage is a config dataclass (a field of RunConfig) plus a function from input artifacts to
an output artifact. An artifact's cache key hashes its stage's config, its inputs' keys and the
source of its code (recon/code_version.py), so a rerun recomputes only the stages whose inputs,
config or code changed. A cached artifact that cannot be read (truncated, garbage, of the wrong
type) is a cache miss: one line names it and the stage recomputes it. A stage that is interrupted
raises interrupt.Interrupted; the optimise stage resumes from its checkpoint on the next run.
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
from recon import interrupt
from recon.cache import (ArtifactStore, Unreadable, atomic_write_json, chain_key, config_digest, files_digest,
                         input_files, writable_folder)
from recon.code_version import code_digest
from recon.errors import ReconError
from recon.estimate import describe
from recon.events import Observer
from recon.gaussians import Gaussians
from recon.scene import Scene
from recon.stages.export import ExportConfig, run_export
from recon.stages.ingest import IngestConfig, run_ingest
from recon.stages.init import InitConfig, check_config as check_init, run_init
from recon.stages.masks import run_masks
from recon.stages.optimize import OptimizeConfig, Trained, refined_scene, run_optimize
from recon.stages.filters import FiltersConfig, check_config as check_filters, run_filters, write_trust_maps
from recon.stages.repair import RepairConfig, check_config as check_repair, pass_through as repair_off, run_repair
from recon.stages.poses import PosesConfig, run_poses
from recon.stages.stylize import StylizeConfig, Stylized, check_config as check_stylize, run_stylize, style_key

StageName = Literal["ingest", "poses", "masks", "filters", "init", "optimize", "repair", "stylize", "export"]


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
    stage_dir: Path | None = None
    """The running stage's cache folder (RUN/cache/STAGE-KEY/), for its checkpoints."""


@dataclass
class Stage:
    name: StageName
    inputs: tuple[str, ...]
    run: Callable[..., Any]  # (ctx, *input artifacts) -> artifact
    code: str = ""
    """The module that does the stage's work: its source and everything it imports key the cache."""
    cached: bool = True  # False: cheap stages that always run
    passthrough: bool | Callable[[RunConfig], bool] = False
    """Hands its first input on, and that input's key with it: True for a stage not built yet, or
    a test of the config for a stage that only sometimes works (stylize without a style image)."""
    key_extra: Callable[[RunConfig], Any] | None = None
    """More that the artifact depends on besides config, code and inputs (the style image's file)."""
    artifact: type | tuple[type, ...] | None = None
    """What the stage returns: a cached file that unpickles to anything else is a cache miss."""

    def passes_through(self, cfg: RunConfig) -> bool:
        return self.passthrough(cfg) if callable(self.passthrough) else self.passthrough


def _poses(ctx: Context, scene: Scene) -> Scene:
    posed = run_poses(ctx.cfg.poses, scene, ctx.run_dir, ctx.obs)
    ctx.obs.scene_ready(posed)
    return posed


def _filters(ctx: Context, scene: Scene) -> Scene:
    if ctx.cfg.filters.mode == "off":
        ctx.obs.log("filters: off (--config.filters.mode auto runs the detectors), the photos pass through")
        return scene
    return run_filters(ctx.cfg.filters, scene, ctx.run_dir, ctx.obs, ctx.device)


def _optimize(ctx: Context, scene: Scene, init):
    trained = run_optimize(ctx.cfg.optimize, scene, init, ctx.obs, ctx.device, ctx.cfg.share_cpu,
                           ctx.stage_dir / CHECKPOINT)
    write_trust_maps(scene, trained.state, ctx.run_dir, ctx.obs)  # nothing unless the filters ran
    return trained


def _repair(ctx: Context, trained, scene: Scene):
    if not ctx.cfg.repair.enabled:
        return repair_off(trained, ctx.run_dir, ctx.obs)
    return run_repair(ctx.cfg.repair, ctx.cfg.optimize, trained, scene, ctx.run_dir, ctx.obs, ctx.device,
                      ctx.cfg.share_cpu)


# The whole pipeline on one screen. "source" is the ingested scene the run starts from.
GRAPH: list[Stage] = [
    Stage("ingest", ("source",), lambda ctx, s: s, "recon.stages.ingest", cached=False),
    Stage("poses", ("ingest",), _poses, "recon.stages.poses", artifact=Scene),
    Stage("masks", ("poses",), lambda ctx, s: run_masks(ctx.cfg.ingest.masks, s, ctx.run_dir, ctx.obs),
          "recon.stages.masks", passthrough=lambda cfg: cfg.ingest.masks == "none",
          key_extra=lambda cfg: cfg.ingest.masks, artifact=Scene),
    Stage("filters", ("masks",), _filters, "recon.stages.filters", passthrough=lambda cfg: cfg.filters.mode == "off",
          artifact=Scene),
    Stage("init", ("filters",), lambda ctx, s: run_init(ctx.cfg.init, s, ctx.obs), "recon.stages.init",
          artifact=Gaussians),
    Stage("optimize", ("filters", "init"), _optimize, "recon.stages.optimize", artifact=Trained),
    Stage("repair", ("optimize", "filters"), _repair, "recon.stages.repair",
          passthrough=lambda cfg: not cfg.repair.enabled, artifact=Trained),
    Stage("stylize", ("repair", "filters"),
          lambda ctx, r, s: run_stylize(ctx.cfg.stylize, r, refined_scene(s, r.refined_cameras), ctx.obs, ctx.device),
          "recon.stages.stylize", passthrough=lambda cfg: cfg.stylize.style_image is None,
          key_extra=lambda cfg: style_key(cfg.stylize), artifact=Stylized),
    # export reads the training cameras from the repair stage's artifact (the optimised one when
    # repair is off): refined with the splat when optimize.camera_refine was on.
    Stage("export", ("filters", "stylize", "repair"),
          lambda ctx, s, r, t: run_export(ctx.cfg.export, refined_scene(s, t.refined_cameras), r.gaussians,
                                          ctx.run_dir, ctx.obs, ctx.device, original=getattr(r, "original", None)),
          "recon.stages.export", cached=False),  # always rewrite the deliverables so a deleted file comes back
]
STAGE_NAMES: list[str] = [s.name for s in GRAPH]
CHECKPOINT = "checkpoint.pt"


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
    announce: str | None = None,
    preset: dict[str, str] | None = None,
) -> RunResult:
    """Run the graph on `images` (a folder) or on an already loaded `scene` (with a `scene_key`
    that identifies it for the cache, e.g. a protocol's split). `announce` is said, with the
    time estimate, once the input has been read. `preset` ({"asked": "auto", "resolved": "fast"})
    is recorded in run.json: the settings alone do not say which preset they came from."""
    for name in (until, force):
        if name is not None and name not in STAGE_NAMES:
            raise ReconError(f"unknown stage '{name}'; stages are: {', '.join(STAGE_NAMES)}")
    check_filters(cfg.filters)
    check_init(cfg.init)
    check_repair(cfg.repair)
    check_stylize(cfg.stylize)
    run_dir = writable_folder(Path(run_dir))
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
        scene_key = config_digest([files_digest(input_files(Path(images), skip=run_dir)), cfg.ingest])
    posed = bool(scene.meta.get("posed", False))
    seeds = cfg.init.method == "seeds" or (cfg.init.method == "auto" and posed)  # photos: SfM points under auto
    obs.log("; ".join(filter(None, [announce, describe(scene, cfg.optimize.steps, ctx.device, posed, seeds)])))
    artifacts: dict[str, Any] = {"source": scene}
    keys: dict[str, str] = {"source": scene_key or config_digest(scene.source)}
    seconds, cached = run_stages(GRAPH, ctx, store, artifacts, keys, until, t0)
    write_run_json(run_dir, cfg, ctx.device, seconds, cached, artifacts, keys, preset=preset)
    return RunResult(run_dir, artifacts, seconds, cached)


def run_stages(stages: list[Stage], ctx: Context, store: ArtifactStore, artifacts: dict[str, Any],
               keys: dict[str, str], until: str | None = None, t0: float | None = None
               ) -> tuple[dict[str, float], dict[str, bool]]:
    """Run `stages` in order, each from the cache when it holds its key; `artifacts` and `keys`
    hold their inputs and receive their outputs. t0: when the first stage was started (ingest's
    clock starts before the input is read). → (seconds, cached) per stage."""
    cfg, obs = ctx.cfg, ctx.obs
    seconds: dict[str, float] = {}
    cached: dict[str, bool] = {}
    for stage in stages:
        if t0 is None:
            obs.stage_started(stage.name)
            t0 = time.perf_counter()
        key = stage_key(stage, cfg, ctx.device, [keys[i] for i in stage.inputs])
        cache = stage.cached and not stage.passes_through(cfg)
        hit = cache and store.has(stage.name, key)
        if hit:
            try:
                artifacts[stage.name] = store.load(stage.name, key, stage.artifact)
            except Unreadable as e:  # a damaged run folder: a cache miss, said once; the save below replaces it
                obs.log(f"{stage.name}: the cached artifact {e.path} is unreadable ({e.reason}); "
                        f"recomputing {stage.name}")
                hit = False
        if hit:
            cached[stage.name] = True
        else:
            ctx.stage_dir = store.folder(stage.name, key)
            artifacts[stage.name] = _run_stage(stage, ctx, [artifacts[i] for i in stage.inputs])
            cached[stage.name] = False
            if cache:
                store.save(stage.name, key, artifacts[stage.name])
                (ctx.stage_dir / CHECKPOINT).unlink(missing_ok=True)  # the artifact supersedes it
        keys[stage.name] = key
        seconds[stage.name] = time.perf_counter() - t0
        t0 = None
        obs.stage_finished(stage.name, seconds[stage.name], cached[stage.name])
        if stage.name == "init":
            obs.gaussians_updated(artifacts["init"], 0)
        if stage.name == until:
            break
    return seconds, cached


def stage_key(stage: Stage, cfg: RunConfig, device: str, input_keys: list[str]) -> str:
    """The cache key of `stage`'s artifact. A pass-through stage hands its input's key on, so
    settings of stages that are not built yet cannot invalidate the stages after them."""
    if stage.passes_through(cfg):
        return input_keys[0]
    section = getattr(cfg, stage.name, None)
    device_part = device if stage.name == "optimize" else None
    parts = [section, device_part] + ([stage.key_extra(cfg)] if stage.key_extra is not None else [])
    return chain_key(stage.name, code_digest(stage.code), parts, input_keys)


def _run_stage(stage: Stage, ctx: Context, inputs: list[Any]) -> Any:
    """Run one stage; whatever a signal leaves behind (a KeyboardInterrupt, or the SystemError
    numba wraps it in) becomes one interrupt.Interrupted that names the stage."""
    try:
        return stage.run(ctx, *inputs)
    except interrupt.Interrupted:
        raise
    except BaseException as e:
        signum = interrupt.received()
        if signum is None:
            raise
        raise interrupt.Interrupted(signum, f"during {stage.name}") from e


def write_run_json(run_dir: Path, cfg: RunConfig, device: str, seconds: dict, cached: dict,
                   artifacts: dict, keys: dict[str, str], extra: dict[str, Any] | None = None,
                   preset: dict[str, str] | None = None) -> None:
    """RUN/run.json: the preset (what --preset asked and what it resolved to; null when the caller
    named none), config, versions, seconds per stage, the stages' cache keys (`recon stylize`
    finds a run's optimisation by them), a summary, and `extra` fields."""
    import gsplat

    summary: dict[str, Any] = {"views": len(artifacts["source"])} if "source" in artifacts else {}
    posed = artifacts.get("poses")
    if posed is not None and posed.meta.get("poses_method"):
        # Which path posed each view and how much it is trusted (the object check's verdict).
        summary["poses"] = {"method": posed.meta["poses_method"], "check": posed.meta.get("poses_check"),
                            "views": posed.meta.get("registration")}
    if "optimize" in artifacts:
        trained = artifacts["optimize"]
        summary.update(num_gaussians=len(trained.gaussians),
                       final_psnr=trained.log.psnr[-1] if trained.log.psnr else None)
    repaired = artifacts.get("repair")
    if getattr(repaired, "rounds", None) is not None:
        summary["repair"] = {"method": repaired.method, "seconds": repaired.seconds,
                             "rounds": [vars(r) for r in repaired.rounds]}
    stylized = artifacts.get("stylize")
    if getattr(stylized, "original", None) is not None:
        summary["stylize"] = {"method": stylized.method, "style_image": stylized.style_image,
                              "seconds": stylized.seconds}
    atomic_write_json(run_dir / "run.json", {
        "recon_version": recon.__version__,
        "versions": {"torch": torch.__version__, "gsplat": gsplat.__version__, "python": platform.python_version()},
        "device": device,
        "machine": platform.platform(),
        "preset": preset,
        "config": cfg,
        "stage_seconds": seconds,
        "stage_cached": cached,
        "stage_keys": {k: v for k, v in keys.items() if k != "source"},
        "summary": summary,
        **(extra or {}),
    })


def load_run_json(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "run.json").read_text())
