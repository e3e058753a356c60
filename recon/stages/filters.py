"""filters: photos with people, cars, rain, snow, haze or lens drops still give a clean splat.

The stage looks at the posed training views and hands the optimisation a `FilterPlan`
(recon/train/parts/filter_plan.py) in scene.meta["filters"]; the Trainer builds its parts from it:
- rain and snow: thin bright streaks and round flakes found in each photo (recon/filters/weather.py)
  get trust 0 in that view's prior trust map;
- occluders, before training: pixels no other photo shows at any depth along their ray get low
  trust (recon/filters/consistency.py), and a learned segmenter from disk, when one is named,
  gives its classes (person, car, …) trust 0 (recon/filters/learned.py);
- transients and fixed-in-image defects: robust per-pixel weights from the residuals as training
  goes, confirmed by the other views (recon/filters/robust.py, parts/robust.py);
- haze: an atmosphere (airlight A, extinction β, t = exp(−β·depth)) started from the dark-channel
  estimate (recon/filters/haze.py) and learned with the splat, never baked into it;
- per-photo appearance (opt-in): a colour map per view, learned and kept out of the splat.
After the optimisation, `write_trust_maps` draws RUN/filters/VIEW.png (photo | trust | removed).
Every setting is honoured or refused (`check_config`): none is accepted and ignored.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Literal

import numpy as np

from recon.errors import ReconError
from recon.hub import locate
from recon.events import Observer
from recon.filters.consistency import ConsistencyConfig, interior_share, solid_mask, unexplained
from recon.filters.haze import estimate_haze, start_beta
from recon.filters.people import PeopleConfig, people_trust
from recon.filters.learned import LearnedFilter, SegmenterConfig, SegmenterFilter
from recon.filters.weather import WeatherConfig, detect_weather
from recon.scene import Scene
from recon.train.parts.appearance import AppearanceConfig
from recon.train.parts.filter_plan import META_KEY, FilterPlan
from recon.train.parts.haze import HazeConfig, HazeStart
from recon.train.parts.robust import RobustConfig

FOLDER = "filters"
Mode = Literal["auto", "on", "off"]


@dataclass
class FiltersConfig:
    mode: Mode = "auto"
    """auto: cheap detectors run on every photo set (rain streaks, haze, regions no other photo
    explains) and switch on the parts that find something, the log saying which and why; on:
    every part switched on below, found or not; off: the photos go to training as they are."""
    occluder_share: float = 0.01
    """auto: occluders are found when, in some view, this share of the pixels lies in regions no
    other photo explains, away from the frame's edge (clean fern ≤ 0.47%, clean DTU ≤ 0.68%,
    pasted people 1.2–9.4%: `recon/filters/consistency.interior_share`)."""
    transients: bool = True
    """Robust weights from the residuals: what one photo shows and the others do not (people,
    cars, a branch) and what sits at the same pixel of every photo (lens drops, dirt)."""
    photo_consistency: bool = True
    """Before training: pixels that no other photo shows at any depth along their ray (a person
    in one photo) get low trust (recon/filters/consistency.py). Measured: fern with pasted
    occluders 19.04 → 20.78 dB, clean fern −0.06, clean DTU −0.17 (docs/experiments.md)."""
    weather: Mode = "auto"
    """Rain streaks (and, with on, snow flakes) get trust 0: auto = rain streaks in the photos
    where they are detected; on = every streak and flake the detector finds."""
    haze: Mode = "auto"
    """Learn an atmosphere (airlight, β; t = exp(−β·depth)) with the splat and leave it out of
    the output: auto = when the photos' dark channel says hazy."""
    people: Literal["off", "on"] = "off"
    """on: the people OpenCV's built-in pedestrian detector finds, cut out by GrabCut, get trust 0
    (recon/filters/people.py). Off by default: on tourist photos it also takes spires and statues
    for people and finds few of a crowd (docs/benchmarks.md, Filters on tourist photos)."""
    people_fit: PeopleConfig = field(default_factory=PeopleConfig)
    """The detector's score threshold, enlargement and GrabCut rounds (with `people on`)."""
    appearance: bool = False
    """A per-photo colour map (exposure, white balance) learned in training, left out of the splat."""
    robust: RobustConfig = field(default_factory=RobustConfig)
    """The robust weights' schedule and thresholds (with `transients`)."""
    rain: WeatherConfig = field(default_factory=WeatherConfig)
    """The streak and flake detector (with `weather` not off)."""
    haze_fit: HazeConfig = field(default_factory=HazeConfig)
    """The atmosphere's learning (with `haze` not off)."""
    appearance_fit: AppearanceConfig = field(default_factory=AppearanceConfig)
    """The per-photo maps' learning (with `appearance`)."""
    consistency: ConsistencyConfig = field(default_factory=ConsistencyConfig)
    """The plane sweep and threshold of `photo_consistency`."""
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    """A learned person/vehicle segmenter from disk (`segmenter.model`): its classes get trust 0 in
    every view before training (recon/filters/learned.py). Off (None) by default."""


