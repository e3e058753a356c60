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


# fastmath without 'nnan'/'ninf' (inputs can be non-finite in a broken optimisation and must
# stay visible) but with reassociation, so LLVM may vectorise the per-pixel loops and reductions.
FASTMATH = {"reassoc", "nsz", "contract", "arcp"}


@njit(inline="always", fastmath=FASTMATH)
def _exp_neg(s, F):  # pragma: no cover - numba
    """exp(−s) for s in [0, 6] in plain arithmetic, so the pixel loops vectorise (LLVM has no
    vector exp without SVML): Taylor degree 9 of exp(−s/16) (error < 2e-11), squared 4 times.
    Relative error ≈ 2e-6 in float32 (rounding in the squarings), 1e-10 in float64. Beyond
    s = 6, alpha = o·e^−s < 1/255 for any o ≤ 1, so callers clamp s to [0, 6]."""
    x = s * F(1.0 / 16.0)
    p = F(-1.0 / 362880.0)
    p = p * x + F(1.0 / 40320.0)
    p = p * x + F(-1.0 / 5040.0)
    p = p * x + F(1.0 / 720.0)
    p = p * x + F(-1.0 / 120.0)
    p = p * x + F(1.0 / 24.0)
    p = p * x + F(-1.0 / 6.0)
    p = p * x + F(0.5)
    p = p * x + F(-1.0)
    p = p * x + F(1.0)
    p = p * p
    p = p * p
    p = p * p
    return p * p


@njit(inline="always")
def _tile_rows(gy, a, b, c, o, y0):  # pragma: no cover - numba
    """Rows [lo, hi) of the tile starting at pixel row y0 where this Gaussian can reach
    alpha ≥ 1/255. σ ≥ dy²/(2Σyy) for every dx, so rows with dy² > 2·Σyy·ln(255·o) are skipped
    exactly; a small margin keeps float rounding on the safe (inclusive) side."""
    det = a * c - b * b
    thr = math.log(max(float(o) * 255.0, 1.0))
    if det <= 0.0:
        return 0, TILE
    ext = math.sqrt(2.0 * thr * float(a) / float(det)) * 1.0001 + 1e-3
    if not ext < 1e6:  # huge (or, from a degenerate conic, non-finite) extent: every row
        return 0, TILE
    lo = int(math.ceil(float(gy) - ext - 0.5)) - y0
    hi = int(math.floor(float(gy) + ext - 0.5)) - y0 + 1
    return max(lo, 0), min(hi, TILE)


# The per-Gaussian pixel loops live in small functions with unsigned bounds: numba wraps
# negative indices, and with a signed index LLVM can't prove the accesses are affine, so it
# won't vectorise; error_model="numpy" drops the ZeroDivisionError branch for the same reason.
# Each loop below compiles to 8-wide AVX2 (checked with LLVM's loop-vectorize remarks).
JIT = dict(fastmath=FASTMATH, error_model="numpy", cache=True)


@njit(**JIT)
def _fwd_pixels(gx, gy, ca, cb, cc, o, k_i, pxs, pys, T, w, stop, live, jlo, jhi):
    """Composite one Gaussian over pixels [jlo, jhi) of a tile: updates T, stop, live, and
    writes each pixel's weight alpha·T to w. → number of pixels that hit the T ≤ 1e-4 stop."""
    F = T.dtype.type
    n_ended = 0
    for j in range(jlo, jhi):
        dx = gx - pxs[j]
        dy = gy - pys[j]
        sig = F(0.5) * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
        alpha = min(F(0.999), o * _exp_neg(min(max(sig, F(0.0)), F(6.0)), F))
        hit = (sig >= F(0.0)) & (alpha >= F(ALPHA_MIN)) & (live[j] != 0)
        nt = T[j] * (F(1.0) - alpha)
        ends = hit & (nt <= F(T_EPS))
        use = hit & (nt > F(T_EPS))
        w[j] = alpha * T[j] if use else F(0.0)
        T[j] = nt if use else T[j]
        stop[j] = k_i if use else stop[j]
        live[j] = 0 if ends else live[j]
        n_ended += 1 if ends else 0
    return n_ended


@njit(**JIT)
def _accumulate(acc, w, col, jlo, jhi):
    for j in range(jlo, jhi):
        acc[j] += w[j] * col


