#!/usr/bin/env bash
# OpenSplat 1.2.0 against recon, side by side, on OpenSplat's fox setup (issue 26, item 4).
#
#   scripts/bench_opensplat.sh OPENSPLAT_SRC [STEPS] [ROUNDS]
#
# OPENSPLAT_SRC: an OpenSplat 1.2.0 source tree (github WebODM/OpenSplat, tag v1.2.0), e.g.
#   git clone --branch v1.2.0 https://github.com/WebODM/OpenSplat /tmp/opensplat-src
# Builds it CPU-only into $OPENSPLAT_BUILD (default /tmp/opensplat-build; reused when there)
# against the LibTorch of the installed torch wheel and Debian's libopencv-dev (installed with
# apt-get when missing and run as root), writes the fox setup (instant-ngp fox 4× downscaled,
# 20,000 random points: scripts/bench_fox_step.py --write-opensplat), then runs, ROUNDS times in
# turn, OpenSplat --cpu and recon's same step (bench_fox_step.py), both with 2 threads, and prints
# both per-step times. Nothing of OpenSplat is committed; not part of CI.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SRC="${1:?usage: $0 OPENSPLAT_SRC [STEPS] [ROUNDS]}"
STEPS="${2:-60}"
ROUNDS="${3:-2}"
BUILD="${OPENSPLAT_BUILD:-/tmp/opensplat-build}"
WORK="${OPENSPLAT_WORK:-/tmp/opensplat-fox}"
PY="${PYTHON:-python}"
THREADS="${THREADS:-2}"
SRC="$(cd "$SRC" && pwd)"

if [ "$(cat "$SRC/VERSION" 2>/dev/null)" != "1.2.0" ]; then
  echo "warning: $SRC/VERSION is not 1.2.0" >&2
fi

if [ ! -x "$BUILD/opensplat" ]; then
  if [ ! -e /usr/include/opencv4/opencv2/core.hpp ]; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopencv-dev >/dev/null
    else
      echo "OpenCV headers missing: apt-get install libopencv-dev (as root)" >&2
      exit 1
    fi
  fi
  TORCH_CMAKE="$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')"
  mkdir -p "$BUILD"
  # GPU_RUNTIME=CPU: the CPU rasterizer only; precompiled headers off (they need more memory
  # than they save time on 2 cores).
  cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGPU_RUNTIME=CPU \
    -DOPENSPLAT_USE_PCH=OFF -DCMAKE_PREFIX_PATH="$TORCH_CMAKE" >"$BUILD/cmake.log" 2>&1 \
    || { tail -30 "$BUILD/cmake.log"; exit 1; }
  start=$(date +%s)
  cmake --build "$BUILD" -j "$(nproc)" --target opensplat >"$BUILD/build.log" 2>&1 \
    || { tail -30 "$BUILD/build.log"; exit 1; }
  echo "built OpenSplat in $(( $(date +%s) - start )) s: $BUILD/opensplat"
fi

# The torch wheel's libraries, found the way the wheel itself finds them.
TORCH_LIB="$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OMP_NUM_THREADS="$THREADS"

"$PY" "$ROOT/scripts/bench_fox_step.py" --write-opensplat "$WORK"

opensplat_step() {  # → seconds per step, from the time stamps of its "Step N" lines (10 warm-up steps dropped)
  "$BUILD/opensplat" "$WORK" --cpu -n "$STEPS" -d 4 --sh-degree 3 --densify-from 1000000 \
    --refine-every 1000000 -o "$WORK/out.ply" 2>&1 | "$PY" -c '
import sys, time
t = []
for line in sys.stdin:
    if line.startswith("Step "):
        t.append(time.perf_counter())
skip = min(10, len(t) - 2)
print(f"{(t[-1] - t[skip]) / (len(t) - 1 - skip):.3f}" if len(t) > 2 else "failed")
'
}

recon_step() {
  "$PY" "$ROOT/scripts/bench_fox_step.py" --steps "$STEPS" --threads "$THREADS" --quiet
}

echo "fox, 20,000 random Gaussians, 4x downscaled, $STEPS steps, $THREADS threads; $(lscpu | sed -n 's/^Model name: *//p')"
for r in $(seq "$ROUNDS"); do
  o=$(opensplat_step)
  n=$(recon_step)
  echo "round $r: OpenSplat 1.2.0 --cpu $o s/step, recon $n s/step ($("$PY" -c "print(f'{$o / $n:.1f}')")x); load $(cut -d' ' -f1 /proc/loadavg)"
done
