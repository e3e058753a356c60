"""The per-pixel arithmetic of the cpu backend (numba): one Gaussian over one 16-pixel row of a tile.

A tile's per-pixel state lives in one flat buffer S of `TILE * TILE`-long rows (T, the four
channel sums, ...; the row offsets below), and each function here handles one Gaussian over the
16 pixels of one tile row, a loop of constant trip count 16 that LLVM turns into a single
16-wide (AVX-512) or two 8-wide (AVX2) vector passes. Why this shape:
  - every access is S[constant + base + q] off one pointer, so LLVM needs no run-time alias
    checks (the earlier per-Gaussian loop over [jlo, jhi) of nine separate arrays spent ~300
    instructions per call on them, as much as the arithmetic of a typical Gaussian);
  - the row's dy is one scalar, so σ costs two FMAs per pixel, and the backward's geometric
    sums need fewer products (see bwd_row);
  - loop indices are unsigned (numba wraps negative indices, and with a signed index LLVM can't
    prove the accesses affine), error_model="numpy" (no ZeroDivisionError branch), exp(−σ) as a
    polynomial (LLVM has no vector exp without Intel's SVML), branch-free bodies and fastmath
    reassociation without 'nnan'/'ninf' so non-finite inputs stay visible.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

TILE = 16
P = TILE * TILE
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
T_EPS = 1e-4
FASTMATH = {"reassoc", "nsz", "contract", "arcp"}
JIT = dict(fastmath=FASTMATH, error_model="numpy", cache=True)

U16 = np.uint64(TILE)
# Forward state rows: T (transmittance), A0..A3 (channel sums), STOP (list position of the last
# Gaussian composited, as a float), LIVE (1 until the pixel hits the T ≤ 1e-4 stop).
F_A0, F_A1, F_A2, F_A3, F_STOP, F_LIVE = (np.uint64(k * P) for k in range(1, 7))
FWD_ROWS = 7
# Backward state rows: T, VA (d loss/d alpha_out · T_end), STOP, VR0..VR3 (d loss/d render),
# B0..B3 (colour · weight of what lies behind), then the per-Gaussian accumulators, 16 wide.
B_VA, B_STOP, B_VR0, B_VR1, B_VR2, B_VR3, B_B0, B_B1, B_B2, B_B3 = (np.uint64(k * P) for k in range(1, 11))
N_ACC = 10  # colour 0..3, Σv, Σv·dx, Σv·dx², Σv·dy, Σv·dx·dy, Σv·dy² (v = d loss/d σ)
# The accumulators are per pixel too (rows 11..20), written once per (Gaussian, row) and summed
# over the Gaussian's rows afterwards (acc_sums): addressed off the same row base as the state,
# they keep every access a constant distance apart. (One 16-wide accumulator at a fixed place
# is a run-time distance from the row's state, and with ten of them LLVM's alias checks gave up
# on vectorising the loop: 8× slower.)
ACC0, ACC1, ACC2, ACC3, ACC4, ACC5, ACC6, ACC7, ACC8, ACC9 = (np.uint64((11 + k) * P) for k in range(N_ACC))
BWD_ROWS = 11 + N_ACC


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
def fwd_row(S, base, gxr, dy, hca, cb, hcc, o, k_i, c0, c1, c2, c3, F):  # pragma: no cover
    """Composite one Gaussian (colour c0..c3, list position k_i) over the row of pixels
    S[base:base+16]. gxr = mean x − the row's first pixel centre, dy = mean y − the row's centre
    line, hca/hcc = half the conic's diagonal. Updates T, the channel sums, STOP and LIVE."""
    bdy = cb * dy
    cdy = hcc * dy * dy
    for q in range(U16):
        j = base + q
        dx = gxr - F(q)
        sig = (hca * dx + bdy) * dx + cdy
        raw = o * exp_neg(min(max(sig, F(0.0)), F(6.0)), F)
        alpha = min(F(ALPHA_MAX), raw)
        T = S[j]
        live = S[F_LIVE + j]
        hit = (sig >= F(0.0)) & (alpha >= F(ALPHA_MIN)) & (live != F(0.0))
        nt = T * (F(1.0) - alpha)
        use = hit & (nt > F(T_EPS))
        w = alpha * T if use else F(0.0)
        S[F_A0 + j] += w * c0
        S[F_A1 + j] += w * c1
        S[F_A2 + j] += w * c2
        S[F_A3 + j] += w * c3
        S[j] = nt if use else T
        S[F_STOP + j] = k_i if use else S[F_STOP + j]
        S[F_LIVE + j] = F(0.0) if hit & (nt <= F(T_EPS)) else live


