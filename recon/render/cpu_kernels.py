"""numba tile drivers of the cpu backend: front-to-back compositing and its analytic backward.

Layout follows gsplat's CUDA rasterizer: the image is cut into 16×16 tiles (cpu_binning), and
one tile is one unit of parallel work. Within a tile the Gaussians are the outer loop (depth
order) and the rows they can reach the inner one, each row one 16-wide vector pass
(cpu_pixels). The kernels composite exactly four channels (RGB + depth, or RGB and a zero
channel); cpu.py runs other channel counts as groups of four. The forward pass remembers, per
pixel, the final transmittance and the last Gaussian composited; the backward pass walks each
tile's list in reverse from there, recovering T by division (as gsplat does), so nothing per
(pixel, Gaussian) is ever stored. Gradients are written per intersection (each belongs to one
tile: no write races, and sums that do not depend on the thread count) and summed per Gaussian
afterwards (`scatter_isects`).

Threads: the kernels are plain serial `nogil` functions over a range of tiles, run on
`numba.get_num_threads()` Python threads (`run_chunks`), not `parallel=True` kernels: numba's
parfor compilation took 4-6 s per kernel on the first run (a fresh install's first render
compiled for ~30 s), serial kernels ~1 s, and the work split is the same static one.

Every kernel compiles for the float dtype it is given (float32 for speed, float64 for gradcheck)
and is cached on disk (cache=True): only the first run of an install pays the JIT.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numba
import numpy as np
from numba import njit

from . import cpu_pixels as px
from .cpu_pixels import P, TILE

CHANNELS = 4
"""The kernels composite exactly four channels (cpu.py pads and groups other counts)."""
G_COLS = 10
"""Packed Gaussian row: x, y, opacity, conic a, b, c, colour 0..3 (one cache line per Gaussian)."""

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def run_chunks(fn: Callable, n_items: int, *args) -> None:
    """fn(*args, lo, hi) over [0, n_items) cut into numba.get_num_threads() contiguous chunks,
    the first on this thread and the others on a shared pool (fn releases the GIL). The count is
    the calling thread's numba setting, so recon.cpu_share and recon eval still decide it."""
    n = max(1, min(numba.get_num_threads(), n_items))
    bounds = [n_items * k // n for k in range(n + 1)]
    if n == 1:
        fn(*args, 0, n_items)
        return
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers < n - 1:
            _pool = ThreadPoolExecutor(max_workers=n - 1, thread_name_prefix="recon-cpu-raster")
        pool = _pool
    futures = [pool.submit(fn, *args, bounds[k], bounds[k + 1]) for k in range(1, n)]
    try:
        fn(*args, bounds[0], bounds[1])
    finally:
        for f in futures:
            f.result()


def spread_stride(n_jobs: int) -> int:
    """A stride coprime with n_jobs near n_jobs/φ. Visiting tiles as (k·stride) mod n_jobs makes
    every contiguous block of k — what each thread gets — a sample spread over the whole image,
    so threads get similar work without a dynamic queue."""
    stride = max(1, int(n_jobs * 0.6180339887))
    while math.gcd(stride, n_jobs) != 1:
        stride += 1
    return stride


@njit(nogil=True, **px.JIT)
def pack(means2d, conics, colors, opacities):  # pragma: no cover - numba
    """→ G [C,N,10] (see G_COLS) in the colours' dtype; colors has exactly four channels."""
    C, N = opacities.shape
    G = np.empty((C, N, G_COLS), colors.dtype)
    for c in range(C):
        for g in range(N):
            G[c, g, 0], G[c, g, 1], G[c, g, 2] = means2d[c, g, 0], means2d[c, g, 1], opacities[c, g]
            G[c, g, 3], G[c, g, 4], G[c, g, 5] = conics[c, g, 0], conics[c, g, 1], conics[c, g, 2]
            for k in range(CHANNELS):
                G[c, g, 6 + k] = colors[c, g, k]
    return G


@njit(inline="always")
def _tile_of(step, stride, n_tiles, n_jobs, tiles_x):  # pragma: no cover - numba
    job = (step * stride) % n_jobs
    t = job % n_tiles
    return job, job // n_tiles, (t // tiles_x) * TILE, (t % tiles_x) * TILE


@njit(inline="always", fastmath=px.FASTMATH)
def _count_live(S, row_live, F):  # pragma: no cover - numba
    """Refresh each row's count of live pixels; → the tile's."""
    n = 0
    for r in range(TILE):
        s = F(0.0)
        base = px.F_LIVE + np.uint64(r * TILE)
        for q in range(px.U16):
            s += S[base + q]
        row_live[r] = int(s)
        n += int(s)
    return n


@njit(nogil=True, **px.JIT)
def _fwd_tiles(G, offsets, ids, width, height, tiles_x, n_tiles, stride, render, t_final, last,
               lo, hi):  # pragma: no cover - numba  # fmt: skip
    """Composite the tiles of steps [lo, hi) of the spread order into render, t_final, last."""
    F = G.dtype.type
    n_jobs = G.shape[0] * n_tiles
    S = np.empty(px.FWD_ROWS * P, G.dtype)
    row_live = np.empty(TILE, np.int64)
    for step in range(lo, hi):
        job, c, y0, x0 = _tile_of(step, stride, n_tiles, n_jobs, tiles_x)
        start, end = offsets[job], offsets[job + 1]
        n_rows, n_cols = min(TILE, height - y0), min(TILE, width - x0)
        S[:P] = 1.0
        S[P:5 * P] = 0.0
        S[5 * P:6 * P] = -1.0
        for j in range(P):  # pixels outside the image are never live: rows of them are skipped
            S[6 * P + j] = 1.0 if (j // TILE < n_rows) and (j % TILE < n_cols) else 0.0
        _count_live(S, row_live, F)
        for i in range(start, end):
            g = ids[i]
            gx, gy, o, ca, cb, cc = G[c, g, 0], G[c, g, 1], G[c, g, 2], G[c, g, 3], G[c, g, 4], G[c, g, 5]
            rlo, rhi = px.tile_rows(gy, ca, cb, cc, o, y0)
            gxr, gyr = gx - F(x0) - F(0.5), gy - F(y0) - F(0.5)
            k_i, hca, hcc = F(i - start), F(0.5) * ca, F(0.5) * cc
            c0, c1, c2, c3 = G[c, g, 6], G[c, g, 7], G[c, g, 8], G[c, g, 9]
            for r in range(rlo, rhi):
                if row_live[r] != 0:
                    px.fwd_row(S, np.uint64(r * TILE), gxr, gyr - F(r), hca, cb, hcc, o, k_i, c0, c1, c2, c3, F)
            # Every 16 Gaussians (not every row: a horizontal sum per row costs as much as the
            # row), drop finished rows and stop once the whole tile is done.
            if (i - start) % 16 == 15 and _count_live(S, row_live, F) == 0:
                break
        for r in range(n_rows):
            for q in range(n_cols):
                j = r * TILE + q
                for k in range(CHANNELS):
                    render[c, y0 + r, x0 + q, k] = S[(1 + k) * P + j]
                t_final[c, y0 + r, x0 + q] = S[j]
                last[c, y0 + r, x0 + q] = np.int32(S[5 * P + j])


def raster_fwd(G: np.ndarray, offsets: np.ndarray, ids: np.ndarray, width: int, height: int,
               tiles_x: int, tiles_y: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """G [C,N,10] → render [C,H,W,4], t_final [C,H,W], last [C,H,W] int32 (position in the tile
    list of the last composited Gaussian, −1 if none)."""
    C = G.shape[0]
    render = np.empty((C, height, width, CHANNELS), G.dtype)
    t_final = np.empty((C, height, width), G.dtype)
    last = np.empty((C, height, width), np.int32)
    n_tiles = tiles_x * tiles_y
    run_chunks(_fwd_tiles, C * n_tiles, G, offsets, ids, width, height, tiles_x, n_tiles,
               spread_stride(C * n_tiles), render, t_final, last)  # fmt: skip
    return render, t_final, last


@njit(inline="always")
def _load_bwd_state(S, row_stop, c, y0, x0, n_rows, n_cols, t_final, last, v_render, v_alpha):  # pragma: no cover
    """The backward's per-pixel start state of one tile; pixels outside the image stay inert
    (STOP −1: no Gaussian reaches them). → the largest STOP."""
    S[:11 * P] = 0.0
    S[px.B_STOP:px.B_STOP + np.uint64(P)] = -1.0
    max_stop = -1
    for r in range(TILE):
        row_stop[r] = -1
        for q in range(TILE):
            if r < n_rows and q < n_cols:
                j = np.uint64(r * TILE + q)
                T = t_final[c, y0 + r, x0 + q]
                S[j] = T
                S[px.B_VA + j] = v_alpha[c, y0 + r, x0 + q] * T
                stop = last[c, y0 + r, x0 + q]
                S[px.B_STOP + j] = stop
                row_stop[r] = max(row_stop[r], stop)
                for k in range(CHANNELS):
                    S[px.B_VR0 + np.uint64(k) * np.uint64(P) + j] = v_render[c, y0 + r, x0 + q, k]
        max_stop = max(max_stop, row_stop[r])
    return max_stop


@njit(nogil=True, **px.JIT)
def _bwd_tiles(G, offsets, ids, width, height, tiles_x, n_tiles, stride, t_final, last, v_render,
               v_alpha, g_isect, lo, hi):  # pragma: no cover - numba  # fmt: skip
    """Per-intersection gradients of the tiles of steps [lo, hi): g_isect [I,10] rows are
    (colour 0..3, opacity, conic a, b, c, mean x, y)."""
    F = G.dtype.type
    n_jobs = G.shape[0] * n_tiles
    S = np.zeros(px.BWD_ROWS * P, G.dtype)
    row_stop = np.empty(TILE, np.int64)
    s = np.empty(px.N_ACC, G.dtype)
    for step in range(lo, hi):
        job, c, y0, x0 = _tile_of(step, stride, n_tiles, n_jobs, tiles_x)
        start, end = offsets[job], offsets[job + 1]
        max_stop = _load_bwd_state(S, row_stop, c, y0, x0, min(TILE, height - y0), min(TILE, width - x0),
                                   t_final, last, v_render, v_alpha)  # fmt: skip
        g_isect[start + max_stop + 1:end] = 0.0  # behind every pixel's stop: no gradient
        for i in range(start + max_stop, start - 1, -1):
            g = ids[i]
            gx, gy, o, ca, cb, cc = G[c, g, 0], G[c, g, 1], G[c, g, 2], G[c, g, 3], G[c, g, 4], G[c, g, 5]
            rlo, rhi = px.tile_rows(gy, ca, cb, cc, o, y0)
            gxr, gyr = gx - F(x0) - F(0.5), gy - F(y0) - F(0.5)
            k = i - start
            k_i, hca, hcc = F(k), F(0.5) * ca, F(0.5) * cc
            c0, c1, c2, c3 = G[c, g, 6], G[c, g, 7], G[c, g, 8], G[c, g, 9]
            for r in range(rlo, rhi):
                if row_stop[r] >= k:
                    px.bwd_row(S, np.uint64(r * TILE), gxr, gyr - F(r), hca, cb, hcc, o, k_i, c0, c1, c2, c3, F)
            px.acc_sums(S, s, np.uint64(max(rlo, 0) * TILE), np.uint64(max(rhi, rlo, 0) * TILE), F)
            g_isect[i, 0], g_isect[i, 1], g_isect[i, 2], g_isect[i, 3] = s[0], s[1], s[2], s[3]
            # d alpha/d o = e^−σ = raw/o; the conic's diagonal enters σ with a factor 1/2.
            g_isect[i, 4] = -s[4] / o
            g_isect[i, 5], g_isect[i, 6], g_isect[i, 7] = F(0.5) * s[6], s[8], F(0.5) * s[9]
            g_isect[i, 8] = ca * s[5] + cb * s[7]
            g_isect[i, 9] = cb * s[5] + cc * s[7]


def raster_bwd(G: np.ndarray, offsets: np.ndarray, ids: np.ndarray, width: int, height: int, tiles_x: int,
               tiles_y: int, t_final: np.ndarray, last: np.ndarray, v_render: np.ndarray,
               v_alpha: np.ndarray) -> np.ndarray:
    """Reverse traversal from each pixel's last Gaussian (G and v_render with 4 channels)
    → per-intersection gradients [I,10] (see _bwd_tiles; I = len(ids))."""
    C = G.shape[0]
    g_isect = np.empty((len(ids), G_COLS), G.dtype)
    n_tiles = tiles_x * tiles_y
    run_chunks(_bwd_tiles, C * n_tiles, G, offsets, ids, width, height, tiles_x, n_tiles,
               spread_stride(C * n_tiles), t_final, last, v_render, v_alpha, g_isect)  # fmt: skip
    return g_isect


@njit(nogil=True, cache=True)
def scatter_isects(offsets, ids, n_tiles, N, g_isect):  # pragma: no cover - numba
    """Sum per-intersection gradients [I,10] into per-(camera, Gaussian) rows [C,N,10]."""
    C = (offsets.shape[0] - 1) // n_tiles
    out = np.zeros((C, N, G_COLS), g_isect.dtype)
    for c in range(C):
        for i in range(offsets[c * n_tiles], offsets[(c + 1) * n_tiles]):
            g = ids[i]
            for k in range(G_COLS):
                out[c, g, k] += g_isect[i, k]
    return out
