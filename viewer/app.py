"""The viewer's scene and panel, shared by the live observer and `recon view`.

One `ViewerApp` owns a viser server's content: the splat node (updated in place with
`set_gaussians`, which sends one message and lets the count change; replacing the node would
flicker), the training-camera frustums, the status panel, pause/resume, and the display mode
(live splats, or an exact image from recon's own renderer for each browser's viewpoint).
"""

from __future__ import annotations

import threading
import time
import numpy as np
import viser
import viser.transforms as vtf

from recon.gaussians import Gaussians
from recon.scene import Camera
from .splats import Framing, SplatArrays, to_splat_arrays

DISPLAY_MODES = ("Live splats", "Exact RGB", "Exact depth", "Exact alpha")
# Exact renders run on the CPU next to the optimiser: keep them small.
EXACT_MAX_SIDE = 320
FRUSTUM_IMAGE_MAX_SIDE = 160
PICTURE_MAX_SIDE = 480  # the panel is ~300 px wide; larger only costs messages


def _downsample(image: np.ndarray, max_side: int) -> np.ndarray:
    """Nearest-neighbour stride so the longer side is ≤ max_side (frustum thumbnails only)."""
    step = max(1, int(np.ceil(max(image.shape[:2]) / max_side)))
    return np.ascontiguousarray(image[::step, ::step])


def camera_pose(cam: Camera) -> tuple[np.ndarray, np.ndarray]:
    """(wxyz, position) of an OpenCV camera as a viser node: viser's frustums share OpenCV axes."""
    c2w = cam.cam_to_world
    return vtf.SO3.from_matrix(c2w[:3, :3]).wxyz, c2w[:3, 3]


def client_camera(handle: viser.CameraHandle, max_side: int = EXACT_MAX_SIDE) -> Camera:
    """The browser's current view as a recon Camera (OpenCV; viser reports R_world_camera, t)."""
    R = vtf.SO3(np.asarray(handle.wxyz)).as_matrix()
    t = np.asarray(handle.position, dtype=np.float64)
    w2c = np.eye(4)
    w2c[:3, :3] = R.T
    w2c[:3, 3] = -R.T @ t
    aspect = float(handle.aspect) if handle.aspect > 0 else 4 / 3
    if aspect >= 1:
        width, height = max_side, max(8, int(round(max_side / aspect)))
    else:
        width, height = max(8, int(round(max_side * aspect))), max_side
    fy = height / 2 / np.tan(handle.fov / 2)  # viser's fov is vertical
    K = np.array([[fy, 0, width / 2], [0, fy, height / 2], [0, 0, 1]])
    return Camera(K=K, world_to_cam=w2c, width=width, height=height)


def render_exact(g: Gaussians, cam: Camera, mode: str) -> np.ndarray:
    """[H,W,3] uint8 image of `g` from `cam` by recon's renderer: RGB, depth or alpha."""
    from recon.render.views import SplatRenderer  # lazy: the viewer must start without it

    renderer = SplatRenderer(g, g.means.device.type)  # where the snapshot is, as the backend's auto picks
    if mode == "Exact RGB":
        out = renderer.render(cam).rgb
    else:
        r = renderer.render_expected(cam)
        out = np.repeat(r.alpha[..., None], 3, axis=-1) if mode == "Exact alpha" else depth_to_rgb(r.depth, r.alpha)
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)


