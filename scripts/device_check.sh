#!/usr/bin/env bash
# GPU readiness in one call, on a fresh CUDA machine that reaches no package registry: install what
# it lacks from the wheels that travel with the tree (.whl/, made here by `scripts/device_check.sh
# --download`, kept out of git), then scripts/device_check.py: recon's cpu backend against gsplat,
# `auto` following the tensors, a fast-preset optimisation end to end on CUDA, one verdict line.
# Needs nothing from ../shared. Budget: about 5 minutes (gsplat compiles its CUDA code on first
# use, about one; numba compiles the cpu kernels once). Extra arguments go to device_check.py.
#
#   scripts/device_check.sh --download   # here, with PyPI: fetch the wheels for the GPU machine
#   scripts/device_check.sh [--quick]    # there (device tool: carry .whl)
set -euo pipefail
cd "$(dirname "$0")/.."
# What the GPU machine (Python 3.12, torch 2.11 + CUDA 13, numba, numpy, scipy, imageio, pillow,
# pyyaml, rich, jaxtyping, ninja already there) lacks for recon's import graph.
WHEELS=(gsplat==1.5.3 tyro==1.0.17 docstring-parser==0.18.0 typeguard==4.6.1 plyfile==1.1.5)

if [ "${1:-}" = "--download" ]; then
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any -d .whl "${WHEELS[@]}"
  ls -la .whl
  exit 0
fi

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/recon-site \
    .whl/*.whl
  export PYTHONPATH=/tmp/recon-site${PYTHONPATH:+:$PYTHONPATH}
fi
if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch" 2>/dev/null; then PY=.venv/bin/python; else PY=python3; fi
export OMP_WAIT_POLICY=PASSIVE                 # libgomp spin-waiting wastes oversubscribed cores
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"        # gsplat's CUDA build: all cores
export PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c "import torch, gsplat, numba; print('torch', torch.__version__, 'gsplat', gsplat.__version__, 'numba', numba.__version__)"
exec timeout "${DEVICE_CHECK_TIMEOUT:-480}" "$PY" scripts/device_check.py "$@"
