"""numba kernels of the cpu backend: tile binning, front-to-back compositing, analytic backward.

Layout follows gsplat's CUDA rasterizer: the image is cut into 16×16 tiles, each Gaussian is
listed in every tile its (per-axis) radius box touches, each tile's list is in depth order, and
one tile is one unit of parallel work (numba.prange). The forward pass remembers, per pixel,
the final transmittance and the last Gaussian composited; the backward pass walks each pixel's
list in reverse from there, recovering T by division (as gsplat does) so nothing per
(pixel, Gaussian) is ever stored. Gradients are written per intersection (each intersection
belongs to one tile, so there are no write races) and summed per Gaussian afterwards.

All kernels are compiled for whatever float dtype they are given (float32 for speed, float64
for gradcheck) and cached on disk (cache=True), so only the very first import pays the JIT.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

TILE = 16
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
T_EPS = 1e-4


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


@njit(parallel=True, cache=True)
def bin_tiles(rects, n_vis, tiles_x, tiles_y):  # pragma: no cover - numba
    """Per-tile Gaussian lists, each in depth order.

    → offsets [C·ty·tx + 1] int64 (tile t's list is ids[offsets[t]:offsets[t+1]]), ids [n_isect]
    int32 (Gaussian index within its camera). Parallel over (camera, tile row): each job scans
    the depth-ordered visible list and keeps what touches its row, so lists come out sorted
    without a sort and without write races.
    """
    C = rects.shape[0]
    n_rows = C * tiles_y
    counts = np.zeros(n_rows * tiles_x + 1, np.int64)
    for job in prange(n_rows):
        c = job // tiles_y
        row = job % tiles_y
        base = job * tiles_x + 1
        for k in range(n_vis[c]):
            if rects[c, k, 3] <= row < rects[c, k, 4]:
                for x in range(rects[c, k, 1], rects[c, k, 2]):
                    counts[base + x] += 1
    offsets = np.cumsum(counts)
    ids = np.empty(offsets[-1], np.int32)
    for job in prange(n_rows):
        c = job // tiles_y
        row = job % tiles_y
        cursor = offsets[job * tiles_x : (job + 1) * tiles_x].copy()
        for k in range(n_vis[c]):
            if rects[c, k, 3] <= row < rects[c, k, 4]:
                for x in range(rects[c, k, 1], rects[c, k, 2]):
                    ids[cursor[x]] = rects[c, k, 0]
                    cursor[x] += 1
    return offsets, ids


@njit(inline="always")
def _sigma(conics, c, g, dx, dy):  # pragma: no cover - numba
    return 0.5 * (conics[c, g, 0] * dx * dx + conics[c, g, 2] * dy * dy) + conics[c, g, 1] * dx * dy


@njit(parallel=True, cache=True)
def raster_fwd(
    means2d, conics, colors, opacities, offsets, ids, width, height, tiles_x, tiles_y
):  # pragma: no cover - numba
    """→ render [C,H,W,D], t_final [C,H,W], last [C,H,W] int32 (position in the tile list of the
    last composited Gaussian, −1 if none)."""
    C, _, D = colors.shape
    render = np.zeros((C, height, width, D), colors.dtype)
    t_final = np.ones((C, height, width), colors.dtype)
    last = np.full((C, height, width), -1, np.int32)
    n_tiles = tiles_x * tiles_y
    for job in prange(C * n_tiles):
        c = job // n_tiles
        ty = (job % n_tiles) // tiles_x
        tx = job % tiles_x
        start = offsets[job]
        end = offsets[job + 1]
        acc = np.zeros(D, np.float64)
        for py in range(ty * TILE, min((ty + 1) * TILE, height)):
            for px in range(tx * TILE, min((tx + 1) * TILE, width)):
                cx = px + 0.5
                cy = py + 0.5
                T = 1.0
                acc[:] = 0.0
                stop = -1
                for i in range(start, end):
                    g = ids[i]
                    dx = means2d[c, g, 0] - cx
                    dy = means2d[c, g, 1] - cy
                    sigma = _sigma(conics, c, g, dx, dy)
                    if sigma < 0.0:
                        continue
                    alpha = min(ALPHA_MAX, opacities[c, g] * math.exp(-sigma))
                    if alpha < ALPHA_MIN:
                        continue
                    next_t = T * (1.0 - alpha)
                    if next_t <= T_EPS:
                        break
                    w = alpha * T
                    for k in range(D):
                        acc[k] += colors[c, g, k] * w
                    T = next_t
                    stop = i - start
                for k in range(D):
                    render[c, py, px, k] = acc[k]
                t_final[c, py, px] = T
                last[c, py, px] = stop
    return render, t_final, last


@njit(parallel=True, cache=True)
def raster_bwd(
    means2d, conics, colors, opacities, offsets, ids, width, height, tiles_x, tiles_y,
    t_final, last, v_render, v_alpha,
):  # pragma: no cover - numba  # fmt: skip
    """Reverse traversal from each pixel's last Gaussian. → per-intersection gradients
    v_means2d [I,2], v_conics [I,3], v_colors [I,D], v_opacities [I] (I = len(ids))."""
    C, _, D = colors.shape
    n_isect = ids.shape[0]
    dt = colors.dtype
    g_xy = np.zeros((n_isect, 2), dt)
    g_conic = np.zeros((n_isect, 3), dt)
    g_color = np.zeros((n_isect, D), dt)
    g_opac = np.zeros(n_isect, dt)
    n_tiles = tiles_x * tiles_y
    for job in prange(C * n_tiles):
        c = job // n_tiles
        ty = (job % n_tiles) // tiles_x
        tx = job % tiles_x
        start = offsets[job]
        behind = np.zeros(D, np.float64)  # Σ colour·weight of what lies behind
        for py in range(ty * TILE, min((ty + 1) * TILE, height)):
            for px in range(tx * TILE, min((tx + 1) * TILE, width)):
                stop = last[c, py, px]
                if stop < 0:
                    continue
                cx = px + 0.5
                cy = py + 0.5
                t_end = float(t_final[c, py, px])
                T = t_end
                behind[:] = 0.0
                # d(1 − T_end)/dα_i = T_end/(1 − α_i): the alpha output's share of v_alpha.
                va_out = float(v_alpha[c, py, px]) * t_end
                for i in range(start + stop, start - 1, -1):
                    g = ids[i]
                    dx = means2d[c, g, 0] - cx
                    dy = means2d[c, g, 1] - cy
                    sigma = _sigma(conics, c, g, dx, dy)
                    if sigma < 0.0:
                        continue
                    gauss = math.exp(-sigma)
                    raw = opacities[c, g] * gauss
                    alpha = min(ALPHA_MAX, raw)
                    if alpha < ALPHA_MIN:
                        continue
                    ra = 1.0 / (1.0 - alpha)
                    T = T * ra  # transmittance in front of Gaussian i
                    w = alpha * T
                    v_a = va_out * ra
                    for k in range(D):
                        vr = v_render[c, py, px, k]
                        g_color[i, k] += w * vr
                        v_a += (colors[c, g, k] * T - behind[k] * ra) * vr
                        behind[k] += colors[c, g, k] * w
                    if raw <= ALPHA_MAX:  # clamped alpha has no gradient
                        v_sig = -raw * v_a
                        g_opac[i] += gauss * v_a
                        g_conic[i, 0] += 0.5 * dx * dx * v_sig
                        g_conic[i, 1] += dx * dy * v_sig
                        g_conic[i, 2] += 0.5 * dy * dy * v_sig
                        g_xy[i, 0] += v_sig * (conics[c, g, 0] * dx + conics[c, g, 1] * dy)
                        g_xy[i, 1] += v_sig * (conics[c, g, 1] * dx + conics[c, g, 2] * dy)
    return g_xy, g_conic, g_color, g_opac


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
