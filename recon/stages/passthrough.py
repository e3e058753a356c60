"""Stages of the graph that are not built yet: filters (weather, occluders, transient masks) and
repair (diffusion repair of pseudo views). Each passes its input through unchanged and says so
in the run log, so the graph and the run folder keep their final shape while those stages are
written. Their settings exist so that `--help` shows where
they will be; setting one is refused (`refuse_unbuilt`), never accepted and ignored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from recon.errors import ReconError
from recon.events import Observer

T = TypeVar("T")


@dataclass
class FiltersConfig:
    enabled: bool = False
    """Transient/occluder masking. Not built yet: turning it on is an error."""


@dataclass
class RepairConfig:
    enabled: bool = False
    """Diffusion repair of pseudo views. Not built yet: turning it on is an error."""


def pass_through(stage: str, artifact: T, obs: Observer) -> T:
    obs.log(f"{stage}: not built yet, passing its input through unchanged")
    return artifact


def refuse_unbuilt(filters: FiltersConfig, repair: RepairConfig) -> None:
    """One line naming the setting, for settings of stages that do not exist yet."""
    asked = [name for name, on in (("filters.enabled", filters.enabled), ("repair.enabled", repair.enabled)) if on]
    if asked:
        raise ReconError(f"--config.{asked[0]}: the {asked[0].split('.')[0]} stage is not built yet, "
                         "so this setting would do nothing; leave it unset")
