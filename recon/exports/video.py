"""A flythrough video of a splat (H.264 .mp4 through imageio-ffmpeg), rendered by recon's renderer
along a smooth path: a spline through the training cameras, or an orbit about the object."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon.errors import ReconError
from recon.exports.bar import progress_bar
from recon.exports.camera_paths import at_size, camera_spline, orbit_cameras, order_around, scene_frame
from recon.render.views import SplatRenderer
from recon.gaussians import Gaussians
from recon.scene import Camera

INSTALL_HINT = "--format video needs imageio-ffmpeg: pip install 'recon[video]'"


@dataclass
class VideoSettings:
    path: str = "cameras"
    """cameras: a spline through the training cameras (ordered around the object); orbit: one turn
    about the object at the cameras' distance and mean elevation."""
    seconds: float = 8.0
    fps: int = 30
    size: tuple[int, int] | None = None
    """(width, height), both even; default the first camera's size, rounded down to even."""
    crf: int = 18
    """H.264 constant rate factor: 18 is visually lossless, higher is smaller."""


def frame_size(cameras: list[Camera], settings: VideoSettings) -> tuple[int, int]:
    if settings.size is None:
        w, h = cameras[0].width, cameras[0].height
        return max(w - w % 2, 2), max(h - h % 2, 2)
    w, h = settings.size
    if w < 2 or h < 2 or w % 2 or h % 2:
        raise ReconError(f"--size {w} {h}: width and height must be even and at least 2 (H.264 in 4:2:0)")
    return int(w), int(h)


def video_cameras(cameras: list[Camera], settings: VideoSettings) -> list[Camera]:
    """One camera per frame, round(seconds × fps) of them, at the frame size."""
    if not cameras:
        raise ReconError("a video needs the run's cameras (cameras.json)")
    if not settings.seconds > 0 or settings.fps < 1:
        raise ReconError(f"--seconds {settings.seconds} --fps {settings.fps}: both must be positive")
    n = max(int(round(settings.seconds * settings.fps)), 2)
    w, h = frame_size(cameras, settings)
    frame = scene_frame(cameras)
    if settings.path == "cameras":
        if len(cameras) < 2:
            raise ReconError("--path cameras needs at least two cameras; use --path orbit")
        return [at_size(c, w, h) for c in camera_spline(order_around(cameras, frame), n, frame)]
    if settings.path == "orbit":
        return orbit_cameras(frame, at_size(cameras[0], w, h), n, start=cameras[0].center)
    raise ReconError(f"unknown video path '{settings.path}' (cameras or orbit)")


def write_video(path: Path, g: Gaussians, cameras: list[Camera], settings: VideoSettings | None = None,
                device: str = "auto", progress: bool = True) -> int:
    """Render and encode the video to `path` (.mp4), atomically; returns the number of frames."""
    settings = settings or VideoSettings()
    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise ReconError(f"a video is written as .mp4, not '{path.suffix}'", path)
    try:
        import imageio_ffmpeg
    except ImportError:
        raise ReconError(INSTALL_HINT) from None
    views = video_cameras(cameras, settings)
    renderer = SplatRenderer(g, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.stem}.{os.getpid()}.tmp.mp4"
    writer = imageio_ffmpeg.write_frames(
        str(tmp), (views[0].width, views[0].height), fps=settings.fps, codec="libx264", pix_fmt_out="yuv420p",
        quality=None, macro_block_size=1, ffmpeg_log_level="error",
        output_params=["-crf", str(settings.crf), "-movflags", "+faststart"])
    try:
        writer.send(None)  # starts ffmpeg
        with progress_bar(f"video: {len(views)} frames", len(views), progress) as step:
            for cam in views:
                rgb = renderer.render(cam).rgb
                writer.send(np.ascontiguousarray((rgb * 255 + 0.5).astype(np.uint8)))
                step()
        writer.close()
        os.replace(tmp, path)
    except OSError as e:
        raise ReconError(f"cannot write ({e.strerror or e})", path) from None
    finally:
        writer.close()
        if tmp.exists():
            tmp.unlink()
    return len(views)
