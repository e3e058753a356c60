"""recon: sparse-view 3D Gaussian splatting from a handful of photos."""

__version__ = "0.1.0"
