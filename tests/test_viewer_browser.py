"""The viewer in real headless Chromium (Debian's chromium driven by Playwright).

Each test puts coloured clusters of Gaussians at known world points, asks the browser where its
camera is, projects the clusters with that camera, and checks the screenshot has the colour
there. Expected console noise: "Software WebGL rendering detected" and a three.js
computeBoundingSphere NaN message.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 800, "height": 600}
WAIT_S = 120.0  # a generous ceiling for software WebGL on 2 busy cores; never a pass condition

pytestmark = pytest.mark.browser

if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); the browser tests need it",
                allow_module_level=True)
try:
    from playwright.sync_api import Browser, Page, sync_playwright
except ImportError:
    pytest.skip("the playwright package is missing (pip install playwright; no `playwright install`)",
                allow_module_level=True)

import viser  # noqa: E402
from PIL import Image  # noqa: E402

from recon.gaussians import Gaussians  # noqa: E402
from recon_viewer import ViewerObserver, ViewSession  # noqa: E402
from recon_viewer.app import client_camera  # noqa: E402

RED, BLUE, GREEN = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 0.8, 0.0)


# --- fixtures and helpers -----------------------------------------------------------------------
def _descendants(pid: int) -> set[int]:
    """Process ids below `pid` (from /proc; psutil is not a dependency)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def _alive(pids: set[int]) -> set[int]:
    """The pids that still run (zombies awaiting their parent's wait() do not count)."""
    alive = set()
    for p in pids:
        try:
            state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(p)
    return alive


