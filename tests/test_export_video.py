"""`recon export --format video`: N frames at the asked size whose first and last frames are the
renders from the path's ends; the camera paths (a spline through the cameras, an orbit); errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from splat_shapes import write_run
from synthetic import colored_blob, ring_cameras

from recon.cli import main
from recon.errors import ReconError
from recon.exports.camera_paths import at_size, camera_spline, orbit_cameras, order_around, scene_frame
from recon.render.views import SplatRenderer
from recon.exports.video import VideoSettings, video_cameras, write_video


def read_frames(path) -> tuple[list[np.ndarray], tuple[int, int]]:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = reader.__next__()
    w, h = meta["size"]
    return [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader], (w, h)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-12)))


def arc_cameras():
    """Four cameras on a quarter of a ring, handed over out of order."""
    ring = ring_cameras(16, 80, 60, radius=4.0, elevation=1.0)
    return [ring[2], ring[0], ring[3], ring[1]]


@pytest.mark.parametrize("path", ["cameras", "orbit"])
def test_n_frames_at_the_size_starting_and_ending_at_the_paths_ends(tmp_path, path):
    pytest.importorskip("imageio_ffmpeg")
    g, cams = colored_blob(), arc_cameras()
    settings = VideoSettings(path=path, seconds=1.0, fps=12, size=(64, 48))
    out = tmp_path / "v.mp4"
    assert write_video(out, g, cams, settings, device="cpu", progress=False) == 12
    frames, size = read_frames(out)
    assert len(frames) == 12 and size == (64, 48) and frames[0].shape == (48, 64, 3)
    views = video_cameras(cams, settings)
    renderer = SplatRenderer(g, "cpu")
    first, last = (np.round(renderer.render(c).rgb * 255) for c in (views[0], views[-1]))
    if path == "cameras":  # the ends are the end cameras of the arc, ring[0] and ring[3]
        ring = ring_cameras(16, 80, 60, radius=4.0, elevation=1.0)
        assert np.allclose(views[0].world_to_cam, ring[0].world_to_cam, atol=1e-6)
        assert np.allclose(views[-1].world_to_cam, ring[3].world_to_cam, atol=1e-6)
        assert np.allclose(views[0].K, at_size(ring[0], 64, 48).K)
    # H.264 (crf 18, 4:2:0 chroma) keeps tiny frames at ≈ 35-37 dB of the renders they encode;
    # the two ends differ by ≈ 16-22 dB
    assert psnr(frames[0], first) > 32 and psnr(frames[-1], last) > 32
    assert psnr(frames[0], last) < 25 and psnr(frames[-1], first) < 25
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_the_spline_passes_through_every_camera_smoothly():
    cams = order_around(arc_cameras(), scene_frame(arc_cameras()))
    path = camera_spline(cams, 301, scene_frame(cams))
    centres = np.stack([c.center for c in path])
    for cam in cams:  # each camera is on the path (to within a frame's step)
        assert np.linalg.norm(centres - cam.center, axis=1).min() < 0.02
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    assert steps.max() / steps.min() < 1.5  # no zigzag, no stops
    ahead = [c.forward @ (np.zeros(3) - c.center) / np.linalg.norm(c.center) for c in path]
    assert min(ahead) > 0.99  # every frame looks at the object, as the cameras do


def test_the_orbit_circles_the_object_at_the_cameras_distance():
    cams = ring_cameras(5, 80, 60, radius=4.0, elevation=1.0)
    frame = scene_frame(cams)
    assert np.allclose(frame.centre, 0, atol=1e-6) and np.allclose(frame.up, [0, 0, 1], atol=1e-6)
    orbit = orbit_cameras(frame, cams[0], 8, start=cams[0].center)
    centres = np.stack([c.center for c in orbit])
    assert np.allclose(np.linalg.norm(centres, axis=1), np.linalg.norm(cams[0].center))
    assert np.allclose(centres[:, 2], 1.0) and np.allclose(centres[0], cams[0].center)
    az = np.unwrap(np.arctan2(centres[:, 1], centres[:, 0]))
    assert np.allclose(np.diff(az), 2 * np.pi / 8)
    assert all(c.forward @ -c.center / np.linalg.norm(c.center) > 0.9999 for c in orbit)


@pytest.mark.parametrize("settings, message", [
    (VideoSettings(size=(63, 48)), "must be even"),
    (VideoSettings(seconds=0), "must be positive"),
    (VideoSettings(path="spiral"), "unknown video path"),
])  # fmt: skip
def test_bad_settings_are_one_line_errors(settings, message):
    with pytest.raises(ReconError, match=message):
        video_cameras(arc_cameras(), settings)


def test_one_camera_cannot_make_a_spline():
    with pytest.raises(ReconError, match="use --path orbit"):
        video_cameras(arc_cameras()[:1], VideoSettings())
    assert len(video_cameras(arc_cameras()[:1], VideoSettings(path="orbit", seconds=1, fps=4))) == 4


def test_the_cli_writes_the_video_and_checks_its_suffix(tmp_path, capsys):
    pytest.importorskip("imageio_ffmpeg")
    write_run(tmp_path, colored_blob(), arc_cameras())
    args = ["export", str(tmp_path), "--format", "video", "--seconds", "0.5", "--fps", "8", "--size", "32", "24",
            "--device", "cpu"]
    assert main(args) == 0
    frames, size = read_frames(tmp_path / "flythrough.mp4")
    assert len(frames) == 4 and size == (32, 24)
    assert main(args + ["--out", str(tmp_path / "v.gif")]) == 2
    assert "a video is written as .mp4" in capsys.readouterr().err


def test_without_imageio_ffmpeg_the_command_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    write_run(tmp_path, colored_blob(), arc_cameras())
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    assert main(["export", str(tmp_path), "--format", "video"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'recon[video]'" in err