def depth_to_rgb(depth: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Expected depth (Σ w·z / α, as `SplatRenderer.render_expected` gives it) → near-bright grey,
    black where empty (α ≤ 1e-3)."""
    valid = alpha > 1e-3
    z = np.where(valid, depth, 0.0)
    if not valid.any():
        return np.zeros((*depth.shape, 3))
    lo, hi = np.percentile(z[valid], [2, 98])
    v = np.where(valid, 1.0 - np.clip((z - lo) / max(hi - lo, 1e-9), 0, 1) * 0.8, 0.0)
    return np.repeat(v[..., None], 3, axis=-1)


class ViewerApp:
    """The viewer's content on one viser server. Thread-safe: call from any thread."""

    def __init__(self, server: viser.ViserServer, *, live: bool = False, exact_max_duty: float = 1.0) -> None:
        """live: show the run panel (stage, step, loss, PSNR, pause). exact_max_duty: the largest
        fraction of wall time exact renders may take (they share the CPU with the optimiser)."""
        self.server = server
        self.exact_max_duty = exact_max_duty
        self._lock = threading.RLock()
        self._splat: viser.GaussianSplatHandle | None = None
        self._gaussians: Gaussians | None = None
        self._paused = threading.Event()
        self._stopping = threading.Event()
        self._render_wake = threading.Event()
        self._dirty_clients: set[int] = set()
        self.frustum_scale = 0.1
        self.frustums: list[viser.CameraFrustumHandle] = []
        self._build_panel(live)
        server.on_client_connect(self._on_connect)
        self._render_thread = threading.Thread(target=self._render_loop, name="recon-viewer-exact", daemon=True)
        self._render_thread.start()

    # --- panel -----------------------------------------------------------------------------
    def _build_panel(self, live: bool) -> None:
        gui = self.server.gui
        with gui.add_folder("Run" if live else "Splat"):
            self._fields = {
                name: gui.add_text(name, "–", disabled=True)
                for name in (("Stage", "Step", "Loss", "PSNR", "Gaussians") if live else ("Gaussians",))
            }
            if live:
                self._pause_button = gui.add_button("Pause", hint="Pause the optimisation (resumable)")
                self._pause_button.on_click(lambda _: self.toggle_pause())
        with gui.add_folder("Display"):
            self._mode = gui.add_dropdown("Show", DISPLAY_MODES, initial_value=DISPLAY_MODES[0])
            self._mode.on_update(lambda _: self._mode_changed())
            self._show_cameras = gui.add_checkbox("Cameras", True, hint="Training cameras and their photos")
            self._show_cameras.on_update(lambda _: self._cameras_toggled())
            self._note = gui.add_markdown("")

    def set_status(self, **fields: str | int | float) -> None:
        """Update panel fields (Stage, Step, Loss, PSNR, Gaussians); unknown names are ignored."""
        for name, value in fields.items():
            handle = self._fields.get(name)
            if handle is None:
                continue
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
            if handle.value != text:  # each assignment is a websocket message
                handle.value = text

    def set_images(self, title: str, images: list[np.ndarray]) -> None:
        """Show a stage's pictures in a folder of the panel, one folder per stage (the title's part
        before ":", e.g. "filters: trust maps", "repair: round 2"). A later call for the same stage
        replaces its pictures (the latest repair round is what is training); other stages' stay."""
        group = title.split(":")[0].strip()
        with self._lock:
            gui = self.server.gui
            if not hasattr(self, "_pictures"):
                self._pictures: dict[str, tuple] = {}  # group -> (folder, title markdown, image handles)
            if group not in self._pictures:
                folder = gui.add_folder(f"Pictures: {group}")
                with folder:
                    self._pictures[group] = (folder, gui.add_markdown(""), [])
            folder, heading, handles = self._pictures[group]
            heading.content = f"**{title}** ({len(images)})"
            for handle in handles[len(images):]:
                handle.remove()
            del handles[len(images):]
            for k, image in enumerate(images):
                small = (np.clip(_downsample(image, PICTURE_MAX_SIDE), 0, 1) * 255 + 0.5).astype(np.uint8)
                if k < len(handles):
                    handles[k].image = small
                else:
                    with folder:
                        handles.append(gui.add_image(small, format="jpeg"))

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def toggle_pause(self) -> None:
        """Pause or resume the run (the pipeline polls `paused` through should_pause())."""
        if not hasattr(self, "_pause_button"):
            return  # a finished splat has nothing to pause
        if self._paused.is_set():
            self._paused.clear()
            self._pause_button.label = "Pause"
        else:
            self._paused.set()
            self._pause_button.label = "Resume"

    @property
    def display_mode(self) -> str:
        return str(self._mode.value)

    # --- content ---------------------------------------------------------------------------
    def set_gaussians(self, g: Gaussians) -> SplatArrays:
        """Show `g`: convert and send in one message; re-render exact views if one is shown."""
        arrays = to_splat_arrays(g)
        with self._lock:
            self._gaussians = g
            if self._splat is None:
                self._splat = self.server.scene.add_gaussian_splats(
                    "/splat", arrays.centers, arrays.covariances, arrays.rgbs, arrays.opacities,
                    visible=self.display_mode == DISPLAY_MODES[0],
                )
            else:
                self._splat.set_gaussians(arrays.centers, arrays.covariances, arrays.rgbs, arrays.opacities)
        self.set_status(Gaussians=len(arrays))
        if self.display_mode != DISPLAY_MODES[0]:
            self._request_render(all_clients=True)
        return arrays

    def set_splat_choices(self, choices: dict[str, Gaussians]) -> None:
        """Offer a choice of splats in the panel (a stylised run: its stylised and its original
        splat) and show the first; choosing one swaps the splat in place."""
        names = list(choices)
        with self.server.gui.add_folder("Style"):
            self.splat_choice = self.server.gui.add_dropdown("Splat", names, initial_value=names[0],
                                                             hint="The stylised splat or the one it came from")
        self.splat_choice.on_update(lambda _: self.set_gaussians(choices[str(self.splat_choice.value)]))
        self.set_gaussians(choices[names[0]])

    def set_cameras(self, cameras: list[Camera], images: list[np.ndarray | None] | None = None) -> None:
        """Draw the training cameras as frustums, with their photos when given ([H,W,3] float/uint8)."""
        images = images or [None] * len(cameras)
        for i, (cam, img) in enumerate(zip(cameras, images)):
            wxyz, pos = camera_pose(cam)
            fov = 2 * np.arctan(cam.height / 2 / cam.K[1, 1])
            thumb = None
            if img is not None:
                thumb = _downsample(np.asarray(img), FRUSTUM_IMAGE_MAX_SIDE)
                if thumb.dtype != np.uint8:
                    thumb = (np.clip(thumb, 0, 1) * 255).astype(np.uint8)
            handle = self.server.scene.add_camera_frustum(
                f"/cameras/{i:03d}", fov=float(fov), aspect=cam.width / cam.height,
                scale=self.frustum_scale, image=thumb, wxyz=wxyz, position=pos,
                color=(60, 120, 220), format="jpeg", visible=bool(self._show_cameras.value),
            )
            self.frustums.append(handle)

    def _cameras_toggled(self) -> None:
        for handle in self.frustums:
            handle.visible = bool(self._show_cameras.value)

    def set_framing(self, framing: Framing, *, move_clients: bool = False) -> None:
        """Initial camera for new browsers (and "reset view"); optionally move connected ones."""
        self.server.scene.set_up_direction(framing.up)
        cam = self.server.initial_camera
        cam.fov = framing.fov
        cam.look_at = framing.look_at
        cam.position = framing.position
        cam.up = framing.up
        near = float(np.linalg.norm(framing.position - framing.look_at)) * 0.01
        cam.near = near
        cam.far = near * 1e5
        if move_clients:
            for client in self.server.get_clients().values():
                self._apply_framing(client, framing)

    @staticmethod
    def _apply_framing(client: viser.ClientHandle, framing: Framing) -> None:
        with client.atomic():
            client.camera.fov = framing.fov
            client.camera.up_direction = framing.up
            client.camera.position = framing.position
            client.camera.look_at = framing.look_at

    # --- exact renders ---------------------------------------------------------------------
    def _on_connect(self, client: viser.ClientHandle) -> None:
        client.camera.on_update(lambda _: self._request_render(client.client_id))

    def _mode_changed(self) -> None:
        live = self.display_mode == DISPLAY_MODES[0]
        with self._lock:
            if self._splat is not None:
                self._splat.visible = live
        if live:
            self._note.content = ""
            for client in self.server.get_clients().values():
                client.scene.set_background_image(None)
        else:
            self._request_render(all_clients=True)

    def _request_render(self, client_id: int | None = None, *, all_clients: bool = False) -> None:
        if self.display_mode == DISPLAY_MODES[0]:
            return
        with self._lock:
            if all_clients:
                self._dirty_clients.update(self.server.get_clients().keys())
            elif client_id is not None:
                self._dirty_clients.add(client_id)
        self._render_wake.set()

    def _render_loop(self) -> None:
        """Renders exact views off the websocket thread; coalesces bursts of camera moves."""
        while not self._stopping.is_set():
            self._render_wake.wait(timeout=0.5)
            self._render_wake.clear()
            with self._lock:
                dirty, self._dirty_clients = self._dirty_clients, set()
                g = self._gaussians
            if g is None or self.display_mode == DISPLAY_MODES[0]:
                continue
            t0 = time.perf_counter()
            for cid in dirty:
                client = self.server.get_clients().get(cid)
                if client is not None and not self._stopping.is_set():
                    self._render_client(client, g)
            if self.exact_max_duty < 1.0:
                busy = time.perf_counter() - t0
                self._stopping.wait(busy * (1 / self.exact_max_duty - 1))

    def _render_client(self, client: viser.ClientHandle, g: Gaussians) -> None:
        mode = self.display_mode
        try:
            image = render_exact(g, client_camera(client.camera), mode)
        except ImportError:
            self._note.content = "*Exact render needs `recon.render`, which is not available.*"
            return
        except Exception as e:  # a renderer error must not kill the viewer
            self._note.content = f"*Exact render failed: {type(e).__name__}: {e}*"
            return
        self._note.content = f"*{mode}: {image.shape[1]}×{image.shape[0]} by recon's renderer*"
        client.scene.set_background_image(image, format="png")  # jpeg rings around hard edges

    def close(self) -> None:
        """Stop the render thread (the server is stopped by its owner)."""
        self._stopping.set()
        self._render_wake.set()
        self._render_thread.join(timeout=5.0)

