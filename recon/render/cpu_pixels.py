"""The per-Gaussian pixel loops of the cpu backend (numba), written so LLVM vectorises them.

Each function handles one Gaussian over pixels [jlo, jhi) of a 16×16 tile (row-major), with the
per-pixel state in small arrays that stay in L1. What makes them vectorise (8-wide AVX2 or
16-wide AVX-512 for float32, whichever the machine has; checked with LLVM's remarks and the asm):
  - unsigned loop bounds: numba wraps negative indices, and with a signed index LLVM can't prove
    the accesses are affine;
  - error_model="numpy": no ZeroDivisionError branch inside the loop;
  - exp(−σ) as a polynomial (LLVM has no vector exp without Intel's SVML);
  - branch-free bodies (selects) and fastmath reassociation for the reductions, but without
    'nnan'/'ninf' so non-finite inputs stay visible.
Each is one fused pass per Gaussian over exactly four channels, each channel its own 1D array
(c0..c3, a0..a3, vr0..vr3, b0..b3): with the channels as the rows of a 2D array, or a loop over
them, LLVM gives up on vectorising and the loop runs 4-5× slower. The backward pass used to be
three loops (alpha, one per channel, geometry) with w, 1/(1 − alpha) and the raw alpha kept in
arrays between them; fused, nothing round-trips through memory and it runs 1.6× faster on the
fast preset's DTU scan37 renders (cpu.py runs renders of other channel counts as groups of four).
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
def fwd_pixels(gx, gy, ca, cb, cc, o, k_i, pxs, pys, T, stop, live, c0, c1, c2, c3, a0, a1, a2, a3, jlo, jhi):
    """Composite one Gaussian (colour c0..c3) over pixels [jlo, jhi): updates T, stop (its list
    position k_i where composited), live, and the four channel sums a0..a3.
    → pixels that just hit the T ≤ 1e-4 stop."""
    F = T.dtype.type
    n_ended = F(0.0)  # a float count: an int64 one would halve the vector width
    for j in range(jlo, jhi):
        sig, raw, _, _ = _raw_alpha(gx, gy, ca, cb, cc, o, pxs[j], pys[j], F)
        alpha = min(F(ALPHA_MAX), raw)
        hit = (sig >= F(0.0)) & (alpha >= F(ALPHA_MIN)) & (live[j] != 0)
        nt = T[j] * (F(1.0) - alpha)
        ends = hit & (nt <= F(T_EPS))
        use = hit & (nt > F(T_EPS))
        w = alpha * T[j] if use else F(0.0)
        a0[j] += w * c0
        a1[j] += w * c1
        a2[j] += w * c2
        a3[j] += w * c3
        T[j] = nt if use else T[j]
        stop[j] = k_i if use else stop[j]
        live[j] = 0 if ends else live[j]
        n_ended += F(1.0) if ends else F(0.0)
    return int(n_ended)


@njit(**JIT)
def bwd_pixels(gx, gy, ca, cb, cc, o, k_i, pxs, pys, T, va_out, stop, c0, c1, c2, c3,
               vr0, vr1, vr2, vr3, b0, b1, b2, b3, jlo, jhi):  # fmt: skip
    """Backward for one Gaussian (reverse order) over pixels [jlo, jhi), in one pass: T becomes
    the transmittance in front of it (T/(1 − alpha), as gsplat); d out/d alpha = c·T −
    behind/(1 − alpha) per channel (behind: b0..b3, the colour·weight of what lies behind, grown
    here) plus the alpha output's share (va_out); then alpha = o·e^−σ back to the opacity, conic
    and 2D mean. Clamped alpha (o·e^−σ > 0.999) has no gradient, as in gsplat.
    → (the four colour gradients, opacity, conic a, b, c, mean x, y), summed over the pixels."""
    F = T.dtype.type
    s0 = s1 = s2 = s3 = s_op = s_a = s_b = s_c = s_x = s_y = F(0.0)
    for j in range(jlo, jhi):
        sig, raw, dx, dy = _raw_alpha(gx, gy, ca, cb, cc, o, pxs[j], pys[j], F)
        alpha = min(F(ALPHA_MAX), raw)
        hit = (sig >= F(0.0)) & (alpha >= F(ALPHA_MIN)) & (k_i <= stop[j])
        ra = F(1.0) / (F(1.0) - alpha)
        t = T[j] * ra if hit else T[j]
        T[j] = t
        w = alpha * t if hit else F(0.0)
        va = va_out[j] * ra
        va += (c0 * t - b0[j] * ra) * vr0[j]
        va += (c1 * t - b1[j] * ra) * vr1[j]
        va += (c2 * t - b2[j] * ra) * vr2[j]
        va += (c3 * t - b3[j] * ra) * vr3[j]
        s0 += w * vr0[j]
        s1 += w * vr1[j]
        s2 += w * vr2[j]
        s3 += w * vr3[j]
        b0[j] += c0 * w
        b1[j] += c1 * w
        b2[j] += c2 * w
        b3[j] += c3 * w
        va = va if hit & (raw <= F(ALPHA_MAX)) else F(0.0)
        v_sig = -raw * va
        s_op += raw * va
        s_a += dx * dx * v_sig
        s_b += dx * dy * v_sig
        s_c += dy * dy * v_sig
        s_x += v_sig * (ca * dx + cb * dy)
        s_y += v_sig * (cb * dx + cc * dy)
    # d alpha/d o = e^−σ = raw/o; the conic's diagonal enters σ with a factor 1/2.
    return s0, s1, s2, s3, s_op / o, F(0.5) * s_a, s_b, F(0.5) * s_c, s_x, s_y


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