# Sub-settings and the switch without which they would do nothing.
_NEEDS = {"robust": ("transients", lambda c: c.transients), "rain": ("weather", lambda c: c.weather != "off"),
          "haze_fit": ("haze", lambda c: c.haze != "off"), "appearance_fit": ("appearance", lambda c: c.appearance),
          "segmenter": ("segmenter.model", lambda c: c.segmenter.model is not None),
          "people_fit": ("people", lambda c: c.people == "on"),
          "consistency": ("photo-consistency", lambda c: c.photo_consistency)}


def check_config(cfg: FiltersConfig) -> None:
    """One line naming a setting that would do nothing: any filters setting while the stage is
    off, or a sub-setting whose filter is off."""
    default = FiltersConfig()
    changed = [f.name for f in fields(cfg) if f.name != "mode" and getattr(cfg, f.name) != getattr(default, f.name)]
    if cfg.mode == "off" and changed:
        raise ReconError(f"--config.filters.{changed[0].replace('_', '-')}: the filters stage is off, so this "
                         "setting would do nothing; drop --config.filters.mode off")
    if cfg.mode != "auto" and cfg.occluder_share != default.occluder_share:
        raise ReconError("--config.filters.occluder-share: only --config.filters.mode auto decides by it")
    for name in changed:
        if name in _NEEDS and not _NEEDS[name][1](cfg):
            switch = _NEEDS[name][0]
            raise ReconError(f"--config.filters.{name.replace('_', '-')}: --config.filters.{switch} is off, so "
                             "this setting would do nothing")
    if cfg.consistency.neighbours < 1 or cfg.consistency.patch < 1 or cfg.consistency.patch % 2 == 0:
        raise ReconError("--config.filters.consistency: neighbours must be ≥ 1 and patch a positive odd number")
    if cfg.mode != "off" and cfg.people == "on" and importlib.util.find_spec("cv2") is None:
        raise ReconError("--config.filters.people on: needs OpenCV, which is not installed (pip install "
                         "'recon[learned]')")
    if cfg.mode != "off" and cfg.segmenter.model is not None and locate(cfg.segmenter.model) is None:
        # Before the run starts, not after its poses: a model that is not here stops it in one line.
        raise ReconError("--config.filters.segmenter.model: not on this disk (a local folder or a hub id in the "
                         "local Hugging Face cache; nothing is downloaded)", cfg.segmenter.model)


def _weather_trust(cfg: FiltersConfig, scene: Scene, obs: Observer) -> list[np.ndarray | None]:
    """Each view's prior trust map [H,W] (0 on rain streaks and snow flakes), None = 1."""
    if cfg.weather == "off":
        return [None] * len(scene.views)
    trust: list[np.ndarray | None] = []
    found = []
    for v in scene.views:
        w = detect_weather(v.image, cfg.rain)
        # Snow only when asked: small round bright blobs do not tell snow from natural highlights
        # (a clean LLFF fern: 113-142 a view, snowed by scripts/corrupt.py: 158-201), so in auto
        # mode flakes are left to the robust weights (a flake is in one view only).
        mask = (w.rain if (w.rainy or cfg.weather == "on") else False) | (w.snow if cfg.weather == "on" else False)
        if np.any(mask):
            trust.append((~np.asarray(mask)).astype(np.float32))
            found.append(f"{v.name}: {w.streaks} streaks, {w.flakes} flakes, {100 * np.mean(mask):.1f}% masked")
        else:
            trust.append(None)
    said = "; ".join(found) if found else "none found"
    obs.log(f"filters: rain and snow ({cfg.weather}, weights-free detector): {said}")
    return trust


def _haze_plan(cfg: FiltersConfig, scene: Scene, obs: Observer) -> tuple[HazeConfig, HazeStart] | None:
    """The atmosphere's settings and start, or None: dark-channel estimate from the photos, β
    such that a surface at the cameras' median distance from the scene's centre keeps the
    estimated transmission."""
    if cfg.haze == "off":
        return None
    est = estimate_haze([v.image for v in scene.views])
    if cfg.haze == "auto" and not est.hazy:
        obs.log(f"filters: haze auto: the photos look clear (dark-channel level {est.haze_level:.2f}), no haze model")
        return None
    center, _ = scene.bounds()
    depth = float(np.median([np.linalg.norm(c.center - center) for c in scene.cameras]))
    beta = start_beta(est.transmission, depth)
    a = ", ".join(f"{x:.2f}" for x in est.airlight)
    obs.log(f"filters: haze {cfg.haze} (dark-channel level {est.haze_level:.2f}): starting from β = {beta:.3g}, "
            f"airlight ({a}), learned with the splat and left out of it")
    return cfg.haze_fit, HazeStart(beta, est.airlight)


