"""The per-Gaussian pixel loops of the cpu backend (numba), written so LLVM vectorises them.

Each function handles one Gaussian over pixels [jlo, jhi) of a 16×16 tile (row-major), with the
per-pixel state in small arrays that stay in L1. What makes them vectorise (8-wide AVX2 for
float32; checked with LLVM's loop-vectorize remarks):
  - unsigned loop bounds: numba wraps negative indices, and with a signed index LLVM can't prove
    the accesses are affine;
  - error_model="numpy": no ZeroDivisionError branch inside the loop;
  - exp(−σ) as a polynomial (LLVM has no vector exp without Intel's SVML);
  - branch-free bodies (selects) and fastmath reassociation for the reductions, but without
    'nnan'/'ninf' so non-finite inputs stay visible.
Per Gaussian the forward makes one alpha pass plus one pass per channel, the backward an alpha
pass, one per channel and a geometry pass. Fusing them into one loop (with the channel rows of
2D arrays) measured 4-5× slower: LLVM then gave up on vectorising it. With separate 1D channel
arrays a fused loop only tied the multi-pass one, so the simpler shape stays.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .cpu_binning import TILE

ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
T_EPS = 1e-4
FASTMATH = {"reassoc", "nsz", "contract", "arcp"}
JIT = dict(fastmath=FASTMATH, error_model="numpy", cache=True)


@njit(inline="always", fastmath=FASTMATH)
def exp_neg(s, F):  # pragma: no cover - numba
    """exp(−s) for s in [0, 6] (callers clamp; beyond 6, o·e^−s < 1/255 for any o ≤ 1):
    Taylor degree 7 of exp(−s/16) (truncation < 1e-8), squared 4 times. Relative error ≈ 2e-6 in
    float32 (rounding in the squarings, on par with float32 σ itself), 2e-7 in float64."""
    x = s * F(1.0 / 16.0)
    p = F(-1.0 / 5040.0)
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
def tile_rows(gy, a, b, c, o, y0):  # pragma: no cover - numba
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


@njit(inline="always", fastmath=FASTMATH)
def _raw_alpha(gx, gy, ca, cb, cc, o, px, py, F):  # pragma: no cover - numba
    """→ (σ, o·exp(−σ) unclamped, dx, dy) at one pixel centre."""
    dx = gx - px
    dy = gy - py
    sig = F(0.5) * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
    return sig, o * exp_neg(min(max(sig, F(0.0)), F(6.0)), F), dx, dy


@njit(**JIT)
def fwd_pixels(gx, gy, ca, cb, cc, o, k_i, pxs, pys, T, w, stop, live, jlo, jhi):
    """Composite one Gaussian over pixels [jlo, jhi): updates T, stop (its list position k_i
    where composited) and live, and writes each pixel's weight alpha·T to w (the channels are
    added by `accumulate`). → pixels that just hit the T ≤ 1e-4 stop."""
    F = T.dtype.type
    n_ended = F(0.0)  # a float count: an int64 one would halve the vector width
    for j in range(jlo, jhi):
        sig, raw, _, _ = _raw_alpha(gx, gy, ca, cb, cc, o, pxs[j], pys[j], F)
        alpha = min(F(ALPHA_MAX), raw)
        hit = (sig >= F(0.0)) & (alpha >= F(ALPHA_MIN)) & (live[j] != 0)
        nt = T[j] * (F(1.0) - alpha)
        ends = hit & (nt <= F(T_EPS))
        use = hit & (nt > F(T_EPS))
        w[j] = alpha * T[j] if use else F(0.0)
        T[j] = nt if use else T[j]
        stop[j] = k_i if use else stop[j]
        live[j] = 0 if ends else live[j]
        n_ended += F(1.0) if ends else F(0.0)
    return int(n_ended)


@njit(**JIT)
def accumulate(acc, w, col, jlo, jhi):
    for j in range(jlo, jhi):
        acc[j] += w[j] * col


@njit(**JIT)
def bwd_alpha(gx, gy, ca, cb, cc, o, k_i, pxs, pys, T, w, ra, raw, v_a, va_out, stop, jlo, jhi):
    """Backward for one Gaussian (reverse order), pass 1: T becomes the transmittance in front of
    it (T/(1 − alpha), as gsplat), w its weight (0 where it wasn't composited),
    ra = 1/(1 − alpha), raw = o·e^−σ unclamped, and v_a starts with the alpha output's share."""
    F = T.dtype.type
    for j in range(jlo, jhi):
        sig, r_, _, _ = _raw_alpha(gx, gy, ca, cb, cc, o, pxs[j], pys[j], F)
        alpha = min(F(ALPHA_MAX), r_)
        hit = (sig >= F(0.0)) & (alpha >= F(ALPHA_MIN)) & (k_i <= stop[j])
        r = F(1.0) / (F(1.0) - alpha) if hit else F(1.0)
        T[j] = T[j] * r
        ra[j] = r
        raw[j] = r_
        w[j] = alpha * T[j] if hit else F(0.0)
        v_a[j] = va_out[j] * r if hit else F(0.0)


@njit(**JIT)
def bwd_channel(col, w, T, ra, vr, behind, v_a, jlo, jhi):
    """Backward pass 2, once per channel: d out/d alpha = c·T − behind/(1 − alpha) into v_a,
    behind += c·w. → Σ w·v_out (the colour gradient)."""
    F = T.dtype.type
    s_col = F(0.0)
    for j in range(jlo, jhi):
        on = w[j] != F(0.0)
        s_col += w[j] * vr[j]
        v_a[j] += (col * T[j] - behind[j] * ra[j]) * vr[j] if on else F(0.0)
        behind[j] += col * w[j]
    return s_col


@njit(**JIT)
def bwd_geometry(gx, gy, ca, cb, cc, o, pxs, pys, w, raw, v_a, jlo, jhi):
    """Backward pass 3: alpha = o·e^−σ → gradients of opacity, conic (a, b, c) and 2D mean, summed
    over the pixels. Clamped alpha (o·e^−σ > 0.999) has no gradient, as in gsplat."""
    F = w.dtype.type
    s_op = s_a = s_b = s_c = s_x = s_y = F(0.0)
    for j in range(jlo, jhi):
        dx = gx - pxs[j]
        dy = gy - pys[j]
        va = v_a[j] if (w[j] != F(0.0)) & (raw[j] <= F(ALPHA_MAX)) else F(0.0)
        v_sig = -raw[j] * va
        s_op += raw[j] * va
        s_a += dx * dx * v_sig
        s_b += dx * dy * v_sig
        s_c += dy * dy * v_sig
        s_x += v_sig * (ca * dx + cb * dy)
        s_y += v_sig * (cb * dx + cc * dy)
    # d alpha/d o = e^−σ = raw/o; the conic's diagonal enters σ with a factor 1/2.
    return s_op / o, F(0.5) * s_a, s_b, F(0.5) * s_c, s_x, s_y


@njit(cache=True)
def spread_stride(n_jobs):  # pragma: no cover - numba
    """A stride coprime with n_jobs near n_jobs/φ. Visiting tiles as (k·stride) mod n_jobs makes
    every contiguous block of k — what each thread gets under numba's static schedule — a sample
    spread over the whole image, so threads get similar work without a dynamic queue."""
    stride = max(1, int(n_jobs * 0.6180339887))
    while math.gcd(stride, n_jobs) != 1:
        stride += 1
    return stride


@njit(inline="always")
def tile_pixels(x0, y0, dtype):  # pragma: no cover - numba
    """Pixel-centre coordinates of a tile's 256 pixels, row-major."""
    F = dtype.type
    pxs = np.empty(TILE * TILE, dtype)
    pys = np.empty(TILE * TILE, dtype)
    for j in range(TILE * TILE):
        pxs[j] = F(x0 + j % TILE) + F(0.5)
        pys[j] = F(y0 + j // TILE) + F(0.5)
    return pxs, pys
