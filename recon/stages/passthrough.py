"""Stages of the graph that are not built yet: filters (weather, occluders, transient masks),
repair (diffusion repair of pseudo views) and stylize (style image → splat). Each passes its
input through unchanged and says so in the run log, so the graph and the run folder keep their
final shape while those stages are written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from recon.events import Observer

T = TypeVar("T")


@dataclass
class FiltersConfig:
    enabled: bool = False
    """Transient/occluder masking. Not built yet: the stage passes the views through."""


@dataclass
class RepairConfig:
    enabled: bool = False
    """Diffusion repair of pseudo views. Not built yet: the stage passes the splat through."""


@dataclass
class StylizeConfig:
    style_image: str | None = None
    """A style image to transfer onto the splat. Not built yet: the stage passes the splat through."""


def pass_through(stage: str, artifact: T, obs: Observer) -> T:
    obs.log(f"{stage}: not built yet, passing its input through unchanged")
    return artifact