def _unexplained(cfg: ConsistencyConfig, scene: Scene, obs: Observer) -> list[np.ndarray] | None:
    """Each view's `unexplained` score [H,W] with a log line, or None with fewer than two views."""
    from recon.stages.init import depth_range

    if len(scene.views) < 2:
        obs.log("filters: photo consistency needs two views or more; skipped")
        return None
    t0 = time.perf_counter()
    near, far = depth_range(scene)
    maps = unexplained(scene, near, far, cfg)
    said = ", ".join(f"{v.name} {100 * np.mean(m > 0.5):.1f}%" for v, m in zip(scene.views, maps))
    obs.log(f"filters: photo consistency (planes between {near:.3g} and {far:.3g}, {time.perf_counter() - t0:.1f} s): "
            f"no other photo explains {said}")
    return maps


def _times(trust: list[np.ndarray | None], maps: list[np.ndarray | None]) -> list[np.ndarray | None]:
    """`trust` × each view's map, None meaning 1 on either side."""
    return [t if m is None else m if t is None else t * m for t, m in zip(trust, maps)]


def _consistency_trust(cfg: ConsistencyConfig, maps: list[np.ndarray]) -> list[np.ndarray]:
    """Each view's trust [H,W] from its unexplained score: whole regions at 0 (`solid_mask`), or
    1 − the score with `solid` off."""
    if cfg.solid:
        return [(~solid_mask(m, cfg)).astype(np.float32) for m in maps]
    return [(1 - m).astype(np.float32) for m in maps]


def _learned_trust(learned: LearnedFilter, scene: Scene, trust: list[np.ndarray | None],
                   obs: Observer) -> list[np.ndarray | None]:
    """`trust` × the learned filter's map in each view, and a log line saying that it ran."""
    maps = [learned.trust(v.image) for v in scene.views]
    said = ", ".join(f"{v.name} {100 * np.mean(m < 0.5):.1f}%" for v, m in zip(scene.views, maps))
    obs.log(f"filters: learned filter ran: {learned.name}: distrusted {said}")
    return _times(trust, maps)


def _people_trust(cfg: PeopleConfig, scene: Scene, trust: list[np.ndarray | None],
                  obs: Observer) -> tuple[list[np.ndarray | None], int]:
    """(`trust` × each view's people map, how many people were found), with a log line."""
    t0 = time.perf_counter()
    maps, counts = zip(*(people_trust(v.image, cfg) for v in scene.views))
    said = ", ".join(f"{v.name} {n}" for v, n in zip(scene.views, counts))
    obs.log(f"filters: people (OpenCV's pedestrian detector + GrabCut, {time.perf_counter() - t0:.1f} s): {said}")
    return _times(trust, [None if n == 0 else m for m, n in zip(maps, counts)]), sum(counts)  # nobody found: no map


def _full_plan(cfg: FiltersConfig, scene: Scene, obs: Observer, device: str) -> FilterPlan:
    """mode on: every part the settings switch on, whatever the detectors find."""
    trust = _weather_trust(cfg, scene, obs)
    if cfg.photo_consistency and (maps := _unexplained(cfg.consistency, scene, obs)) is not None:
        trust = _times(trust, _consistency_trust(cfg.consistency, maps))
    if cfg.people == "on":
        trust = _people_trust(cfg.people_fit, scene, trust, obs)[0]
    if cfg.segmenter.model is not None:
        trust = _learned_trust(SegmenterFilter(cfg.segmenter, device), scene, trust, obs)
    elif cfg.transients or cfg.photo_consistency:
        used = " and ".join(n for n, on in (("photo consistency", cfg.photo_consistency), ("robust weights", cfg.transients))
                            if on)
        obs.log(f"filters: occluders: weights-free {used} (no learned segmenter: "
                "--config.filters.segmenter.model names one on disk)")
    return FilterPlan(trust, cfg.robust if cfg.transients else None, _haze_plan(cfg, scene, obs),
                      cfg.appearance_fit if cfg.appearance else None)


