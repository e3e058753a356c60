"""A background compilation's child process, and waiting for it before the first kernel call.

Stdlib only, so the kernels' callers (recon.render, recon.l1_ssim) can wait without importing
what compiles them (recon/warmup.py, which imports both).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

_child: subprocess.Popen | None = None
_lock = threading.Lock()


def launch(module: str) -> bool:
    """`python -m module` in a child process, unless one runs already; → whether it started."""
    global _child
    with _lock:
        if _child is not None:
            return False
        _child = subprocess.Popen([sys.executable, "-m", module], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return True


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def wait(log=_stderr) -> float:
    """Before the first kernel call: wait for a background compilation, if one runs; → seconds."""
    global _child
    if _child is None:
        return 0.0
    with _lock:
        if _child is None:
            return 0.0
        t0 = time.perf_counter()
        if _child.poll() is None:
            log("waiting for the CPU rasterizer's compilation to finish")
        _child.wait()
        _child = None
    return time.perf_counter() - t0