@njit(inline="always", fastmath=FASTMATH)
def bwd_row(S, base, gxr, dy, hca, cb, hcc, o, k_i, c0, c1, c2, c3, F):  # pragma: no cover
    """Backward of one Gaussian (reverse order) over the row S[base:base+16], as gsplat: T
    becomes the transmittance in front of it (T/(1 − alpha)); d out/d alpha = c·T −
    behind/(1 − alpha) per channel (behind grows here) plus the alpha output's share (VA); then
    v = d loss/d σ = −alpha·d loss/d alpha. Adds to the 16-wide accumulators: the four colour
    gradients and the six sums from which opacity, conic and mean gradients follow (dy is
    constant along the row, so Σv·dy and friends replace per-pixel products). Clamped alpha
    (o·e^−σ > 0.999) has no gradient, as in gsplat."""
    bdy = cb * dy
    cdy = hcc * dy * dy
    dy2 = dy * dy
    for q in range(U16):
        j = base + q
        dx = gxr - F(q)
        sig = (hca * dx + bdy) * dx + cdy
        raw = o * exp_neg(min(max(sig, F(0.0)), F(6.0)), F)
        alpha = min(F(ALPHA_MAX), raw)
        hit = (sig >= F(0.0)) & (alpha >= F(ALPHA_MIN)) & (k_i <= S[B_STOP + j])
        ra = F(1.0) / (F(1.0) - alpha)
        T = S[j]
        t = T * ra if hit else T
        S[j] = t
        w = alpha * t if hit else F(0.0)
        vr0, vr1, vr2, vr3 = S[B_VR0 + j], S[B_VR1 + j], S[B_VR2 + j], S[B_VR3 + j]
        b0, b1, b2, b3 = S[B_B0 + j], S[B_B1 + j], S[B_B2 + j], S[B_B3 + j]
        va = S[B_VA + j] * ra
        va += (c0 * t - b0 * ra) * vr0
        va += (c1 * t - b1 * ra) * vr1
        va += (c2 * t - b2 * ra) * vr2
        va += (c3 * t - b3 * ra) * vr3
        S[B_B0 + j] = b0 + c0 * w
        S[B_B1 + j] = b1 + c1 * w
        S[B_B2 + j] = b2 + c2 * w
        S[B_B3 + j] = b3 + c3 * w
        v = -raw * va if hit & (raw <= F(ALPHA_MAX)) else F(0.0)
        vx = v * dx
        S[ACC0 + j] = w * vr0
        S[ACC1 + j] = w * vr1
        S[ACC2 + j] = w * vr2
        S[ACC3 + j] = w * vr3
        S[ACC4 + j] = v
        S[ACC5 + j] = vx
        S[ACC6 + j] = vx * dx
        S[ACC7 + j] = v * dy
        S[ACC8 + j] = vx * dy
        S[ACC9 + j] = v * dy2


@njit(inline="always", fastmath=FASTMATH)
def acc_sums(S, out, jlo, jhi, F):  # pragma: no cover - numba
    """The ten accumulators summed over pixels [jlo, jhi) (the Gaussian's rows) into out[0:10],
    and zeroed: bwd_row overwrites them in the rows it visits, and a row it skips (every pixel of
    it stopped in front) must read as zero. (Zeroing skipped rows in an else branch instead made
    numba keep an atomic reference count and a vzeroupper around every row.)"""
    for k in range(N_ACC):
        s = F(0.0)
        off = ACC0 + np.uint64(k * P)
        for j in range(jlo, jhi):
            s += S[off + j]
            S[off + j] = F(0.0)
        out[k] = s
