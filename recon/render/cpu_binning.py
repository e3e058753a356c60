"""Tile binning for the cpu backend (numba): which Gaussians touch which 16×16 tile, in depth order.

Mirrors gsplat's isect_tiles + radix sort: every Gaussian is listed in each tile its per-axis
radius box touches, and each tile's list is front to back (stable on equal depths). The per-
intersection gradients of the backward pass are summed back per Gaussian here too.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

TILE = 16


@njit(parallel=True, cache=True)
def sorted_tile_rects(means2d, radii, order, tiles_x, tiles_y):  # pragma: no cover - numba
    """Visible Gaussians per camera in depth order with their tile boxes.

    means2d [C,N,2], radii [C,N,2] int32, order [C,N] (depth order, stable) →
    rects [C,N,5] int32 rows (gaussian, x0, x1, y0, y1) with exclusive x1/y1, n_vis [C].
    Box = floor/ceil of (mean ± radius)/TILE clamped to the tile grid, as gsplat's isect_tiles.
    """
    C, N = order.shape
    rects = np.empty((C, N, 5), np.int32)
    n_vis = np.zeros(C, np.int64)
    for c in prange(C):
        k = 0
        for j in range(N):
            g = order[c, j]
            rx = radii[c, g, 0]
            ry = radii[c, g, 1]
            if rx <= 0 or ry <= 0:
                continue
            tx = means2d[c, g, 0] / TILE
            ty = means2d[c, g, 1] / TILE
            x0 = min(max(0, int(math.floor(tx - rx / TILE))), tiles_x)
            x1 = min(max(0, int(math.ceil(tx + rx / TILE))), tiles_x)
            y0 = min(max(0, int(math.floor(ty - ry / TILE))), tiles_y)
            y1 = min(max(0, int(math.ceil(ty + ry / TILE))), tiles_y)
            if x0 >= x1 or y0 >= y1:
                continue
            rects[c, k, 0] = g
            rects[c, k, 1] = x0
            rects[c, k, 2] = x1
            rects[c, k, 3] = y0
            rects[c, k, 4] = y1
            k += 1
        n_vis[c] = k
    return rects, n_vis


@njit(inline="always")
def _edge_min(d, a, b, c, slope, lo, hi):  # pragma: no cover - numba
    """min over e in [lo, hi] of σ(d, e) = ½(a·d² + c·e²) + b·d·e: the vertex e = slope·d
    (slope = −b/c), clamped."""
    e = min(max(slope * d, lo), hi)
    return 0.5 * (a * d * d + c * e * e) + b * d * e


@njit(inline="always")
def tile_touched(gx, gy, a, b, c, thr, sx, sy, x0, y0):  # pragma: no cover - numba
    """Whether a Gaussian (2D mean, conic a b c, σ threshold thr = ln(255·opacity), slopes
    sx = −b/a, sy = −b/c) can reach alpha ≥ 1/255 at any pixel centre of the tile at pixel
    (x0, y0). σ is convex, so its minimum over the tile's box of pixel centres is at the mean
    (inside) or on an edge; the continuous minimum is never above the pixels' own, so a Gaussian
    is only dropped where it adds nothing to any pixel. On the fast preset's DTU scan37 renders a
    fifth of the radius boxes' intersections go, and the compositing gets that much faster."""
    dxlo, dxhi = gx - (x0 + TILE - 0.5), gx - (x0 + 0.5)
    dylo, dyhi = gy - (y0 + TILE - 0.5), gy - (y0 + 0.5)
    if dxlo <= 0.0 <= dxhi and dylo <= 0.0 <= dyhi:
        return True
    m = min(_edge_min(dxlo, a, b, c, sy, dylo, dyhi), _edge_min(dxhi, a, b, c, sy, dylo, dyhi),
            _edge_min(dylo, c, b, a, sx, dxlo, dxhi), _edge_min(dyhi, c, b, a, sx, dxlo, dxhi))
    return m <= thr * 1.0001 + 1e-4  # float rounding stays on the inclusive side


