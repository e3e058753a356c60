"""The repair stage's settings (`repair.*`) and their checks, refused before a run starts: a bad
value, a setting the chosen method would ignore, repair settings while repair is off, or a
diffusion model that is not on this disk."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from recon.errors import ReconError
from recon.hub import locate
from recon.repair.difix import DifixConfig
from recon.repair.diffusion import NEVER_DOWNLOADS, DiffusionConfig
from recon.repair.photo_reprojection import ReprojectConfig

Method = Literal["reproject", "img2img", "controlnet-tile", "difix"]
# which settings section each method reads; another method's section set is refused, not ignored
SECTIONS = {"reproject": "reproject", "img2img": "diffusion", "controlnet-tile": "diffusion", "difix": "difix"}


@dataclass
class RepairConfig:
    enabled: bool = False
    """Repair pseudo views after the optimisation and train on them (optimise ⇄ repair rounds)."""
    method: Method = "reproject"
    """reproject: the training photos reprojected through the splat's depth (no weights);
    img2img: SD 1.5 image-to-image; controlnet-tile: SD 1.5 + ControlNet-tile (GaussianObject);
    difix: Difix3D+ with a reference view. The diffusion methods load weights from disk only."""
    rounds: int = 2
    """Rounds of repair; each renders new pseudo views (farther from the photos each round)."""
    views: int = 6
    """Pseudo views repaired per round."""
    steps: int = 150
    """Training steps after each round's repair (each also fits one repaired view)."""
    weight: float = 0.5
    """Loss weight of the repaired views beside the photos' (the confidence weighs each pixel)."""
    spread: float = 0.5
    """How far the last round's pseudo views go: this fraction of the angle between a training
    camera and its nearest neighbour (0.5 = half way); earlier rounds go proportionally less."""
    scale: float = 1.0
    """Pseudo views are rendered and repaired at this fraction of the training resolution."""
    reproject: ReprojectConfig = field(default_factory=ReprojectConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    difix: DifixConfig = field(default_factory=DifixConfig)


def _positive(name: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ReconError(f"--config.repair.{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


def _fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ReconError(f"--config.repair.{name} must be between 0 and 1, got {value}")


def _check_model(flag: str, spec: str | None) -> None:
    if spec is not None and locate(spec) is None:
        raise ReconError(f"--config.repair.{flag} '{spec}' is neither a folder here nor in the local Hugging Face "
                         f"cache. {NEVER_DOWNLOADS}")


def _check_prompt(section: str, prompt: str, default: str, embeds: str | None) -> None:
    if embeds is not None:
        if prompt != default:
            raise ReconError(f"--config.repair.{section}.prompt and .prompt-embeds both set: give one")
        if not Path(embeds).is_file():
            raise ReconError("prompt embeddings file not found", Path(embeds))


def _check_diffusion(cfg: RepairConfig) -> None:
    d = cfg.diffusion
    if d.model is None:
        raise ReconError(f"--config.repair.method {cfg.method} needs --config.repair.diffusion.model (SD 1.5: a "
                         "local folder or a hub id in the local cache)")
    if cfg.method == "controlnet-tile" and d.controlnet is None:
        raise ReconError("--config.repair.method controlnet-tile needs --config.repair.diffusion.controlnet "
                         "(ControlNet-tile: a local folder or a hub id in the local cache)")
    if cfg.method == "img2img" and d.controlnet is not None:
        raise ReconError("--config.repair.diffusion.controlnet is for --config.repair.method controlnet-tile; "
                         "img2img would ignore it")
    for flag, spec in (("diffusion.model", d.model), ("diffusion.controlnet", d.controlnet), ("diffusion.lora", d.lora)):
        _check_model(flag, spec)
    _check_prompt("diffusion", d.prompt, "", d.prompt_embeds)
    if not 0.0 < d.strength <= 1.0:
        raise ReconError(f"--config.repair.diffusion.strength must be in (0, 1], got {d.strength}")
    _positive("diffusion.steps", d.steps)
    _positive("diffusion.size", d.size)


def _check_reproject(r: ReprojectConfig) -> None:
    _positive("reproject.sources", r.sources)
    for name in ("depth_tolerance", "colour_tolerance", "angle_sigma_deg"):
        _positive(f"reproject.{name.replace('_', '-')}", getattr(r, name))
    _fraction("reproject.single-source", r.single_source)
    _fraction("reproject.min-alpha", r.min_alpha)


def check_config(cfg: RepairConfig) -> None:
    """Refuse bad repair settings in one line (see the module docstring)."""
    if not cfg.enabled:
        if cfg != RepairConfig():
            raise ReconError("repair settings without --config.repair.enabled would do nothing: turn repair on "
                             "or leave them unset")
        return
    for f in fields(cfg):
        if f.name in SECTIONS.values() and f.name != SECTIONS[cfg.method] and getattr(cfg, f.name) != f.default_factory():
            raise ReconError(f"the repair.{f.name}.* settings are not used by --config.repair.method {cfg.method}")
    for name in ("rounds", "views", "steps", "weight", "spread", "scale"):
        _positive(name, getattr(cfg, name))
    if cfg.scale > 1:
        raise ReconError(f"--config.repair.scale must be at most 1, got {cfg.scale}")
    if cfg.method == "reproject":
        _check_reproject(cfg.reproject)
    elif cfg.method == "difix":
        if cfg.difix.model is None:
            raise ReconError("--config.repair.method difix needs --config.repair.difix.model (nvidia/difix_ref: a "
                             "local folder or a hub id in the local cache)")
        _check_model("difix.model", cfg.difix.model)
        _check_prompt("difix", cfg.difix.prompt, DifixConfig().prompt, cfg.difix.prompt_embeds)
        if not 0 <= cfg.difix.timestep < 1000:
            raise ReconError(f"--config.repair.difix.timestep must be in [0, 1000), got {cfg.difix.timestep}")
        _positive("difix.size", cfg.difix.size)
    else:
        _check_diffusion(cfg)
    if cfg.method != "reproject":
        try:
            import diffusers  # noqa: F401
        except ImportError:
            raise ReconError(f"--config.repair.method {cfg.method} needs diffusers: pip install 'recon[learned]'") from None
