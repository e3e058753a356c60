"""`ViewerObserver`: the pipeline's observer that streams a run to the browser while it runs.

The pipeline calls the hooks from its optimisation thread, so every hook only stores a reference
and sets an event; a worker thread does the conversion and the sending. The worker throttles
itself twice: at most one splat every `interval` seconds, and never more than `max_duty` of the
wall time (a push that took 30 ms with max_duty 0.05 waits at least 0.6 s before the next one),
which keeps the viewer's cost bounded however large the splat grows.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING

from recon.events import Observer

from .app import ViewerApp
from .server import DEFAULT_HOST, DEFAULT_PORT, start_server, stop_server, viewer_url, wait_until_stopped
from .splats import camera_framing, frame_bounds, robust_bounds

if TYPE_CHECKING:
    import viser

    from recon.gaussians import Gaussians
    from recon.scene import Scene


class ViewerObserver(Observer):
    """Starts a viser server and mirrors the run into it. Use as a context manager or `close()`.

    host/port: where to listen (a busy port moves to the next free one; `url` says where).
    interval: the shortest time between two splat updates, in seconds.
    max_duty: the largest fraction of wall time the worker may spend converting and sending.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        interval: float = 0.3,
        max_duty: float = 0.05,
        server: "viser.ViserServer | None" = None,
    ) -> None:
        self.interval = interval
        self.max_duty = max_duty
        self.server = server if server is not None else start_server(host, port, label="recon · live")
        # Exact renders are asked for by a person looking; still, leave the optimiser most of the CPU.
        self.app = ViewerApp(self.server, live=True, exact_max_duty=0.25)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._closed = False
        # Slots the hooks write and the worker reads; a single attribute assignment is atomic.
        self._pending_gaussians: tuple["Gaussians", int] | None = None
        self._pending_scene: "Scene | None" = None
        self._pending_images: tuple[str, list] | None = None  # (title, pictures [H,W,3] in [0,1])
        self._status: dict[str, str | int | float] = {}
        self._framed = False
        self.pushes = 0  # number of splat updates sent (tests and the benchmark read it)
        self.push_seconds = 0.0  # total worker time spent on them
        self.errors = 0  # updates that failed (reported once on stderr)
        self._worker = threading.Thread(target=self._run, name="recon-viewer-live", daemon=True)
        self._worker.start()

    @property
    def url(self) -> str:
        return viewer_url(self.server)

    # --- Observer hooks (called on the optimisation thread: store and return) ---------------
    def stage_started(self, stage: str) -> None:
        self._status = {**self._status, "Stage": stage}
        self._wake.set()

    def stage_finished(self, stage: str, seconds: float, cached: bool) -> None:
        self._status = {**self._status, "Stage": f"{stage} done" + (" (cached)" if cached else "")}
        self._wake.set()

    def scene_ready(self, scene: "Scene") -> None:
        self._pending_scene = scene
        self._wake.set()

    def gaussians_updated(self, gaussians: "Gaussians", step: int) -> None:
        # A reference, not a copy: the pipeline hands over a snapshot (Gaussians.from_params).
        self._pending_gaussians = (gaussians, step)
        if step >= 0:
            self._status = {**self._status, "Step": step}
        self._wake.set()

    def step_metrics(self, step: int, metrics: dict[str, float]) -> None:
        status = {**self._status, "Step": step}
        for key, name in (("loss", "Loss"), ("psnr", "PSNR")):
            if key in metrics:
                status[name] = float(metrics[key])
        self._status = status

    def images_ready(self, title: str, images: list) -> None:
        self._pending_images = (title, images)
        self._wake.set()

    def should_pause(self) -> bool:
        return self.app.paused

    # --- worker -------------------------------------------------------------------------------
    def _run(self) -> None:
        next_push = 0.0
        while True:
            timeout = self.interval
            if self._pending_gaussians is not None:
                timeout = max(0.01, next_push - time.monotonic())
            self._wake.wait(timeout=timeout)
            self._wake.clear()
            stopping = self._stopping.is_set()
            try:
                self.app.set_status(**self._status)
                scene, self._pending_scene = self._pending_scene, None
                if scene is not None:
                    self._show_scene(scene)
                images, self._pending_images = self._pending_images, None
                if images is not None:
                    self.app.set_images(*images)
                # On stop, push the last state whatever the throttle says: it is the result.
                if self._pending_gaussians is not None and (stopping or time.monotonic() >= next_push):
                    cost = self._push()
                    next_push = time.monotonic() + max(self.interval, cost / self.max_duty)
            except Exception as e:  # the viewer failing must never stop the run it watches
                self._pending_gaussians = None
                if not self.errors:
                    print(f"recon viewer: update failed ({type(e).__name__}: {e}); the run goes on",
                          file=sys.stderr, flush=True)
                self.errors += 1
            if stopping:
                return

    def _push(self) -> float:
        t0 = time.perf_counter()
        pending, self._pending_gaussians = self._pending_gaussians, None
        if pending is None:
            return 0.0
        g, _ = pending
        arrays = self.app.set_gaussians(g)
        if not self._framed and len(arrays):
            # No cameras known (a bare init): frame the splat itself, once.
            centre, radius = robust_bounds(arrays.centers, arrays.opacities)
            self.app.set_framing(frame_bounds(centre, radius), move_clients=True)
            self._framed = True
        cost = time.perf_counter() - t0
        self.pushes += 1
        self.push_seconds += cost
        return cost

    def _show_scene(self, scene: "Scene") -> None:
        cams = scene.cameras
        if not cams:
            return
        centre, radius = scene.bounds()
        self.app.frustum_scale = 0.15 * radius
        self.app.set_cameras(cams, [v.image for v in scene.views])
        self.app.set_framing(camera_framing(cams, centre), move_clients=True)
        self._framed = True

    # --- lifetime -----------------------------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> None:
        """Wait until the latest Gaussians have been sent (for the end of a run, and tests)."""
        deadline = time.monotonic() + timeout
        while self._pending_gaussians is not None and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.02)

    def close(self) -> None:
        """Send the final state, stop the worker and the server. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._wake.set()
        self._worker.join(timeout=10.0)
        self.app.close()
        stop_server(self.server)

    stop = close  # the name the CLI uses for servers

    def serve_forever(self) -> None:
        """Keep showing the result until Ctrl-C, SIGTERM or SIGHUP (after the run), then close."""
        try:
            wait_until_stopped(self._stopping)
        finally:
            self.close()

    def __enter__(self) -> "ViewerObserver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()



def start_live_viewer(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> ViewerObserver:
    """Start the viewer for `recon run --viewer`: add the result to the run's Observers and
    call `.stop()` (or `.serve_forever()` to keep showing the result) when the run ends."""
    return ViewerObserver(host, port)
