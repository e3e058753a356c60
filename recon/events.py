"""One small observer interface through which stages report. The progress bar, the run log and
the live viewer subscribe to it; no stage imports any of them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from recon.gaussians import Gaussians
    from recon.scene import Scene


class Observer:
    """Override what you need; every hook is a no-op by default."""

    def stage_started(self, stage: str) -> None: ...

    def stage_finished(self, stage: str, seconds: float, cached: bool) -> None: ...

    def scene_ready(self, scene: "Scene") -> None:
        """The posed views are known (after poses): viewers draw the camera frusta."""

    def gaussians_updated(self, gaussians: "Gaussians", step: int) -> None:
        """A new state of the splat (after init, during optimisation, at the end). Observers
        that are slow must throttle themselves; the optimiser calls this at most every few
        hundred milliseconds."""

    def step_metrics(self, step: int, metrics: dict[str, float]) -> None: ...

    def log(self, message: str) -> None: ...

    def images_ready(self, title: str, images: "list[np.ndarray]") -> None:
        """Pictures a stage made for a person to look at, float [H,W,3] in [0,1]: the filters' photo |
        trust | removed, the repair rounds' render | repaired | confidence. The title starts with the
        stage ("repair: round 2"); a later call from the same stage replaces its pictures."""

    def should_pause(self) -> bool:
        """Polled by long loops; True makes them wait (the viewer's pause button)."""
        return False


class Observers(Observer):
    """Fans every call out to a list of observers."""

    def __init__(self, observers: list[Observer] | None = None) -> None:
        self.observers: list[Observer] = list(observers or [])

    def add(self, observer: Observer) -> None:
        self.observers.append(observer)

    def _call(self, name: str, *args: Any) -> None:
        for o in self.observers:
            getattr(o, name)(*args)

    def stage_started(self, stage: str) -> None:
        self._call("stage_started", stage)

    def stage_finished(self, stage: str, seconds: float, cached: bool) -> None:
        self._call("stage_finished", stage, seconds, cached)

    def scene_ready(self, scene: "Scene") -> None:
        self._call("scene_ready", scene)

    def gaussians_updated(self, gaussians: "Gaussians", step: int) -> None:
        self._call("gaussians_updated", gaussians, step)

    def step_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self._call("step_metrics", step, metrics)

    def log(self, message: str) -> None:
        self._call("log", message)

    def images_ready(self, title: str, images: "list[np.ndarray]") -> None:
        self._call("images_ready", title, images)

    def should_pause(self) -> bool:
        return any(o.should_pause() for o in self.observers)