@njit(**JIT)
def _bwd_pixels(gx, gy, ca, cb, cc, o, k_i, pxs, pys, T, w, ra, raw, v_a, va_out, stop, jlo, jhi):
    """Step pixels [jlo, jhi) back over one Gaussian: T becomes the transmittance in front of
    it; w = its weight (0 where it wasn't composited), ra = 1/(1 − alpha), raw = o·exp(−σ)
    (unclamped), v_a starts the alpha gradient with the alpha output's share,
    v_alpha·T_end/(1 − alpha)."""
    F = T.dtype.type
    for j in range(jlo, jhi):
        dx = gx - pxs[j]
        dy = gy - pys[j]
        sig = F(0.5) * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
        r_ = o * _exp_neg(min(max(sig, F(0.0)), F(6.0)), F)
        alpha = min(F(0.999), r_)
        hit = (sig >= F(0.0)) & (alpha >= F(ALPHA_MIN)) & (k_i <= stop[j])
        r = F(1.0) / (F(1.0) - alpha) if hit else F(1.0)
        T[j] = T[j] * r
        ra[j] = r
        raw[j] = r_
        w[j] = alpha * T[j] if hit else F(0.0)
        v_a[j] = va_out[j] * r if hit else F(0.0)


@njit(**JIT)
def _bwd_channel(col, w, T, ra, vr, behind, v_a, jlo, jhi):
    """One colour channel: d out/d alpha_i = c_i·T_i − (Σ behind)/(1 − alpha_i); → Σ w·v_out."""
    F = T.dtype.type
    s_col = F(0.0)
    for j in range(jlo, jhi):
        on = w[j] != F(0.0)
        s_col += w[j] * vr[j]
        v_a[j] += (col * T[j] - behind[j] * ra[j]) * vr[j] if on else F(0.0)
        behind[j] += col * w[j]
    return s_col


@njit(**JIT)
def _bwd_geometry(gx, gy, ca, cb, cc, o, pxs, pys, w, raw, v_a, jlo, jhi):
    """alpha = o·exp(−σ) → gradients of opacity, conic (a, b, c) and the 2D mean, summed over
    the pixels. Clamped alpha (o·e^−σ > 0.999) has no gradient, as in gsplat."""
    F = w.dtype.type
    s_op = F(0.0)
    s_a = F(0.0)
    s_b = F(0.0)
    s_c = F(0.0)
    s_x = F(0.0)
    s_y = F(0.0)
    for j in range(jlo, jhi):
        dx = gx - pxs[j]
        dy = gy - pys[j]
        va = v_a[j] if (w[j] != F(0.0)) & (raw[j] <= F(0.999)) else F(0.0)
        v_sig = -raw[j] * va
        s_op += raw[j] * va
        s_a += dx * dx * v_sig
        s_b += dx * dy * v_sig
        s_c += dy * dy * v_sig
        s_x += v_sig * (ca * dx + cb * dy)
        s_y += v_sig * (cb * dx + cc * dy)
    # d alpha/d o = exp(−σ) = raw/o; the conic's diagonal enters σ with a factor 1/2.
    return s_op / o, F(0.5) * s_a, s_b, F(0.5) * s_c, s_x, s_y


@njit(cache=True)
def _spread_stride(n_jobs):  # pragma: no cover - numba
    """A stride coprime with n_jobs near n_jobs/φ. Visiting tiles as (k·stride) mod n_jobs makes
    every contiguous block of k — which is what each thread gets under numba's static schedule —
    a sample spread over the whole image, so threads get similar work without a dynamic queue."""
    stride = max(1, int(n_jobs * 0.6180339887))
    while math.gcd(stride, n_jobs) != 1:
        stride += 1
    return stride


