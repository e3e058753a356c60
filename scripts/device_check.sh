#!/usr/bin/env bash
# One short run on a CUDA machine: recon's cpu backend against gsplat on random scenes (image and
# gradients of all five Gaussian tensors) and gsplat's timings on the same cases, as one table.
# Budget: a few minutes (gsplat compiles its CUDA code on first use, about one; numba compiles the
# cpu kernels once, then caches them). Extra arguments go to scripts/device_check.py (--quick).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY="${PYTHON:-python3}"; fi
export OMP_WAIT_POLICY=PASSIVE  # libgomp spin-waiting wastes cores when they are oversubscribed
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c "import torch, gsplat, numba; print('torch', torch.__version__, 'gsplat', gsplat.__version__, 'numba', numba.__version__)"
exec timeout "${DEVICE_CHECK_TIMEOUT:-540}" "$PY" scripts/device_check.py "$@"
