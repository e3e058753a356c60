"""Viewer unit tests (no browser): splat conversion, framing, port fallback, the observer's
threading and lifetime, run-folder loading, `view` exiting on a signal."""

from __future__ import annotations

import importlib
import io
import json
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from recon.gaussians import Gaussians, rgb_to_sh0
from recon.io.ply import write_ply
from recon.scene import Camera
from recon_viewer import live, server as vserver, splats
from recon_viewer.app import client_camera, depth_to_rgb, render_exact

# The package exports the function `view`, which shadows the module of the same name.
vview = importlib.import_module("recon_viewer.view")


def _gaussians(n: int = 50, seed: int = 0) -> Gaussians:
    rng = np.random.default_rng(seed)
    return Gaussians.from_points(rng.normal(size=(n, 3)), rng.uniform(size=(n, 3)), opacity=0.7, scale=0.05)


def _random_rotation(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    R = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])
    return q, R


# --- splat conversion ---------------------------------------------------------------------------
def test_covariance_is_rotated_diagonal_of_squared_scales() -> None:
    rng = np.random.default_rng(1)
    q, R = _random_rotation(rng)
    s = np.array([0.5, 0.1, 2.0])
    cov = splats.covariances((q * 3.0)[None], np.log(s)[None])[0]  # unnormalised quat on purpose
    np.testing.assert_allclose(cov, R @ np.diag(s**2) @ R.T, atol=1e-5)
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(cov)), np.sort(s**2), rtol=1e-4)


def test_zero_quaternion_is_identity_and_huge_scales_stay_float16_finite() -> None:
    cov = splats.covariances(np.zeros((1, 4)), np.log(np.array([[1e4, 1.0, 1e-3]])))
    assert np.isfinite(cov.astype(np.float16)).all()
    assert cov[0, 1, 1] == pytest.approx(1.0, rel=1e-5)
    assert cov[0, 0, 1] == 0


def test_to_splat_arrays_activates_and_drops_non_finite() -> None:
    g = _gaussians(5)
    g.sh0[:, 0] = rgb_to_sh0(torch.tensor([[0.2, 0.4, 0.9]])).expand(5, 3)
    g.opacities[:] = 0.0  # logit 0 → 0.5
    g.means[2, 0] = float("nan")
    g.scales[3, 1] = float("inf")
    a = splats.to_splat_arrays(g)
    assert len(a) == 3
    assert a.centers.shape == (3, 3) and a.covariances.shape == (3, 3, 3)
    assert a.rgbs.shape == (3, 3) and a.opacities.shape == (3, 1)
    np.testing.assert_allclose(a.rgbs, np.tile([0.2, 0.4, 0.9], (3, 1)), atol=1e-5)
    np.testing.assert_allclose(a.opacities, 0.5)
    np.testing.assert_allclose(a.centers, g.means[[0, 1, 4]].numpy())


def test_to_splat_arrays_handles_degree_zero_and_empty() -> None:
    g = Gaussians.from_points(np.zeros((0, 3)), np.zeros((0, 3)), sh_degree=0, scale=0.1)
    a = splats.to_splat_arrays(g)
    assert len(a) == 0 and a.covariances.shape == (0, 3, 3)


# --- framing ------------------------------------------------------------------------------------
def test_robust_bounds_ignore_outliers_and_invisible_gaussians() -> None:
    rng = np.random.default_rng(2)
    body = rng.uniform(-1, 1, size=(1000, 3)) + [2.0, 3.0, 4.0]
    floaters = rng.uniform(-1, 1, size=(30, 3)) * 1e4
    haze = rng.uniform(-50, 50, size=(500, 3))  # transparent: must not count
    pts = np.concatenate([body, floaters, haze])
    opac = np.concatenate([np.full(1030, 0.9), np.full(500, 0.01)])
    centre, radius = splats.robust_bounds(pts, opac)
    np.testing.assert_allclose(centre, [2, 3, 4], atol=0.15)
    assert 1.0 < radius < 2.0  # half the diagonal of the 5–95% box of a 2-unit cube ≈ 1.56


