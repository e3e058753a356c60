"""recon's browser viewer (viser): watch a run's splat form live, or open a finished one.

Entry points for the CLI:
  view(path, host, port)                  `recon view RUN_DIR | FILE.ply`, blocks until Ctrl-C
  start_live_viewer(host, port)           `recon run --viewer`: a ViewerObserver that streams the run
"""

from .live import ViewerObserver, start_live_viewer
from .server import DEFAULT_HOST, DEFAULT_PORT, start_server, stop_server, viewer_url
from .splats import SplatArrays, frame_bounds, robust_bounds, to_splat_arrays
from .view import ViewSession, load, view

__all__ = [
    "DEFAULT_HOST", "DEFAULT_PORT", "SplatArrays", "ViewSession", "ViewerObserver", "frame_bounds",
    "load", "robust_bounds", "start_live_viewer", "start_server", "stop_server", "to_splat_arrays", "view", "viewer_url",
]
