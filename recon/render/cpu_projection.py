"""EWA projection for the cpu backend: numba forward and analytic backward, one Gaussian per task.

Same semantics as the torch `recon.render.projection.project` (gsplat 1.5.3 fully_fused_projection,
classic, pinhole), which stays the readable specification and the test oracle. In torch the
projection is ~60 elementwise ops forward and twice that backward over [C,N] tensors; each op is
its own OpenMP region, and on a 2-core machine their thread wake-ups cost more than the arithmetic
(scripts/bench_raster.py case b, 2 threads: forward+backward went from 0.67 s to 0.37 s when the
projection moved here). Here each Gaussian is one loop iteration (cameras inside, so per-Gaussian
gradients sum without races), the Gaussians cut into contiguous chunks run on the cpu backend's
threads (cpu_kernels.run_chunks: serial `nogil` kernels compile in a fraction of a parfor's time).

Arithmetic is float64 inside (inputs may be float32); outputs take the input dtype. No fastmath:
radii are ceil()s of float expressions and should match the torch version bit for bit in practice.
Gradients flow to means, quats and scales (opacity only sets the radius, as in gsplat; cameras are
constants here: when viewmats or Ks need gradients the front door uses the torch projection).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit
from torch import Tensor

from .cpu import KERNEL_LOCK
from .cpu_kernels import run_chunks
from .projection import ALPHA_THRESHOLD, EPS2D, MAX_RADIUS, Projected

_JIT = dict(cache=True, error_model="numpy")


@njit(inline="always")
def _matmul(a, b):  # pragma: no cover - numba
    """Product of two 3×3 matrices held as flat row-major 9-tuples (no heap, no BLAS)."""
    return (
        a[0] * b[0] + a[1] * b[3] + a[2] * b[6], a[0] * b[1] + a[1] * b[4] + a[2] * b[7],
        a[0] * b[2] + a[1] * b[5] + a[2] * b[8],
        a[3] * b[0] + a[4] * b[3] + a[5] * b[6], a[3] * b[1] + a[4] * b[4] + a[5] * b[7],
        a[3] * b[2] + a[4] * b[5] + a[5] * b[8],
        a[6] * b[0] + a[7] * b[3] + a[8] * b[6], a[6] * b[1] + a[7] * b[4] + a[8] * b[7],
        a[6] * b[2] + a[7] * b[5] + a[8] * b[8],
    )  # fmt: skip


@njit(inline="always")
def _transpose(a):  # pragma: no cover - numba
    return (a[0], a[3], a[6], a[1], a[4], a[7], a[2], a[5], a[8])


@njit(inline="always")
def _rotmat(qw, qx, qy, qz):  # pragma: no cover - numba
    """Unit quaternion (wxyz) → rotation, flat row-major."""
    return (
        1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qw * qz), 2 * (qx * qz + qw * qy),
        2 * (qx * qy + qw * qz), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qw * qx),
        2 * (qx * qz - qw * qy), 2 * (qy * qz + qw * qx), 1 - 2 * (qx * qx + qy * qy),
    )  # fmt: skip


@njit(inline="always")
def _gaussian(quats, scales, n):  # pragma: no cover - numba
    """→ unit quat (w, x, y, z), |q|, R, M = R·diag(s), Σ = M Mᵀ (matrices flat row-major)."""
    w, x, y, z = float(quats[n, 0]), float(quats[n, 1]), float(quats[n, 2]), float(quats[n, 3])
    norm = max(math.sqrt(w * w + x * x + y * y + z * z), 1e-12)  # F.normalize's eps
    w, x, y, z = w / norm, x / norm, y / norm, z / norm
    r = _rotmat(w, x, y, z)
    s0, s1, s2 = float(scales[n, 0]), float(scales[n, 1]), float(scales[n, 2])
    m = (r[0] * s0, r[1] * s1, r[2] * s2, r[3] * s0, r[4] * s1, r[5] * s2,
         r[6] * s0, r[7] * s1, r[8] * s2)  # fmt: skip
    return (w, x, y, z), norm, r, m, _matmul(m, _transpose(m))


@njit(inline="always")
def _camera(viewmats, Ks, c):  # pragma: no cover - numba
    """Camera c: rotation (flat), translation, fx, fy, cx, cy as float64."""
    v = viewmats
    R = (float(v[c, 0, 0]), float(v[c, 0, 1]), float(v[c, 0, 2]),
         float(v[c, 1, 0]), float(v[c, 1, 1]), float(v[c, 1, 2]),
         float(v[c, 2, 0]), float(v[c, 2, 1]), float(v[c, 2, 2]))  # fmt: skip
    t = (float(v[c, 0, 3]), float(v[c, 1, 3]), float(v[c, 2, 3]))
    return R, t, float(Ks[c, 0, 0]), float(Ks[c, 1, 1]), float(Ks[c, 0, 2]), float(Ks[c, 1, 2])


@njit(inline="always")
def _to_camera(R, t, means, n):  # pragma: no cover - numba
    mx, my, mz = float(means[n, 0]), float(means[n, 1]), float(means[n, 2])
    return (R[0] * mx + R[1] * my + R[2] * mz + t[0], R[3] * mx + R[4] * my + R[5] * mz + t[1],
            R[6] * mx + R[7] * my + R[8] * mz + t[2])  # fmt: skip


@njit(inline="always")
def _clamped_dirs(x, y, z, fx, fy, cx, cy, width, height):  # pragma: no cover - numba
    """x/z and y/z clamped to the image plus 0.3 of the half-FOV tangent (gsplat), and whether
    each was inside its clamp (1.0) or not (0.0: the derivative is 0 there)."""
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos, lim_x_neg = (width - cx) / fx + 0.3 * tan_fovx, cx / fx + 0.3 * tan_fovx
    lim_y_pos, lim_y_neg = (height - cy) / fy + 0.3 * tan_fovy, cy / fy + 0.3 * tan_fovy
    u, v = x / z, y / z
    ux = min(lim_x_pos, max(-lim_x_neg, u))
    uy = min(lim_y_pos, max(-lim_y_neg, v))
    return ux, uy, 1.0 if ux == u else 0.0, 1.0 if uy == v else 0.0


@njit(inline="always")
def _cov2d(S, j00, j11, j02, j12):  # pragma: no cover - numba
    """J S Jᵀ + 0.3·I with J = [[j00, 0, j02], [0, j11, j12]], S flat → (c00, c01, c11)."""
    c00 = j00 * j00 * S[0] + 2 * j00 * j02 * S[2] + j02 * j02 * S[8] + EPS2D
    c01 = j00 * j11 * S[1] + j00 * j12 * S[2] + j02 * j11 * S[5] + j02 * j12 * S[8]
    c11 = j11 * j11 * S[4] + 2 * j11 * j12 * S[5] + j12 * j12 * S[8] + EPS2D
    return c00, c01, c11


@njit(inline="always")
def _radii(mx, my, c00, c11, o, width, height):  # pragma: no cover - numba
    """Opacity-aware per-axis pixel radii and validity, as projection._radii."""
    if not o >= ALPHA_THRESHOLD:
        return 0, 0, False
    extend = min(math.sqrt(2.0 * math.log(max(o, ALPHA_THRESHOLD) / ALPHA_THRESHOLD)), 3.33)
    rx = math.ceil(extend * math.sqrt(max(c00, 0.0)))
    ry = math.ceil(extend * math.sqrt(max(c11, 0.0)))
    if not (rx > 0 or ry > 0):
        return 0, 0, False
    if not (mx + rx > 0 and mx - rx < width and my + ry > 0 and my - ry < height):
        return 0, 0, False
    return int(min(rx, MAX_RADIUS)), int(min(ry, MAX_RADIUS)), True


def project_fwd(means, quats, scales, opacities, viewmats, Ks, width, height, near, far):
    """→ means2d [C,N,2], conics [C,N,3], depths [C,N] (input dtype), radii [C,N,2] int32."""
    N, C, dt = means.shape[0], viewmats.shape[0], means.dtype
    means2d, conics = np.zeros((C, N, 2), dt), np.zeros((C, N, 3), dt)
    depths, radii = np.zeros((C, N), dt), np.zeros((C, N, 2), np.int32)
    run_chunks(_project_range, N, means, quats, scales, opacities, viewmats, Ks, width, height, near, far,
               means2d, conics, depths, radii)  # fmt: skip
    return means2d, conics, depths, radii


@njit(nogil=True, **_JIT)
def _project_range(
    means, quats, scales, opacities, viewmats, Ks, width, height, near, far,
    means2d, conics, depths, radii, lo, hi,
):  # pragma: no cover - numba  # fmt: skip
    for n in range(lo, hi):
        _project_one(n, means, quats, scales, opacities, viewmats, Ks, width, height, near, far,
                     means2d, conics, depths, radii)  # fmt: skip


@njit(**_JIT)
def _project_one(
    n, means, quats, scales, opacities, viewmats, Ks, width, height, near, far,
    means2d, conics, depths, radii,
):  # pragma: no cover - numba  # fmt: skip
    """Projects Gaussian n into every camera, writing row n of the outputs."""
    C = viewmats.shape[0]
    _, _, _, _, cov = _gaussian(quats, scales, n)
    o = float(opacities[n])
    for c in range(C):
        R, t, fx, fy, cx, cy = _camera(viewmats, Ks, c)
        x, y, z = _to_camera(R, t, means, n)
        if not (z >= near and z <= far):
            continue
        S = _matmul(_matmul(R, cov), _transpose(R))
        ux, uy, _, _ = _clamped_dirs(x, y, z, fx, fy, cx, cy, width, height)
        c00, c01, c11 = _cov2d(S, fx / z, fy / z, -fx * ux / z, -fy * uy / z)
        det = c00 * c11 - c01 * c01
        if not det > 0:
            continue
        mx, my = fx * x / z + cx, fy * y / z + cy
        rx, ry, ok = _radii(mx, my, c00, c11, o, width, height)
        if not ok:
            continue
        means2d[c, n, 0], means2d[c, n, 1] = mx, my
        conics[c, n, 0], conics[c, n, 1], conics[c, n, 2] = c11 / det, -c01 / det, c00 / det
        depths[c, n] = z
        radii[c, n, 0], radii[c, n, 1] = rx, ry


def project_bwd(means, quats, scales, viewmats, Ks, width, height, radii, v_means2d, v_conics, v_depths):
    """Gradients of the forward's outputs → v_means [N,3], v_quats [N,4], v_scales [N,3]."""
    N, dt = means.shape[0], means.dtype
    v_means, v_quats, v_scales = np.zeros((N, 3), dt), np.zeros((N, 4), dt), np.zeros((N, 3), dt)
    run_chunks(_project_bwd_range, N, means, quats, scales, viewmats, Ks, width, height, radii,
               v_means2d, v_conics, v_depths, v_means, v_quats, v_scales)  # fmt: skip
    return v_means, v_quats, v_scales