def test_robust_bounds_degenerate_inputs() -> None:
    centre, radius = splats.robust_bounds(np.full((3, 3), 5.0))
    np.testing.assert_allclose(centre, 5.0)
    assert radius > 0
    centre, radius = splats.robust_bounds(np.full((4, 3), np.nan))
    assert np.isfinite(centre).all() and radius > 0


def test_frame_bounds_sees_the_whole_sphere() -> None:
    centre, radius = np.array([1.0, 2.0, 3.0]), 0.5
    f = splats.frame_bounds(centre, radius, fov=np.deg2rad(40))
    offset = f.position - centre
    # The sphere's angular radius fits in half the (vertical) fov, with margin.
    assert np.arcsin(radius / np.linalg.norm(offset)) < f.fov / 2 * 0.9
    np.testing.assert_allclose(f.look_at, centre)
    assert offset[2] < 0  # in front of the splat, looking along +z as OpenCV cameras do
    np.testing.assert_allclose(f.up, [0, -1, 0])


def test_camera_framing_starts_behind_and_above_the_first_training_camera() -> None:
    from synthetic import ring_cameras

    cams = ring_cameras(4)  # z-up ring at radius 4, elevation 1, looking at the origin
    f = splats.camera_framing(cams, np.zeros(3), back=1.5, lift_deg=20)
    np.testing.assert_allclose(f.look_at, np.zeros(3), atol=1e-6)
    assert f.up @ np.array([0, 0, 1.0]) > 0.9
    to_cam, to_start = cams[0].center - f.look_at, f.position - f.look_at
    assert np.linalg.norm(to_start) == pytest.approx(1.5 * np.linalg.norm(to_cam))
    angle = np.degrees(np.arccos(to_cam @ to_start / np.linalg.norm(to_cam) / np.linalg.norm(to_start)))
    assert angle == pytest.approx(20)
    assert f.position[2] > cams[0].center[2] + 1  # raised, so the camera's photo is below the view
    assert f.fov == pytest.approx(2 * np.arctan(cams[0].height / 2 / cams[0].K[1, 1]))


# --- server -------------------------------------------------------------------------------------
def test_busy_port_falls_back_and_says_so_and_thread_stops() -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    busy = blocker.getsockname()[1]
    out = io.StringIO()
    try:
        srv = vserver.start_server("127.0.0.1", busy, out=out)
        try:
            assert srv.get_port() != busy
            assert f"port {busy} is busy, using {srv.get_port()}" in out.getvalue()
            assert f"http://127.0.0.1:{srv.get_port()}" in out.getvalue()
        finally:
            vserver.stop_server(srv)
        thread = vserver.server_thread(srv)
        assert thread is not None and not thread.is_alive()
    finally:
        blocker.close()


# --- the live observer --------------------------------------------------------------------------
def test_observer_streams_throttles_pauses_and_stops() -> None:
    before = set(threading.enumerate())
    obs = live.ViewerObserver(port=0, interval=3600.0)  # after the first push, only close() pushes
    try:
        obs.stage_started("optimize")
        obs.gaussians_updated(_gaussians(10), 0)
        obs.flush(timeout=10.0)  # the first push is sent at once; only then do the updates race the throttle
        for step in range(1, 20):
            obs.gaussians_updated(_gaussians(10 + step), step)
        obs.step_metrics(19, {"loss": 0.125, "psnr": 21.5, "gaussians": 29})
        obs.flush(timeout=2.0)  # throttled: the latest state waits for the interval or close()
        assert obs.pushes == 1
        assert not obs.should_pause()
        obs.app.toggle_pause()
        assert obs.should_pause()
        obs.app.toggle_pause()
        assert not obs.should_pause()
    finally:
        obs.close()
    assert obs.pushes == 2  # the final state is always sent
    assert obs.app._splat is not None and obs.app._splat.buffer.shape[0] == 29
    assert obs.app._fields["Stage"].value == "optimize"
    assert obs.app._fields["PSNR"].value == "21.5"
    obs.close()  # idempotent
    lingering = [t for t in set(threading.enumerate()) - before if t.is_alive() and not t.daemon]
    assert not lingering
    assert not obs._worker.is_alive() and not vserver.server_thread(obs.server).is_alive()


