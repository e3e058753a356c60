"""recon: sparse-view 3D Gaussian splatting from a handful of photos."""

import os

# Idle OpenMP threads of torch spin by default; beside numba's own threads on a small CPU that
# spinning took 17x the projection's time in scripts/bench_raster.py. It must be set before torch
# loads its OpenMP runtime, hence here. A user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