@njit(nogil=True, **_JIT)
def _project_bwd_range(
    means, quats, scales, viewmats, Ks, width, height, radii, v_means2d, v_conics, v_depths,
    v_means, v_quats, v_scales, lo, hi,
):  # pragma: no cover - numba  # fmt: skip
    for n in range(lo, hi):
        _project_one_bwd(n, means, quats, scales, viewmats, Ks, width, height, radii,
                         v_means2d, v_conics, v_depths, v_means, v_quats, v_scales)  # fmt: skip


@njit(**_JIT)
def _project_one_bwd(
    n, means, quats, scales, viewmats, Ks, width, height, radii, v_means2d, v_conics, v_depths,
    v_means, v_quats, v_scales,
):  # pragma: no cover - numba  # fmt: skip
    """Back-propagates Gaussian n's outputs in every camera into row n of the gradients."""
    C = viewmats.shape[0]
    q, norm, r, m, cov = _gaussian(quats, scales, n)
    g_mean = (0.0, 0.0, 0.0)
    g_cov = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # symmetric ∂L/∂Σ over cameras
    for c in range(C):
        if radii[c, n, 0] == 0 and radii[c, n, 1] == 0:
            continue  # culled: its outputs are constants (zeros)
        R, t, fx, fy, cx, cy = _camera(viewmats, Ks, c)
        x, y, z = _to_camera(R, t, means, n)
        S = _matmul(_matmul(R, cov), _transpose(R))
        ux, uy, in_x, in_y = _clamped_dirs(x, y, z, fx, fy, cx, cy, width, height)
        j00, j11, j02, j12 = fx / z, fy / z, -fx * ux / z, -fy * uy / z
        c00, c01, c11 = _cov2d(S, j00, j11, j02, j12)
        det = c00 * c11 - c01 * c01
        # conics = (c11, −c01, c00)/det → gradient w.r.t. (c00, c01, c11).
        ga, gb, gc = float(v_conics[c, n, 0]), float(v_conics[c, n, 1]), float(v_conics[c, n, 2])
        d2 = det * det
        G00 = -ga * c11 * c11 / d2 + gb * c01 * c11 / d2 + gc * (1 / det - c00 * c11 / d2)
        G11 = ga * (1 / det - c00 * c11 / d2) + gb * c01 * c00 / d2 - gc * c00 * c00 / d2
        G01 = 2 * c01 * (ga * c11 + gc * c00) / d2 - gb * (1 / det + 2 * c01 * c01 / d2)
        # c2d = J S Jᵀ → symmetric gradient w.r.t. S (off-diagonals split between (i,j) and
        # (j,i)) and w.r.t. J's four non-zeros.
        h01 = 0.5 * G01 * j00 * j11
        h02 = 0.5 * (2 * G00 * j00 * j02 + G01 * j00 * j12)
        h12 = 0.5 * (G01 * j02 * j11 + 2 * G11 * j11 * j12)
        gS = (G00 * j00 * j00, h01, h02,
              h01, G11 * j11 * j11, h12,
              h02, h12, G00 * j02 * j02 + G01 * j02 * j12 + G11 * j12 * j12)  # fmt: skip
        g_j00 = G00 * (2 * j00 * S[0] + 2 * j02 * S[2]) + G01 * (j11 * S[1] + j12 * S[2])
        g_j02 = G00 * (2 * j00 * S[2] + 2 * j02 * S[8]) + G01 * (j11 * S[5] + j12 * S[8])
        g_j11 = G01 * (j00 * S[1] + j02 * S[5]) + G11 * (2 * j11 * S[4] + 2 * j12 * S[5])
        g_j12 = G01 * (j00 * S[2] + j02 * S[8]) + G11 * (2 * j11 * S[5] + 2 * j12 * S[8])
        # Camera-space mean: means2d, depth and the Jacobian all depend on (x, y, z).
        vmx, vmy = float(v_means2d[c, n, 0]), float(v_means2d[c, n, 1])
        z2 = z * z
        gx = vmx * fx / z
        gy = vmy * fy / z
        gz = -(vmx * fx * x + vmy * fy * y) / z2 + float(v_depths[c, n])
        gz -= (g_j00 * fx + g_j11 * fy) / z2
        # j02 = −fx·ux/z with ux = clamp(x/z): ∂/∂x = −fx/z²·[in], ∂/∂z = fx·ux/z² + fx·x/z³·[in]
        gx -= g_j02 * fx / z2 * in_x
        gz += g_j02 * (fx * ux / z2 + fx * x / (z2 * z) * in_x)
        gy -= g_j12 * fy / z2 * in_y
        gz += g_j12 * (fy * uy / z2 + fy * y / (z2 * z) * in_y)
        g_mean = (
            g_mean[0] + R[0] * gx + R[3] * gy + R[6] * gz,
            g_mean[1] + R[1] * gx + R[4] * gy + R[7] * gz,
            g_mean[2] + R[2] * gx + R[5] * gy + R[8] * gz,
        )  # Rᵀ g
        d = _matmul(_matmul(_transpose(R), gS), R)
        g_cov = (g_cov[0] + d[0], g_cov[1] + d[1], g_cov[2] + d[2], g_cov[3] + d[3],
                 g_cov[4] + d[4], g_cov[5] + d[5], g_cov[6] + d[6], g_cov[7] + d[7],
                 g_cov[8] + d[8])  # fmt: skip
    # Σ = M Mᵀ with a symmetric gradient → ∂L/∂M = 2·g_cov·M; M = R·diag(s).
    gM = _matmul(g_cov, m)
    s0, s1, s2 = float(scales[n, 0]), float(scales[n, 1]), float(scales[n, 2])
    v_scales[n, 0] = 2 * (gM[0] * r[0] + gM[3] * r[3] + gM[6] * r[6])
    v_scales[n, 1] = 2 * (gM[1] * r[1] + gM[4] * r[4] + gM[7] * r[7])
    v_scales[n, 2] = 2 * (gM[2] * r[2] + gM[5] * r[5] + gM[8] * r[8])
    gR = (2 * gM[0] * s0, 2 * gM[1] * s1, 2 * gM[2] * s2, 2 * gM[3] * s0, 2 * gM[4] * s1,
          2 * gM[5] * s2, 2 * gM[6] * s0, 2 * gM[7] * s1, 2 * gM[8] * s2)  # fmt: skip
    qw, qx, qy, qz = q
    gw = 2 * (-qz * gR[1] + qy * gR[2] + qz * gR[3] - qx * gR[5] - qy * gR[6] + qx * gR[7])
    gqx = 2 * (qy * gR[1] + qz * gR[2] + qy * gR[3] - 2 * qx * gR[4] - qw * gR[5]
               + qz * gR[6] + qw * gR[7] - 2 * qx * gR[8])  # fmt: skip
    gqy = 2 * (-2 * qy * gR[0] + qx * gR[1] + qw * gR[2] + qx * gR[3] + qz * gR[5]
               - qw * gR[6] + qz * gR[7] - 2 * qy * gR[8])  # fmt: skip
    gqz = 2 * (-2 * qz * gR[0] - qw * gR[1] + qx * gR[2] + qw * gR[3] - 2 * qz * gR[4]
               + qy * gR[5] + qx * gR[6] + qy * gR[7])  # fmt: skip
    # Through the normalisation q/|q|: (g − q̂(q̂·g))/|q|.
    dot = qw * gw + qx * gqx + qy * gqy + qz * gqz
    v_quats[n, 0] = (gw - qw * dot) / norm
    v_quats[n, 1] = (gqx - qx * dot) / norm
    v_quats[n, 2] = (gqy - qy * dot) / norm
    v_quats[n, 3] = (gqz - qz * dot) / norm
    v_means[n, 0], v_means[n, 1], v_means[n, 2] = g_mean