def test_observer_draws_scene_cameras(scene) -> None:
    with live.ViewerObserver(port=0) as obs:
        obs.scene_ready(scene)
        obs.gaussians_updated(_gaussians(), 0)
        obs.flush()
        deadline = threading.Event()
        for _ in range(200):  # the scene is drawn by the worker; wait for it (≤ 10 s)
            if len(obs.app.frustums) == len(scene.views):
                break
            deadline.wait(0.05)
        assert len(obs.app.frustums) == len(scene.views)
        assert obs.app.frustums[0].image is not None
        obs.app._show_cameras.value = False  # what the "Cameras" checkbox does
        assert not any(f.visible for f in obs.app.frustums)
    start = splats.camera_framing(scene.cameras, scene.bounds()[0])
    np.testing.assert_allclose(obs.server.initial_camera.position, start.position)


def test_observer_shows_a_stages_pictures_and_replaces_them() -> None:
    """The repair rounds' render | repaired | confidence reach the panel; a later round replaces
    the earlier one's (fewer pictures: the extra handles go), and another stage's pictures (the
    filters' trust maps) stay beside them in their own folder."""
    def wait_for(group: str, count: int) -> tuple:
        for _ in range(200):  # drawn by the worker (≤ 10 s)
            shown = getattr(obs.app, "_pictures", {}).get(group)
            if shown is not None and len(shown[2]) == count:
                return shown
            threading.Event().wait(0.05)
        raise AssertionError(f"{group}: {count} pictures never shown")

    with live.ViewerObserver(port=0) as obs:
        big = np.linspace(0, 1, 300 * 1000 * 3, dtype=np.float32).reshape(300, 1000, 3)
        obs.images_ready("filters: photo | trust | removed", [big, big])
        _, heading, handles = wait_for("filters", 2)
        assert "trust" in heading.content and max(handles[0].image.shape[:2]) <= 480
        obs.images_ready("repair: round 1", [big, big, big])
        _, heading, handles = wait_for("repair", 3)
        assert "round 1" in heading.content
        obs.images_ready("repair: round 2", [np.zeros((20, 30, 3), np.float32)])
        _, heading, handles = wait_for("repair", 1)
        assert "round 2" in heading.content and handles[0].image.shape == (20, 30, 3)
        assert len(obs.app._pictures["filters"][2]) == 2  # untouched by the repair rounds
        assert obs.errors == 0


# --- exact render -------------------------------------------------------------------------------
class _FakeCameraHandle:
    def __init__(self, wxyz, position, fov=np.deg2rad(60), aspect=2.0) -> None:
        self.wxyz, self.position, self.fov, self.aspect = np.asarray(wxyz), np.asarray(position), fov, aspect


def test_client_camera_puts_look_direction_at_image_centre() -> None:
    import viser.transforms as vtf

    q = vtf.SO3.from_rpy_radians(0.3, -0.2, 1.0).wxyz
    cam = client_camera(_FakeCameraHandle(q, [1.0, 2.0, 3.0]), max_side=200)
    assert (cam.width, cam.height) == (200, 100)
    np.testing.assert_allclose(cam.center, [1, 2, 3], atol=1e-9)
    pix, z = cam.project((cam.center + 5 * cam.forward)[None])
    np.testing.assert_allclose(pix[0], [100, 50], atol=1e-6)
    assert 2 * np.arctan(cam.height / 2 / cam.K[1, 1]) == pytest.approx(np.deg2rad(60))


