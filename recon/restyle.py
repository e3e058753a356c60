"""`recon stylize RUN --style IMG [--out RUN2]`: stylise a finished run's splat without redoing
anything before the stylize stage.

A run's run.json records each stage's cache key; the stylize stage's inputs (the optimised splat,
the posed scene) are read from RUN/cache/ by those keys, and the stages from stylize on (stylize,
export) run with the new style settings into RUN2 (RUN itself by default), whose run.json points
back at the run that holds the cache (`stylized_from`), so RUN2 can be re-styled in turn.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recon.cache import ArtifactStore, Unreadable, writable_folder
from recon.errors import ReconError
from recon.events import Observer
from recon.pipeline import (GRAPH, STAGE_NAMES, Context, RunConfig, RunResult, Stage, resolve_device, run_stages,
                            write_run_json)
from recon.presets import apply_overrides
from recon.stages.stylize import StylizeConfig, check_config

FIRST = "stylize"


def read_run(run_dir: Path) -> dict:
    """RUN/run.json, or a one-line error saying why RUN is not a run folder recon can re-style."""
    path = Path(run_dir) / "run.json"
    if not Path(run_dir).is_dir():
        raise ReconError("no such run folder", run_dir)
    if not path.is_file():
        raise ReconError("not a run folder (no run.json): make one with `recon run`", run_dir)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReconError(f"cannot read ({e}): run `recon run` again with the same command, it rewrites it",
                         path) from None
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict) \
            or not isinstance(data.get("stage_keys", {}), dict):
        raise ReconError("not a run.json recon wrote (no config or stage keys): run `recon run` again with the "
                         "same command, it rewrites it", path)
    if "optimize" not in data.get("stage_keys", {}):
        raise ReconError("this run has no cached splat to stylise (it stopped before the optimise stage, or an "
                         "older recon made it): run `recon run` again with the same command, it resumes", path)
    return data


def _producer(name: str, keys: dict[str, str]) -> str:
    """The stage whose cached artifact stage `name` handed on: itself, unless it passed through,
    which its key tells (a pass-through stage's key is its first input's). The run's own keys
    decide, not today's reading of its config, which an older recon may have written differently."""
    stage: Stage = GRAPH[STAGE_NAMES.index(name)]
    first = stage.inputs[0]
    if stage.passthrough and keys.get(first) == keys[name]:
        return _producer(first, keys)
    return name


def _stores_with(name: str, keys: dict[str, str], stores: list[ArtifactStore]) -> ArtifactStore:
    """The first store that holds stage `name`'s artifact, or a one-line error."""
    for store in stores:
        if store.has(name, keys[name]):
            return store
    raise ReconError(f"the cached {name} stage is gone (cache/{name}-{keys[name]}/artifact.pkl): "
                     "run `recon run` again with the same command, it resumes", stores[0].root.parent)


@dataclass
class Plan:
    """What `stylize_run` will do, checked before anything is written."""

    run_dir: Path
    data: dict
    cfg: RunConfig
    keys: dict[str, str]
    home: Path
    inputs: dict[str, tuple[str, ArtifactStore]]
    """stage name → (the stage whose cached artifact it is, the store holding it)"""


def plan(run_dir: Path, stylize: StylizeConfig, device: str = "auto") -> Plan:
    """Check RUN and the settings: a one-line error for a folder that is not a finished run, a bad
    style image, a missing extra or a cache that is gone. Only the settings of the stages that run
    (export) are read from run.json: the others' may come from an older recon."""
    run_dir = Path(run_dir)
    data = read_run(run_dir)
    check_config(stylize)
    stages = GRAPH[STAGE_NAMES.index(FIRST):]
    sections = {s.name: data["config"][s.name] for s in stages if s.name != FIRST and s.name in data["config"]}
    cfg = apply_overrides(RunConfig(), sections, str(run_dir / "run.json"))
    cfg = dataclasses.replace(cfg, stylize=stylize, device=device)
    home = Path(data.get("stylized_from", run_dir))  # the run whose cache holds the optimisation
    stores = [ArtifactStore(run_dir)] + ([ArtifactStore(home)] if home.resolve() != run_dir.resolve() else [])
    keys = dict(data["stage_keys"])
    # the stages' inputs from before stylize, and optimize for run.json's summary
    needed = {i for s in stages for i in s.inputs if i in STAGE_NAMES[:STAGE_NAMES.index(FIRST)]} | {"optimize"}
    producers = {name: _producer(name, keys) for name in needed}
    inputs = {name: (p, _stores_with(p, keys, stores)) for name, p in producers.items()}
    return Plan(run_dir, data, cfg, keys, home.resolve(), inputs)


def stylize_run(p: Plan, obs: Observer, out: Path | None = None) -> RunResult:
    """Run the stages from stylize on over the planned run's cached splat into `out` (RUN itself
    by default)."""
    loaded: dict[str, Any] = {}
    for producer, store in p.inputs.values():
        if producer not in loaded:
            try:
                loaded[producer] = store.load(producer, p.keys[producer], GRAPH[STAGE_NAMES.index(producer)].artifact)
            except Unreadable as e:  # only `recon run` can recompute it
                raise ReconError(f"the cached {producer} stage is unreadable ({e.reason}): run `recon run` again "
                                 "with the same command, it recomputes it", e.path) from None
    artifacts = {name: loaded[producer] for name, (producer, _) in p.inputs.items()}
    out = writable_folder(Path(out) if out is not None else p.run_dir)
    ctx = Context(p.cfg, out, resolve_device(p.cfg.device), obs)
    seconds, cached = run_stages(GRAPH[STAGE_NAMES.index(FIRST):], ctx, ArtifactStore(out), artifacts, p.keys)
    config = {**p.data["config"], "stylize": p.cfg.stylize, "export": p.cfg.export, "device": p.cfg.device}
    write_run_json(out, p.cfg, ctx.device, seconds, cached, artifacts, p.keys,
                   extra={"stylized_from": str(p.home), "config": config}, preset=p.data.get("preset"))
    return RunResult(out, artifacts, seconds, cached)
