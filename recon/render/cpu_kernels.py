"""numba tile drivers of the cpu backend: front-to-back compositing and its analytic backward.

Layout follows gsplat's CUDA rasterizer: the image is cut into 16×16 tiles (cpu_binning), and
one tile is one unit of parallel work (numba.prange). Within a tile the Gaussians are the outer
loop (depth order) and the tile's pixels the inner, vectorised loop (cpu_pixels); a Gaussian only
visits the rows it can reach. The forward pass remembers, per pixel, the final transmittance and
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


@njit(parallel=True, **px.JIT)
def raster_fwd(
    means2d, conics, colors, opacities, offsets, ids, width, height, tiles_x, tiles_y
):  # pragma: no cover - numba
    """→ render [C,H,W,D], t_final [C,H,W], last [C,H,W] int32 (position in the tile list of the
    last composited Gaussian, −1 if none)."""
    C, _, D = colors.shape
    dt = colors.dtype
    render = np.zeros((C, height, width, D), dt)
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
        acc = np.zeros((D, P), dt)
        w = np.zeros(P, dt)
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
            k_i = np.int32(i - start)
            n_live -= px.fwd_pixels(gx, gy, ca, cb, cc, o, k_i, pxs, pys, T, w, stop, live, jlo, jhi)
            for k in range(D):
                px.accumulate(acc[k], w, colors[c, g, k], jlo, jhi)
            if n_live == 0:
                break
        for j in range(P):
            py = y0 + j // TILE
            pxx = x0 + j % TILE
            if py < height and pxx < width:
                for k in range(D):
                    render[c, py, pxx, k] = acc[k, j]
                t_final[c, py, pxx] = T[j]
                last[c, py, pxx] = stop[j]
    return render, t_final, last


@njit(parallel=True, **px.JIT)
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
        vr = np.zeros((D, P), dt)
        behind = np.zeros((D, P), dt)  # Σ colour·weight of what lies behind, per channel
        stop = np.full(P, -1, np.int32)
        w = np.zeros(P, dt)
        ra = np.ones(P, dt)
        raw = np.zeros(P, dt)
        v_a = np.zeros(P, dt)
        max_stop = -1
        for j in range(P):
            py = y0 + j // TILE
            pxx = x0 + j % TILE
            if py < height and pxx < width:
                T[j] = t_final[c, py, pxx]
                va_out[j] = v_alpha[c, py, pxx] * T[j]
                stop[j] = last[c, py, pxx]
                max_stop = max(max_stop, stop[j])
                for k in range(D):
                    vr[k, j] = v_render[c, py, pxx, k]
        for i in range(start + max_stop, start - 1, -1):
            g = ids[i]
            gx, gy, o = means2d[c, g, 0], means2d[c, g, 1], opacities[c, g]
            ca, cb, cc = conics[c, g, 0], conics[c, g, 1], conics[c, g, 2]
            lo, hi = px.tile_rows(gy, ca, cb, cc, o, y0)
            if lo >= hi:
                continue
            jlo, jhi = np.uint64(lo * TILE), np.uint64(hi * TILE)
            k_i = np.int32(i - start)
            px.bwd_alpha(
                gx, gy, ca, cb, cc, o, k_i, pxs, pys, T, w, ra, raw, v_a, va_out, stop, jlo, jhi
            )
            for k in range(D):
                g_color[i, k] = px.bwd_channel(
                    colors[c, g, k], w, T, ra, vr[k], behind[k], v_a, jlo, jhi
                )
            geo = px.bwd_geometry(gx, gy, ca, cb, cc, o, pxs, pys, w, raw, v_a, jlo, jhi)
            g_opac[i] = geo[0]
            g_conic[i, 0] = geo[1]
            g_conic[i, 1] = geo[2]
            g_conic[i, 2] = geo[3]
            g_xy[i, 0] = geo[4]
            g_xy[i, 1] = geo[5]
    return g_xy, g_conic, g_color, g_opac