@njit(inline="always")
def _tile_pixels(x0, y0, dtype):  # pragma: no cover - numba
    """Pixel-centre coordinates of a tile's 256 pixels, row-major."""
    F = dtype.type
    pxs = np.empty(TILE * TILE, dtype)
    pys = np.empty(TILE * TILE, dtype)
    for j in range(TILE * TILE):
        pxs[j] = F(x0 + j % TILE) + F(0.5)
        pys[j] = F(y0 + j // TILE) + F(0.5)
    return pxs, pys


@njit(parallel=True, **JIT)
def raster_fwd(
    means2d, conics, colors, opacities, offsets, ids, width, height, tiles_x, tiles_y
):  # pragma: no cover - numba
    """→ render [C,H,W,D], t_final [C,H,W], last [C,H,W] int32 (position in the tile list of the
    last composited Gaussian, −1 if none).

    Per tile: Gaussians in depth order (outer loop), the tile's pixels inner (vectorised); a
    Gaussian only visits the rows it can reach (_tile_rows)."""
    C, _, D = colors.shape
    render = np.zeros((C, height, width, D), colors.dtype)
    t_final = np.ones((C, height, width), colors.dtype)
    last = np.full((C, height, width), -1, np.int32)
    n_tiles = tiles_x * tiles_y
    P = TILE * TILE
    n_jobs = C * n_tiles
    stride = _spread_stride(n_jobs)
    for step in prange(n_jobs):
        job = (step * stride) % n_jobs
        c = job // n_tiles
        y0 = ((job % n_tiles) // tiles_x) * TILE
        x0 = (job % tiles_x) * TILE
        start = offsets[job]
        pxs, pys = _tile_pixels(x0, y0, colors.dtype)
        T = np.ones(P, colors.dtype)
        w = np.zeros(P, colors.dtype)
        acc = np.zeros((D, P), colors.dtype)
        stop = np.full(P, -1, np.int32)
        live = np.ones(P, np.int32)  # 0 once the pixel has hit the T ≤ 1e-4 stop
        n_live = P
        for i in range(start, offsets[job + 1]):
            g = ids[i]
            gx, gy, o = means2d[c, g, 0], means2d[c, g, 1], opacities[c, g]
            ca, cb, cc = conics[c, g, 0], conics[c, g, 1], conics[c, g, 2]
            lo, hi = _tile_rows(gy, ca, cb, cc, o, y0)
            if lo >= hi:
                continue
            jlo, jhi = np.uint64(lo * TILE), np.uint64(hi * TILE)
            k_i = np.int32(i - start)
            n_live -= _fwd_pixels(gx, gy, ca, cb, cc, o, k_i, pxs, pys, T, w, stop, live, jlo, jhi)
            for k in range(D):
                _accumulate(acc[k], w, colors[c, g, k], jlo, jhi)
            if n_live == 0:
                break
        for j in range(P):
            py = y0 + j // TILE
            px = x0 + j % TILE
            if py < height and px < width:
                for k in range(D):
                    render[c, py, px, k] = acc[k, j]
                t_final[c, py, px] = T[j]
                last[c, py, px] = stop[j]
    return render, t_final, last


@njit(parallel=True, **JIT)
def raster_bwd(
    means2d, conics, colors, opacities, offsets, ids, width, height, tiles_x, tiles_y,
    t_final, last, v_render, v_alpha,
):  # pragma: no cover - numba  # fmt: skip
    """Reverse traversal from each pixel's last Gaussian. → per-intersection gradients
    v_means2d [I,2], v_conics [I,3], v_colors [I,D], v_opacities [I] (I = len(ids)).

    Same tile/loop shape as the forward. Per pixel it carries T (recovered by dividing by
    1 − alpha, as gsplat does) and Σ colour·weight of what lies behind; per Gaussian it sums
    the pixel contributions (vectorised reductions) and writes them once."""
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
    stride = _spread_stride(n_jobs)
    for step in prange(n_jobs):
        job = (step * stride) % n_jobs
        c = job // n_tiles
        y0 = ((job % n_tiles) // tiles_x) * TILE
        x0 = (job % tiles_x) * TILE
        start = offsets[job]
        pxs, pys = _tile_pixels(x0, y0, dt)
        T = np.zeros(P, dt)
        va_out = np.zeros(P, dt)  # v_alpha·T_end: d(1 − T_end)/dα_i = T_end/(1 − α_i)
        vr = np.zeros((D, P), dt)
        behind = np.zeros((D, P), dt)
        stop = np.full(P, -1, np.int32)
        w = np.zeros(P, dt)
        ra = np.ones(P, dt)
        raw = np.zeros(P, dt)
        v_a = np.zeros(P, dt)
        max_stop = -1
        for j in range(P):
            py = y0 + j // TILE
            px = x0 + j % TILE
            if py < height and px < width:
                T[j] = t_final[c, py, px]
                va_out[j] = v_alpha[c, py, px] * T[j]
                stop[j] = last[c, py, px]
                max_stop = max(max_stop, stop[j])
                for k in range(D):
                    vr[k, j] = v_render[c, py, px, k]
        for i in range(start + max_stop, start - 1, -1):
            g = ids[i]
            gx, gy, o = means2d[c, g, 0], means2d[c, g, 1], opacities[c, g]
            ca, cb, cc = conics[c, g, 0], conics[c, g, 1], conics[c, g, 2]
            lo, hi = _tile_rows(gy, ca, cb, cc, o, y0)
            if lo >= hi:
                continue
            jlo, jhi = np.uint64(lo * TILE), np.uint64(hi * TILE)
            k_i = np.int32(i - start)
            _bwd_pixels(
                gx, gy, ca, cb, cc, o, k_i, pxs, pys, T, w, ra, raw, v_a, va_out, stop, jlo, jhi
            )
            for k in range(D):
                g_color[i, k] = _bwd_channel(
                    colors[c, g, k], w, T, ra, vr[k], behind[k], v_a, jlo, jhi
                )
            s = _bwd_geometry(gx, gy, ca, cb, cc, o, pxs, pys, w, raw, v_a, jlo, jhi)
            g_opac[i] = s[0]
            g_conic[i, 0] = s[1]
            g_conic[i, 1] = s[2]
            g_conic[i, 2] = s[3]
            g_xy[i, 0] = s[4]
            g_xy[i, 1] = s[5]
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
