"""numba tile drivers of the cpu backend: front-to-back compositing and its analytic backward.

Layout follows gsplat's CUDA rasterizer: the image is cut into 16×16 tiles (cpu_binning), and
one tile is one unit of parallel work (numba.prange). Within a tile the Gaussians are the outer
loop (depth order) and the tile's pixels the inner, vectorised loop (cpu_pixels); a Gaussian only
visits the rows it can reach. The kernels composite exactly four channels (RGB + depth, or RGB
and a zero channel); cpu.py runs other channel counts as groups of four. The forward pass remembers, per pixel, the final transmittance and
the last Gaussian composited; the backward pass walks each tile's list in reverse from there,
recovering T by division (as gsplat does), so nothing per (pixel, Gaussian) is ever stored.
Gradients are written per intersection (each belongs to one tile: no write races) and summed per
Gaussian afterwards (cpu_binning.scatter_isects).

Every kernel compiles for the float dtype it is given (float32 for speed, float64 for gradcheck)
and is cached on disk (cache=True): only the very first run pays the JIT.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import cpu_pixels as px
from .cpu_binning import TILE, bin_tiles, scatter_isects, sorted_tile_rects  # noqa: F401


CHANNELS = 4
"""The kernels composite exactly four channels (cpu.py pads and groups other counts)."""


@njit(parallel=True, **px.JIT)
def raster_fwd(
    means2d, conics, colors, opacities, offsets, ids, width, height, tiles_x, tiles_y
):  # pragma: no cover - numba
    """colors [C,N,4] → render [C,H,W,4], t_final [C,H,W], last [C,H,W] int32 (position in the
    tile list of the last composited Gaussian, −1 if none)."""
    C = colors.shape[0]
    dt = colors.dtype
    render = np.zeros((C, height, width, CHANNELS), dt)
    t_final = np.ones((C, height, width), dt)
    last = np.full((C, height, width), -1, np.int32)
    n_tiles = tiles_x * tiles_y
    P = TILE * TILE
    n_jobs = C * n_tiles
    stride = px.spread_stride(n_jobs)
    for step in prange(n_jobs):
        job = (step * stride) % n_jobs
        c = job // n_tiles
        y0 = ((job % n_tiles) // tiles_x) * TILE
        x0 = (job % tiles_x) * TILE
        start = offsets[job]
        pxs, pys = px.tile_pixels(x0, y0, dt)
        T = np.ones(P, dt)
        a0, a1, a2, a3 = np.zeros(P, dt), np.zeros(P, dt), np.zeros(P, dt), np.zeros(P, dt)
        stop = np.full(P, -1, np.int32)
        live = np.ones(P, np.int32)  # 0 once the pixel has hit the T ≤ 1e-4 stop
        n_live = P
        for i in range(start, offsets[job + 1]):
            g = ids[i]
            gx, gy, o = means2d[c, g, 0], means2d[c, g, 1], opacities[c, g]
            ca, cb, cc = conics[c, g, 0], conics[c, g, 1], conics[c, g, 2]
            lo, hi = px.tile_rows(gy, ca, cb, cc, o, y0)
            if lo >= hi:
                continue
            jlo, jhi = np.uint64(lo * TILE), np.uint64(hi * TILE)
            n_live -= px.fwd_pixels(gx, gy, ca, cb, cc, o, np.int32(i - start), pxs, pys, T, stop, live,
                                    colors[c, g, 0], colors[c, g, 1], colors[c, g, 2], colors[c, g, 3],
                                    a0, a1, a2, a3, jlo, jhi)
            if n_live == 0:
                break
        for j in range(P):
            py = y0 + j // TILE
            pxx = x0 + j % TILE
            if py < height and pxx < width:
                render[c, py, pxx, 0] = a0[j]
                render[c, py, pxx, 1] = a1[j]
                render[c, py, pxx, 2] = a2[j]
                render[c, py, pxx, 3] = a3[j]
                t_final[c, py, pxx] = T[j]
                last[c, py, pxx] = stop[j]
    return render, t_final, last


@njit(parallel=True, **px.JIT)
def raster_bwd(
    means2d, conics, colors, opacities, offsets, ids, width, height, tiles_x, tiles_y,
    t_final, last, v_render, v_alpha,
):  # pragma: no cover - numba  # fmt: skip
    """Reverse traversal from each pixel's last Gaussian (colors and v_render with 4 channels).
    → per-intersection gradients v_means2d [I,2], v_conics [I,3], v_colors [I,4], v_opacities [I]
    (I = len(ids))."""
    C = colors.shape[0]
    n_isect = ids.shape[0]
    dt = colors.dtype
    g_xy = np.zeros((n_isect, 2), dt)
    g_conic = np.zeros((n_isect, 3), dt)
    g_color = np.zeros((n_isect, CHANNELS), dt)
    g_opac = np.zeros(n_isect, dt)
    n_tiles = tiles_x * tiles_y
    P = TILE * TILE
    n_jobs = C * n_tiles
    stride = px.spread_stride(n_jobs)
    for step in prange(n_jobs):
        job = (step * stride) % n_jobs
        c = job // n_tiles
        y0 = ((job % n_tiles) // tiles_x) * TILE
        x0 = (job % tiles_x) * TILE
        start = offsets[job]
        pxs, pys = px.tile_pixels(x0, y0, dt)
        T = np.zeros(P, dt)
        va_out = np.zeros(P, dt)  # v_alpha·T_end: d(1 − T_end)/dα_i = T_end/(1 − α_i)
        vr0, vr1, vr2, vr3 = np.zeros(P, dt), np.zeros(P, dt), np.zeros(P, dt), np.zeros(P, dt)
        b0, b1, b2, b3 = np.zeros(P, dt), np.zeros(P, dt), np.zeros(P, dt), np.zeros(P, dt)
        stop = np.full(P, -1, np.int32)
        max_stop = -1
        for j in range(P):
            py = y0 + j // TILE
            pxx = x0 + j % TILE
            if py < height and pxx < width:
                T[j] = t_final[c, py, pxx]
                va_out[j] = v_alpha[c, py, pxx] * T[j]
                stop[j] = last[c, py, pxx]
                max_stop = max(max_stop, stop[j])
                vr0[j] = v_render[c, py, pxx, 0]
                vr1[j] = v_render[c, py, pxx, 1]
                vr2[j] = v_render[c, py, pxx, 2]
                vr3[j] = v_render[c, py, pxx, 3]
        for i in range(start + max_stop, start - 1, -1):
            g = ids[i]
            gx, gy, o = means2d[c, g, 0], means2d[c, g, 1], opacities[c, g]
            ca, cb, cc = conics[c, g, 0], conics[c, g, 1], conics[c, g, 2]
            lo, hi = px.tile_rows(gy, ca, cb, cc, o, y0)
            if lo >= hi:
                continue
            jlo, jhi = np.uint64(lo * TILE), np.uint64(hi * TILE)
            r = px.bwd_pixels(gx, gy, ca, cb, cc, o, np.int32(i - start), pxs, pys, T, va_out, stop,
                              colors[c, g, 0], colors[c, g, 1], colors[c, g, 2], colors[c, g, 3],
                              vr0, vr1, vr2, vr3, b0, b1, b2, b3, jlo, jhi)
            g_color[i, 0] = r[0]
            g_color[i, 1] = r[1]
            g_color[i, 2] = r[2]
            g_color[i, 3] = r[3]
            g_opac[i] = r[4]
            g_conic[i, 0] = r[5]
            g_conic[i, 1] = r[6]
            g_conic[i, 2] = r[7]
            g_xy[i, 0] = r[8]
            g_xy[i, 1] = r[9]
    return g_xy, g_conic, g_color, g_opac