def test_exact_render_of_a_blob_is_centred() -> None:
    pytest.importorskip("recon.render")
    from synthetic import colored_blob, look_at

    w2c = look_at(np.array([0.0, -4.0, 0.0]), np.zeros(3))
    cam = Camera(K=np.array([[60.0, 0, 40], [0, 60.0, 30], [0, 0, 1]]), world_to_cam=w2c, width=80, height=60)
    g = colored_blob(200)
    alpha = render_exact(g, cam, "Exact alpha")[..., 0] / 255.0
    assert alpha.shape == (60, 80)
    ys, xs = np.nonzero(alpha > 0.5)
    assert abs(xs.mean() - 40) < 3 and abs(ys.mean() - 30) < 3
    assert alpha[0, 0] < 0.05  # the corner is empty
    rgb = render_exact(g, cam, "Exact RGB")
    assert rgb[30, 40].max() > 60
    depth = render_exact(g, cam, "Exact depth")
    assert depth[0, 0].max() == 0 and depth[30, 40].max() > 100


def test_depth_to_rgb_is_brighter_when_nearer() -> None:
    alpha = np.ones((1, 3))
    out = depth_to_rgb(np.array([[1.0, 2.0, 3.0]]), alpha)
    assert out[0, 0, 0] > out[0, 1, 0] > out[0, 2, 0]
    assert depth_to_rgb(np.ones((2, 2)), np.zeros((2, 2))).max() == 0


# --- loading runs and plys ----------------------------------------------------------------------
def test_load_run_dir_with_tolerant_cameras_json(tmp_path: Path) -> None:
    from synthetic import ring_cameras

    write_ply(tmp_path / "splat.ply", _gaussians())
    cams = ring_cameras(3)
    entries: list[dict] = [
        {"name": f"v{i}", "width": c.width, "height": c.height, "K": c.K.tolist(),
         "world_to_cam": c.world_to_cam.tolist(), "extra": "ignored"}
        for i, c in enumerate(cams)
    ]
    entries.append({"name": "broken", "width": 10})  # no K/pose: skipped, not fatal
    entries[1] = {"width": cams[1].width, "height": cams[1].height, "fx": cams[1].K[0, 0], "fy": cams[1].K[1, 1],
                  "cam_to_world": cams[1].cam_to_world.tolist()}
    (tmp_path / "cameras.json").write_text(json.dumps(entries))
    loaded = vview.load(tmp_path)
    assert loaded.ply == tmp_path / "splat.ply" and len(loaded.gaussians) == 50
    assert len(loaded.cameras) == 3
    np.testing.assert_allclose(loaded.cameras[1].world_to_cam, cams[1].world_to_cam, atol=1e-9)


def test_view_of_a_run_shows_its_trust_maps_and_last_repair_round(tmp_path: Path) -> None:
    from recon.io.images import save_image

    write_ply(tmp_path / "splat.ply", _gaussians())
    assert vview.load(tmp_path).pictures == {}
    for name in ("v0", "v1", "contact"):  # contact.png is the overview, not a view
        save_image(tmp_path / "filters" / f"{name}.png", np.full((8, 24, 3), 0.5, np.float32))
    for r, n in ((1, 3), (2, 2), (10, 1)):  # round 10 is the last, not round 2 (numeric order)
        for k in range(n):
            save_image(tmp_path / "repair" / f"round_{r}" / f"view_{k:02d}.png", np.zeros((8, 24, 3), np.float32))
    pictures = vview.load(tmp_path).pictures
    assert {t: len(p) for t, p in pictures.items()} == {
        "filters: photo | trust | removed": 2, "repair: round 10 (render | repaired | confidence)": 1}
    server = vserver.start_server("127.0.0.1", 0)
    try:
        app = vview.show(server, vview.load(tmp_path))
        assert set(app._pictures) == {"filters", "repair"} and len(app._pictures["filters"][2]) == 2
    finally:
        vserver.stop_server(server)


def test_find_ply_layouts(tmp_path: Path) -> None:
    for it in (7000, 30000):
        write_ply(tmp_path / f"point_cloud/iteration_{it}/point_cloud.ply", _gaussians(3))
    assert vview.find_ply(tmp_path).parent.name == "iteration_30000"
    other = tmp_path / "other"
    other.mkdir()
    from recon.errors import ReconError

    with pytest.raises(ReconError, match="found: none"):
        vview.find_ply(other)
    write_ply(other / "mine.ply", _gaussians(3))
    assert vview.find_ply(other) == other / "mine.ply"


