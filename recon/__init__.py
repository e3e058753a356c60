"""recon: sparse-view 3D Gaussian splatting from a handful of photos."""

import os
import warnings

# Idle OpenMP threads of torch spin by default; beside numba's own threads on a small CPU that
# spinning took 17x the projection's time in scripts/bench_raster.py. But threads that sleep at
# once pay a wake-up at every one of a step's ~200 parallel regions: a short spin before sleeping
# (GOMP_SPINCOUNT, which libgomp honours with PASSIVE) made the fast preset's optimise stage
# 1.2-1.3x faster on 2 cores (docs/experiments.md, Speed). Both must be set before torch loads
# its OpenMP runtime, hence here. A user's own settings win.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "30000")

# open3d's wheel bundles an older TBB; numba's kernels, finding it loaded (open3d is imported by
# the init stage's outlier removal and the mesh export), warn that they cannot use it and run on
# OpenMP, as they do without open3d. Nothing for a user to act on.
warnings.filterwarnings("ignore", message="The TBB threading layer requires TBB version")

__version__ = "0.1.0"
