"""Tile binning for the cpu backend (numba): which Gaussians touch which 16×16 tile, in depth order.

Mirrors gsplat's isect_tiles + radix sort: every Gaussian is listed in each tile its per-axis
radius box touches and its ellipse reaches (`tile_touched`), and each tile's list is front to
back (stable on equal depths). Serial `nogil` kernels: the one costly pass, the touched flags,
runs over chunks of Gaussians on the cpu backend's threads (cpu.bin_gaussians); the per-tile
lists come out sorted from one counting pass and one filling pass over the Gaussians in depth
order (the earlier per-tile-row scan of every visible Gaussian cost 5 ms a fox step).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

TILE = 16


@njit(nogil=True, cache=True)
def sorted_tile_rects(means2d, radii, order, tiles_x, tiles_y):  # pragma: no cover - numba
    """Visible Gaussians per camera in depth order with their tile boxes.

    means2d [C,N,2], radii [C,N,2] int32, order [C,N] (depth order, stable) →
    rects [C,N,5] int32 rows (gaussian, x0, x1, y0, y1) with exclusive x1/y1, n_vis [C].
    Box = floor/ceil of (mean ± radius)/TILE clamped to the tile grid, as gsplat's isect_tiles.
    """
    C, N = order.shape
    rects = np.empty((C, N, 5), np.int32)
    n_vis = np.zeros(C, np.int64)
    for c in range(C):
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


@njit(nogil=True, cache=True)
def box_starts(rects, n_vis):  # pragma: no cover - numba
    """Where each visible Gaussian's flags start: one flag per tile of its radius box
    (row-major within the box), cameras one after another. → start [C, N+1] int64."""
    C = rects.shape[0]
    start = np.zeros((C, rects.shape[1] + 1), np.int64)
    base = 0
    for c in range(C):
        start[c, 0] = base
        for k in range(n_vis[c]):
            start[c, k + 1] = start[c, k] + (rects[c, k, 2] - rects[c, k, 1]) * (rects[c, k, 4] - rects[c, k, 3])
        base = start[c, n_vis[c]]
    return start


@njit(nogil=True, cache=True)
def touched_flags(rects, c, fstart, means2d, conics, opacities, flags, lo, hi):  # pragma: no cover
    """flags of camera c's visible Gaussians [lo, hi): whether each reaches each tile of its box."""
    for k in range(lo, hi):
        g = rects[c, k, 0]
        i = fstart[c, k]
        a, b, cc = float(conics[c, g, 0]), float(conics[c, g, 1]), float(conics[c, g, 2])
        thr = math.log(max(float(opacities[c, g]) * 255.0, 1.0))
        if not (a * cc - b * b > 0.0 and a > 0.0 and cc > 0.0) or not thr < 1e30:
            flags[i:fstart[c, k + 1]] = 1  # degenerate: keep every tile
            continue
        gx, gy, sx, sy = float(means2d[c, g, 0]), float(means2d[c, g, 1]), -b / a, -b / cc
        for row in range(rects[c, k, 3], rects[c, k, 4]):
            for x in range(rects[c, k, 1], rects[c, k, 2]):
                flags[i] = tile_touched(gx, gy, a, b, cc, thr, sx, sy, x * TILE, row * TILE)
                i += 1


@njit(nogil=True, cache=True)
def tile_lists(rects, n_vis, fstart, flags, tiles_x, tiles_y):  # pragma: no cover - numba
    """Per-tile Gaussian lists, each in depth order: → offsets [C·ty·tx + 1] int64 (tile t's list
    is ids[offsets[t]:offsets[t+1]]), ids [n_isect] int32 (Gaussian index within its camera).
    Visiting the Gaussians in depth order and appending each to its tiles keeps every list
    sorted without a sort."""
    C = rects.shape[0]
    n_tiles = tiles_x * tiles_y
    offsets = np.zeros(C * n_tiles + 1, np.int64)
    for c in range(C):
        for k in range(n_vis[c]):
            i = fstart[c, k]
            for row in range(rects[c, k, 3], rects[c, k, 4]):
                for x in range(rects[c, k, 1], rects[c, k, 2]):
                    offsets[c * n_tiles + row * tiles_x + x + 1] += flags[i]
                    i += 1
    for t in range(C * n_tiles):
        offsets[t + 1] += offsets[t]
    ids = np.empty(offsets[-1], np.int32)
    cursor = offsets[:-1].copy()
    for c in range(C):
        for k in range(n_vis[c]):
            i = fstart[c, k]
            g = rects[c, k, 0]
            for row in range(rects[c, k, 3], rects[c, k, 4]):
                for x in range(rects[c, k, 1], rects[c, k, 2]):
                    if flags[i]:
                        t = c * n_tiles + row * tiles_x + x
                        ids[cursor[t]] = g
                        cursor[t] += 1
                    i += 1
    return offsets, ids