def _wait_for_handler(pid: int, sig: int) -> None:
    """Wait until process `pid` catches `sig` (its SigCgt mask in /proc), so sending it tests the
    handler rather than racing its installation."""
    for _ in range(600):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:") and int(line.split()[1], 16) >> (sig - 1) & 1:
                return
        threading.Event().wait(0.05)
    raise AssertionError(f"process {pid} never installed a handler for signal {sig}")


def test_view_exits_cleanly_on_sighup_and_sigint(tmp_path: Path) -> None:
    """Closing the terminal (SIGHUP) or Ctrl-C (SIGINT) stops `view` with status 0."""
    write_ply(tmp_path / "splat.ply", _gaussians())
    code = f"from recon_viewer import view; from pathlib import Path; view(Path({str(tmp_path)!r}), port=0)"
    for sig in (signal.SIGHUP, signal.SIGINT):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()  # printed once the server is up
            assert "Ctrl-C to stop" in line, proc.stderr.read() if proc.poll() is not None else line
            _wait_for_handler(proc.pid, sig)
            proc.send_signal(sig)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_serve_forever_after_a_run_exits_cleanly_on_sighup() -> None:
    """`recon run --viewer` keeps showing the result; closing the terminal must end it cleanly."""
    code = ("from recon_viewer import start_live_viewer; obs = start_live_viewer(port=0); "
            "print('serving', flush=True); obs.serve_forever(); print('closed', flush=True)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "serving"
        _wait_for_handler(proc.pid, signal.SIGHUP)
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
        assert "closed" in proc.stdout.read().split()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_missing_path_raises_before_starting_a_server(tmp_path: Path) -> None:
    from recon.errors import ReconError

    before = threading.active_count()
    with pytest.raises(ReconError, match="no such file"):
        vview.ViewSession(tmp_path / "nope.ply", port=0)
    assert threading.active_count() == before



@pytest.mark.slow
def test_pipeline_run_streams_into_the_viewer_and_view_reopens_it(tmp_path: Path, scene) -> None:
    """The real pipeline with the observer attached; then the run folder opened by `view`."""
    from test_pipeline import tiny_config

    from recon.events import Observers
    from recon.pipeline import run_pipeline

    with live.ViewerObserver(port=0, interval=0.0) as obs:
        result = run_pipeline(tiny_config(40), tmp_path, Observers([obs]), scene=scene, scene_key="s")
        obs.flush()
    final = result.artifacts["optimize"].gaussians
    assert obs.pushes >= 2  # init, then optimisation states
    assert obs.app._splat.buffer.shape[0] == int(splats.finite_mask(final).sum())
    assert len(obs.app.frustums) == len(scene.views)
    assert obs.app._fields["Stage"].value.startswith("export")

    loaded = vview.load(tmp_path)
    assert len(loaded.cameras) == len(scene.views) and len(loaded.gaussians) == len(final)
    # Thumbnails come from the right half of renders/<name>.png: the photo.
    np.testing.assert_allclose(loaded.images[0] / 255.0, scene.views[0].image, atol=1 / 255 + 1e-6)
    with vview.ViewSession(tmp_path, port=0) as session:
        assert len(session.app.frustums) == len(scene.views)
        up = session.server.initial_camera.up
        assert session.server.initial_camera.position @ up > scene.views[0].camera.center @ up


def test_a_failing_update_is_reported_once_and_never_reaches_the_pipeline(capsys) -> None:
    with live.ViewerObserver(port=0, interval=0.0) as obs:
        for step in range(3):
            obs.gaussians_updated("not gaussians", step)  # type: ignore[arg-type]
            obs.flush()
        obs.gaussians_updated(_gaussians(7), 3)
        obs.flush()
    assert obs.errors == 3 and obs.pushes == 1
    assert capsys.readouterr().err.count("update failed") == 1