@njit(parallel=True, cache=True)
def _touched_flags(rects, n_vis, means2d, conics, opacities):  # pragma: no cover - numba
    """Per visible Gaussian, one flag per tile of its radius box (row-major within the box):
    → flags [total] uint8, start [C, N+1] int64 (Gaussian k of camera c: flags[start[c,k]:...])."""
    C = rects.shape[0]
    start = np.zeros((C, rects.shape[1] + 1), np.int64)
    for c in range(C):
        for k in range(n_vis[c]):
            start[c, k + 1] = start[c, k] + (rects[c, k, 2] - rects[c, k, 1]) * (rects[c, k, 4] - rects[c, k, 3])
    base = np.zeros(C + 1, np.int64)
    for c in range(C):
        base[c + 1] = base[c] + start[c, n_vis[c]]
    flags = np.ones(base[C], np.uint8)
    for c in range(C):
        for k in prange(n_vis[c]):
            g = rects[c, k, 0]
            a, b, cc = float(conics[c, g, 0]), float(conics[c, g, 1]), float(conics[c, g, 2])
            thr = math.log(max(float(opacities[c, g]) * 255.0, 1.0))
            if not (a * cc - b * b > 0.0 and a > 0.0 and cc > 0.0) or not thr < 1e30:
                continue  # degenerate: keep every tile
            gx, gy, sx, sy = float(means2d[c, g, 0]), float(means2d[c, g, 1]), -b / a, -b / cc
            i = base[c] + start[c, k]
            for row in range(rects[c, k, 3], rects[c, k, 4]):
                for x in range(rects[c, k, 1], rects[c, k, 2]):
                    flags[i] = tile_touched(gx, gy, a, b, cc, thr, sx, sy, x * TILE, row * TILE)
                    i += 1
        start[c] += base[c]
    return flags, start


@njit(parallel=True, cache=True)
def bin_tiles(rects, n_vis, tiles_x, tiles_y, means2d, conics, opacities):  # pragma: no cover - numba
    """Per-tile Gaussian lists, each in depth order.

    → offsets [C·ty·tx + 1] int64 (tile t's list is ids[offsets[t]:offsets[t+1]]), ids [n_isect]
    int32 (Gaussian index within its camera). A Gaussian is listed in the tiles of its radius box
    that it reaches (`tile_touched`). Parallel over (camera, tile row): each job scans the
    depth-ordered visible list and keeps what touches its row, so lists come out sorted without
    a sort and without write races.
    """
    flags, fstart = _touched_flags(rects, n_vis, means2d, conics, opacities)
    C = rects.shape[0]
    n_rows = C * tiles_y
    counts = np.zeros(n_rows * tiles_x + 1, np.int64)
    for job in prange(n_rows):
        c = job // tiles_y
        row = job % tiles_y
        base = job * tiles_x + 1
        for k in range(n_vis[c]):
            if rects[c, k, 3] <= row < rects[c, k, 4]:
                x0, x1 = rects[c, k, 1], rects[c, k, 2]
                i = fstart[c, k] + (row - rects[c, k, 3]) * (x1 - x0)
                for x in range(x0, x1):
                    counts[base + x] += flags[i + x - x0]
    offsets = np.cumsum(counts)
    ids = np.empty(offsets[-1], np.int32)
    for job in prange(n_rows):
        c = job // tiles_y
        row = job % tiles_y
        cursor = offsets[job * tiles_x : (job + 1) * tiles_x].copy()
        for k in range(n_vis[c]):
            if rects[c, k, 3] <= row < rects[c, k, 4]:
                x0, x1 = rects[c, k, 1], rects[c, k, 2]
                i = fstart[c, k] + (row - rects[c, k, 3]) * (x1 - x0)
                for x in range(x0, x1):
                    if flags[i + x - x0]:
                        ids[cursor[x]] = rects[c, k, 0]
                        cursor[x] += 1
    return offsets, ids


@njit(cache=True)
def scatter_isects(offsets, ids, n_tiles, N, g_xy, g_conic, g_color, g_opac):  # pragma: no cover
    """Sum per-intersection gradients into per-(camera, Gaussian) arrays [C,N,...]."""
    C = (offsets.shape[0] - 1) // n_tiles
    D = g_color.shape[1]
    v_xy = np.zeros((C, N, 2), g_xy.dtype)
    v_conic = np.zeros((C, N, 3), g_xy.dtype)
    v_color = np.zeros((C, N, D), g_xy.dtype)
    v_opac = np.zeros((C, N), g_xy.dtype)
    for c in range(C):
        for i in range(offsets[c * n_tiles], offsets[(c + 1) * n_tiles]):
            g = ids[i]
            v_xy[c, g, 0] += g_xy[i, 0]
            v_xy[c, g, 1] += g_xy[i, 1]
            for k in range(3):
                v_conic[c, g, k] += g_conic[i, k]
            for k in range(D):
                v_color[c, g, k] += g_color[i, k]
            v_opac[c, g] += g_opac[i]
    return v_xy, v_conic, v_color, v_opac