def _np(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


class _ProjectCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, quats, scales, opacities, viewmats, Ks, width, height, near, far):
        dt = means.dtype
        args = [_np(t.to(dt)) for t in (means, quats, scales, opacities, viewmats, Ks)]
        with KERNEL_LOCK:  # parallel numba calls must not overlap (see recon.render.cpu)
            means2d, conics, depths, radii = project_fwd(*args, width, height, near, far)
        ctx.args = (args[0], args[1], args[2], args[4], args[5], width, height, radii)
        ctx.dtypes = (means.dtype, quats.dtype, scales.dtype)
        radii_t = torch.from_numpy(radii)
        ctx.mark_non_differentiable(radii_t)
        return torch.from_numpy(means2d), torch.from_numpy(conics), torch.from_numpy(depths), radii_t

    @staticmethod
    def backward(ctx, v_means2d, v_conics, v_depths, _v_radii):
        means, quats, scales, viewmats, Ks, width, height, radii = ctx.args
        dt = ctx.dtypes[0]
        grads_out = [
            _np(g.to(dt)) if g is not None else np.zeros(shape, means.dtype)
            for g, shape in ((v_means2d, radii.shape), (v_conics, radii.shape[:2] + (3,)),
                             (v_depths, radii.shape[:2]))
        ]  # fmt: skip
        with KERNEL_LOCK:
            g = project_bwd(means, quats, scales, viewmats, Ks, width, height, radii, *grads_out)
        v_means, v_quats, v_scales = (torch.from_numpy(a).to(d) for a, d in zip(g, ctx.dtypes))
        return v_means, v_quats, v_scales, None, None, None, None, None, None, None


def project_cpu(
    means: Tensor,  # [N,3]
    quats: Tensor,  # [N,4]
    scales: Tensor,  # [N,3]
    opacities: Tensor,  # [N]
    viewmats: Tensor,  # [C,4,4] (constants)
    Ks: Tensor,  # [C,3,3] (constants)
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
) -> Projected:
    """`projection.project` with numba kernels; differentiable w.r.t. means, quats, scales."""
    m2d, conics, depths, radii = _ProjectCPU.apply(
        means, quats, scales, opacities, viewmats, Ks, width, height, near_plane, far_plane
    )
    return Projected(means2d=m2d, conics=conics, depths=depths, radii=radii)