def _auto_plan(cfg: FiltersConfig, scene: Scene, obs: Observer, device: str) -> FilterPlan | None:
    """mode auto: the detectors run, and each part goes on only where its detector found
    something (rain streaks, haze, occluders); None when nothing was found. Appearance and a
    learned segmenter are the user's explicit choices and go on as asked."""
    trust = _weather_trust(cfg, scene, obs)
    found = [f"rain streaks in {sum(t is not None for t in trust)} photo(s)"] if any(t is not None for t in trust) else []
    if cfg.photo_consistency and (maps := _unexplained(cfg.consistency, scene, obs)) is not None:
        shares = [interior_share(m) for m in maps]
        worst = int(np.argmax(shares))
        if shares[worst] >= cfg.occluder_share:
            trust = _times(trust, _consistency_trust(cfg.consistency, maps))
            found.append("occluders (" + ", ".join(f"{v.name} {100 * x:.1f}%" for v, x in zip(scene.views, shares)
                                                   if x >= cfg.occluder_share) + " of the photo unexplained)")
        else:
            obs.log(f"filters auto: no occluders (largest unexplained region share {100 * shares[worst]:.2f}% in "
                    f"{scene.views[worst].name}, below {100 * cfg.occluder_share:g}%)")
    if cfg.people == "on":
        trust, people = _people_trust(cfg.people_fit, scene, trust, obs)
        if people:
            found.append(f"{people} people")
    if cfg.segmenter.model is not None:
        trust = _learned_trust(SegmenterFilter(cfg.segmenter, device), scene, trust, obs)
        found.append(f"the segmenter's classes ({', '.join(cfg.segmenter.classes)})")
    haze = _haze_plan(cfg, scene, obs)
    if haze is not None:
        found.append("haze")
    if not found and not cfg.appearance:
        return None
    robust = cfg.robust if cfg.transients and any(t is not None for t in trust) else None
    plan = FilterPlan(trust, robust, haze, cfg.appearance_fit if cfg.appearance else None)
    obs.log(f"filters auto: found {'; '.join(found) or 'nothing'}; switched on: "
            + ", ".join(n for n, on in (("trust maps", any(t is not None for t in trust)), ("robust weights", robust),
                                        ("haze model", haze), ("appearance (asked)", plan.appearance)) if on))
    return plan


def run_filters(cfg: FiltersConfig, scene: Scene, run_dir: Path, obs: Observer, device: str = "cpu") -> Scene:
    """The scene with a FilterPlan in meta["filters"] for the optimisation, or (mode auto, when
    the detectors find nothing) the scene as it came."""
    t0 = time.perf_counter()
    plan = _auto_plan(cfg, scene, obs, device) if cfg.mode == "auto" else _full_plan(cfg, scene, obs, device)
    if plan is None:
        obs.log(f"filters auto: nothing to filter, the photos go to training as they are "
                f"({time.perf_counter() - t0:.1f} s of detectors; --config.filters.mode on forces the filters)")
        return scene
    on = [n for n, x in (("robust weights", plan.robust), ("haze", plan.haze), ("appearance", plan.appearance))
          if x is not None]
    obs.log(f"filters: {', '.join(on) or 'no training part'} on ({time.perf_counter() - t0:.1f} s); trust maps "
            f"are drawn to {Path(run_dir) / FOLDER} after the optimisation")
    return replace(scene, meta={**scene.meta, META_KEY: plan})


def trust_maps(scene: Scene, state: dict) -> list[np.ndarray] | None:
    """Each view's final trust [H,W] (robust weights of its last visit × its prior map) from the
    optimise stage's Trainer state, or None when the filters were off."""
    plan = scene.meta.get(META_KEY)
    if plan is None:
        return None
    robust = state.get("parts", {}).get("robust weights", {}).get("weights", {})
    maps = []
    for i, v in enumerate(scene.views):
        t = np.ones(v.image.shape[:2], np.float32)
        if i in robust:
            t = t * robust[i].numpy()
        if plan.trust[i] is not None:
            t = t * plan.trust[i]
        maps.append(t)
    return maps


def write_trust_maps(scene: Scene, state: dict, run_dir: Path, obs: Observer, height: int = 160) -> None:
    """RUN/filters/VIEW.png: photo | trust (white = trusted) | what was removed (photo × distrust),
    and RUN/filters/contact.png with every view, smaller; the same rows go to the viewer's panel.
    Nothing when the filters were off."""
    from recon.io.images import contact_sheet, save_image

    maps = trust_maps(scene, state)
    if maps is None:
        return
    folder = Path(run_dir) / FOLDER
    rows = []
    for v, t in zip(scene.views, maps):
        rows.append(np.concatenate([v.image, np.repeat(t[..., None], 3, -1), v.image * (1 - t[..., None])], axis=1))
        save_image(folder / f"{v.name}.png", rows[-1])
    save_image(folder / "contact.png", contact_sheet(rows, height))
    obs.images_ready("filters: photo | trust | removed", rows)
    low = ", ".join(f"{v.name} {100 * np.mean(t < 0.5):.1f}%" for v, t in zip(scene.views, maps))
    obs.log(f"filters: pixels with trust < 0.5: {low}; pictures in {folder}")