@pytest.fixture(scope="module")
def browser():
    before = _descendants(os.getpid())
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()
    # Closing the browser must leave no chromium process behind.
    deadline = time.monotonic() + 10
    while _alive(_descendants(os.getpid()) - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(_descendants(os.getpid()) - before)


@pytest.fixture
def page(browser: Browser):
    p = browser.new_page(viewport=VIEWPORT)
    messages: list[str] = []
    p.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
    yield p
    p.close()


def _wait(condition: Callable[[], object], what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value is not None and value is not False:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def _client(server: viser.ViserServer) -> viser.ClientHandle:
    """The one connected browser, once it has reported its camera."""

    def ready():
        for c in server.get_clients().values():
            try:
                if c.camera.image_width > 0:
                    return c
            except AssertionError:  # no camera message yet
                pass
        return None

    return _wait(ready, "the browser to connect and report its camera")


def _screenshot(page: Page) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB")).astype(np.int16)


def _mask(img: np.ndarray, rgb: tuple[float, float, float]) -> np.ndarray:
    """Pixels of (saturated) colour `rgb`: high where rgb is 1, low where it is 0."""
    target = np.asarray(rgb) * 255
    return (np.abs(img - target) < 90).all(-1)


def _expected_pixel(client: viser.ClientHandle, point: np.ndarray) -> np.ndarray:
    cam = client_camera(client.camera, max_side=max(client.camera.image_width, client.camera.image_height))
    pix, depth = cam.project(np.asarray(point, dtype=np.float64)[None])
    assert depth[0] > 0, "the object is behind the browser's camera"
    # client_camera rounds the size; screenshots are in CSS pixels of the viewport
    return pix[0] * np.array([VIEWPORT["width"] / cam.width, VIEWPORT["height"] / cam.height])


def _wait_for_colour(page: Page, rgb, min_pixels: int = 400, absent=None) -> np.ndarray:
    """Screenshot once `rgb` covers ≥ min_pixels and colour `absent` < 300 (the axes gizmo in the
    corner has a little of each primary colour)."""

    def seen():
        img = _screenshot(page)
        if _mask(img, rgb).sum() < min_pixels:
            return None
        if absent is not None and _mask(img, absent).sum() >= 300:
            return None
        return img

    return _wait(seen, f"colour {rgb} on the page")


def _centroid(img: np.ndarray, rgb) -> np.ndarray:
    ys, xs = np.nonzero(_mask(img, rgb))
    return np.array([xs.mean(), ys.mean()])


def _cluster(centre, rgb, n: int, seed: int, spread: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(centre, spread, size=(n, 3)), np.tile(rgb, (n, 1))


def _write_inria_ply(path: Path, points: np.ndarray, colours: np.ndarray, sh_degree: int = 3) -> None:
    """A .ply exactly as the Inria 3DGS trainer writes it (normals, f_dc, f_rest, logit opacity,
    log scale, wxyz rot), written with plyfile directly, not with recon's writer."""
    from plyfile import PlyData, PlyElement

    n = len(points)
    n_rest = 3 * ((sh_degree + 1) ** 2 - 1)
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(n_rest)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    data = np.zeros(n, dtype=[(k, "f4") for k in names])
    for i, k in enumerate("xyz"):
        data[k] = points[:, i]
    for i in range(3):
        data[f"f_dc_{i}"] = (colours[:, i] - 0.5) / 0.28209479177387814
    data["opacity"] = 4.0  # sigmoid ≈ 0.98
    for i in range(3):
        data[f"scale_{i}"] = np.log(0.06)
    data["rot_0"] = 2.0  # unnormalised, as after training
    PlyData([PlyElement.describe(data, "vertex")]).write(str(path))


# --- tests --------------------------------------------------------------------------------------
def test_view_frames_a_ply_from_another_tool(tmp_path: Path, page: Page) -> None:
    red_at, blue_at = np.array([-1.0, 0.0, 5.0]), np.array([1.0, 0.0, 5.0])
    red, red_c = _cluster(red_at, RED, 300, 0)
    blue, blue_c = _cluster(blue_at, BLUE, 300, 1)
    # Floaters far away, as real splats have: framing must ignore them.
    far, far_c = _cluster([200.0, -300.0, 900.0], GREEN, 20, 2, spread=50.0)
    _write_inria_ply(tmp_path / "point_cloud.ply", np.concatenate([red, blue, far]),
                     np.concatenate([red_c, blue_c, far_c]))

    with ViewSession(tmp_path / "point_cloud.ply", port=0) as session:
        page.goto(session.url)
        client = _client(session.server)
        _wait_for_colour(page, RED)
        img = _wait_for_colour(page, BLUE)
        Image.fromarray(img.astype(np.uint8)).save(tmp_path / "view.png")
        # The browser starts at the framing the server chose.
        np.testing.assert_allclose(client.camera.position, session.server.initial_camera.position, atol=1e-3)
        width = VIEWPORT["width"]
        for rgb, at in ((RED, red_at), (BLUE, blue_at)):
            got, want = _centroid(img, rgb), _expected_pixel(client, at)
            assert np.linalg.norm(got - want) < 0.05 * width, (rgb, got, want)
        # Framed: both clusters well inside the image and not tiny.
        gap = _centroid(img, BLUE)[0] - _centroid(img, RED)[0]
        assert 0.25 * width < gap < 0.9 * width

        # The exact render (recon's renderer) for this viewpoint shows the same picture.
        page.get_by_role("combobox", name="Show").click()  # a Mantine Select, not a <select>
        page.get_by_role("option", name="Exact RGB").click()
        _wait(lambda: "Exact RGB" in session.app._note.content, "the exact render")
        assert not session.app._splat.visible
        exact = _wait_for_colour(page, RED)
        Image.fromarray(exact.astype(np.uint8)).save(tmp_path / "exact.png")
        assert np.linalg.norm(_centroid(exact, RED) - _centroid(img, RED)) < 0.05 * width

        page.close()  # closing the tab disconnects the client
        _wait(lambda: not session.server.get_clients(), "the server to see the browser leave")
    assert not session.server._websock_server._server_thread.is_alive()


def test_live_update_reaches_the_page(tmp_path: Path, page: Page) -> None:
    red_at = np.array([0.0, 0.0, 5.0])
    blue_at = np.array([-0.2, 0.15, 5.0])
    # Small Gaussians in a tight ball: framed alone, the ball stays clear of the GUI panel.
    pts, cols = _cluster(red_at, RED, 300, 3, spread=0.1)
    with ViewerObserver(port=0, interval=0.05) as obs:
        obs.stage_started("optimize")
        obs.gaussians_updated(Gaussians.from_points(pts, cols, opacity=0.95, scale=0.03), 0)
        page.goto(obs.url)
        client = _client(obs.server)
        img = _wait_for_colour(page, RED)
        Image.fromarray(img.astype(np.uint8)).save(tmp_path / "live0.png")
        first = _centroid(img, RED)
        assert np.linalg.norm(first - _expected_pixel(client, red_at)) < 0.05 * VIEWPORT["width"]

        # A new state with another colour, place and count replaces the old one in the page.
        pts2, cols2 = _cluster(blue_at, BLUE, 500, 4, spread=0.1)
        obs.gaussians_updated(Gaussians.from_points(pts2, cols2, opacity=0.95, scale=0.03), 100)
        obs.step_metrics(100, {"loss": 0.05, "psnr": 24.0})
        img = _wait_for_colour(page, BLUE, absent=RED)
        Image.fromarray(img.astype(np.uint8)).save(tmp_path / "live.png")
        assert np.linalg.norm(_centroid(img, BLUE) - _expected_pixel(client, blue_at)) < 0.05 * VIEWPORT["width"]
        assert obs.app._splat.buffer.shape[0] == 500

        # The pause button in the page reaches the pipeline's should_pause().
        page.get_by_role("button", name="Pause").click()
        _wait(obs.should_pause, "the pause click to reach the observer")
        page.get_by_role("button", name="Resume").click()
        _wait(lambda: not obs.should_pause(), "the resume click to reach the observer")


@pytest.mark.slow
def test_a_run_with_the_viewer_shows_the_splat_growing(tmp_path: Path, page: Page, scene) -> None:
    """`recon run --viewer` in miniature: the pipeline in a thread, a browser watching. The run is
    paused from the page before it starts, so the init state is on screen however fast the
    machine is; after Resume the page must reach the grown, final splat."""
    import threading

    from test_pipeline import tiny_config

    from recon.events import Observers
    from recon.pipeline import run_pipeline

    cfg = tiny_config(60)
    with ViewerObserver(port=0, interval=0.2) as obs:
        page.goto(obs.url)
        client = _client(obs.server)
        # Hide the training cameras: their photos would be in the screenshots too.
        page.get_by_label("Cameras", exact=True).uncheck()
        _wait(lambda: obs.app._show_cameras.value is False, "the Cameras checkbox")
        page.get_by_role("button", name="Pause").click()
        _wait(obs.should_pause, "the pause click")
        result: dict = {}
        worker = threading.Thread(target=lambda: result.update(
            run=run_pipeline(cfg, tmp_path, Observers([obs]), scene=scene, scene_key="s")))
        worker.start()
        # viser's read-only fields are not tied to their labels: find the input after the text.
        field = page.locator('xpath=//*[normalize-space(text())="Gaussians"]/following::input[1]')
        _wait(lambda: field.input_value() == "300" or None, "the random init (300) in the page")
        _wait(lambda: len(obs.app.frustums) == len(scene.views) or None, "the camera frustums")
        assert not any(f.visible for f in obs.app.frustums)
        time.sleep(1.0)  # let the page draw the init state (the count above arrives with it)
        init = _screenshot(page)
        Image.fromarray(init.astype(np.uint8)).save(tmp_path / "init.png")
        assert worker.is_alive(), "the run went on although paused"
        page.get_by_role("button", name="Resume").click()
        worker.join(timeout=600)
        assert "run" in result, "the pipeline did not finish"
        obs.flush()
        final = result["run"].artifacts["optimize"].gaussians
        assert len(final) > 300  # densification grew it
        _wait(lambda: field.input_value() == str(len(final)) or None, "the final count in the page")
        time.sleep(1.0)
        img = _screenshot(page)
        Image.fromarray(img.astype(np.uint8)).save(tmp_path / "run.png")
        # The fitted ball (coloured by position, centred on the origin) is where the camera says.
        saturated = (img.max(-1) - img.min(-1)) > 60
        assert saturated.mean() > 0.03
        ys, xs = np.nonzero(saturated)
        want = _expected_pixel(client, np.zeros(3))
        assert np.linalg.norm([xs.mean() - want[0], ys.mean() - want[1]]) < 0.1 * VIEWPORT["width"]
    # What the page showed changed between the init and the end of the run.
    assert np.abs(img - init).mean() > 5
