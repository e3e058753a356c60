"""3DGS's photometric loss (1 − λ)·L1 + λ·(1 − SSIM) on the CPU in one numba pass, gradient included.

`losses.photometric_loss` is 10 torch ops forward (separable Gaussian blurs as grouped conv2d)
and their backward through autograd: on OpenSplat's fox setup (270×480, 2 cores) about 12 ms
forward and as much again backward, most of it torch's depthwise convolution and the OpenMP
barriers of ~40 small ops. Here the five blurred maps (μx, μy, E[x²], E[y²], E[xy])
come from one horizontal and one vertical pass, the SSIM map and its derivatives from the same
vertical pass, and the gradient from three transposed blurs; the gradient is computed with the
loss (training always asks for it) and handed to autograd.

Same definition as `losses.ssim_map` (Gaussian window 11, σ 1.5, valid region, C1 = 0.01²,
C2 = 0.03²); images [1,H,W,C] float32 or float64, C ≤ 4, H and W ≥ 11. Every pass is a serial
`nogil` kernel over rows, run on the cpu backend's threads; sums are per row, then added in row
order, so the loss does not depend on the thread count.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
from numba import njit
from torch import Tensor

from recon.render.cpu_kernels import run_chunks

WIN = 11
C1, C2 = 0.01**2, 0.03**2
_JIT = dict(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "nsz", "contract", "arcp"})


def _window(dtype) -> np.ndarray:
    x = np.arange(WIN, dtype=np.float64) - WIN // 2
    g = np.exp(-(x**2) / (2 * 1.5**2))
    return (g / g.sum()).astype(dtype)


# The blurs are sums of shifted rows, dst[i] += w·src[i + off], one (source, destination) pair
# per loop so LLVM vectorises each with a single run-time alias check (a loop touching seven
# arrays got none and ran scalar), with unsigned offsets (numba's negative-index wraparound
# otherwise stays in the loop). Rows are short enough (W·C floats) to stay in L1. Maps that
# the transposed blurs read are zero-padded by the window's reach, so every loop has fixed bounds.
PAD = WIN - 1


@njit(inline="always", fastmath=_JIT["fastmath"])
def _axpy(dst, src, w, off, n):  # pragma: no cover - numba
    for i in range(n):
        dst[i] += w * src[off + i]


@njit(**_JIT)
def _h_pass(x, y, g, C, hx, hy, hxx, hyy, hxy, lo, hi):  # pragma: no cover - numba
    """Rows [lo, hi): the five maps (x, y, x², y², x·y) blurred along the row, valid part."""
    n = np.uint64(hx.shape[1])
    m = x.shape[1]
    xx, yy, xy = np.empty(m, x.dtype), np.empty(m, x.dtype), np.empty(m, x.dtype)
    for h in range(lo, hi):
        xr, yr = x[h], y[h]
        for j in range(m):
            xx[j], yy[j], xy[j] = xr[j] * xr[j], yr[j] * yr[j], xr[j] * yr[j]
        for dst, src in ((hx[h], xr), (hy[h], yr), (hxx[h], xx), (hyy[h], yy), (hxy[h], xy)):
            dst[:] = 0.0
            for k in range(WIN):
                _axpy(dst, src, g[k], np.uint64(k * C), n)


@njit(**_JIT)
def _v_pass(hx, hy, hxx, hyy, hxy, g, gm, gxx, gxy, row_ssim, lo, hi):  # pragma: no cover - numba
    """Output rows [lo, hi): blur down the columns, the SSIM map (summed per row) and its
    derivatives by μx, E[x²] and E[xy] (the render's side; the target is a constant), written
    into the padded maps gm, gxx, gxy at row h + PAD."""
    F = hx.dtype.type
    n = np.uint64(hx.shape[1])
    z = np.uint64(0)
    acc = np.empty((5, hx.shape[1]), hx.dtype)
    for h in range(lo, hi):
        acc[:] = 0.0
        for k in range(WIN):
            w = g[k]
            _axpy(acc[0], hx[h + k], w, z, n)
            _axpy(acc[1], hy[h + k], w, z, n)
            _axpy(acc[2], hxx[h + k], w, z, n)
            _axpy(acc[3], hyy[h + k], w, z, n)
            _axpy(acc[4], hxy[h + k], w, z, n)
        s_row = F(0.0)
        om, oxx, oxy = gm[h + PAD], gxx[h + PAD], gxy[h + PAD]
        for i in range(n):
            a, b, mxx, myy, mxy = acc[0, i], acc[1, i], acc[2, i], acc[3, i], acc[4, i]
            a1 = F(2.0) * a * b + F(C1)
            a2 = F(2.0) * (mxy - a * b) + F(C2)
            b1 = a * a + b * b + F(C1)
            b2 = (mxx - a * a) + (myy - b * b) + F(C2)
            d = F(1.0) / (b1 * b2)
            s = a1 * a2 * d
            s_row += s
            # S = A1·A2/(B1·B2) with σxx = E[x²] − μx², σxy = E[xy] − μx·μy
            om[i] = F(2.0) * b * (a2 - a1) * d - F(2.0) * a * s * (F(1.0) / b1 - F(1.0) / b2)
            oxx[i] = -s / b2
            oxy[i] = F(2.0) * a1 * d
        row_ssim[h] = s_row


@njit(**_JIT)
def _vt_pass(gm, gxx, gxy, g, C, vm, vxx, vxy, lo, hi):  # pragma: no cover - numba
    """Rows [lo, hi) of the full height: the vertical blur transposed (valid rows → all rows),
    into the horizontally padded maps vm, vxx, vxy at column i + PAD·C."""
    n = np.uint64(gm.shape[1])
    z = np.uint64(0)
    off = PAD * C
    for h in range(lo, hi):
        for dst, src in ((vm[h, off:off + n], gm), (vxx[h, off:off + n], gxx), (vxy[h, off:off + n], gxy)):
            dst[:] = 0.0
            for k in range(WIN):
                _axpy(dst, src[h - k + PAD], g[k], z, n)


@njit(**_JIT)
def _ht_pass(x, y, vm, vxx, vxy, g, C, l1_scale, ssim_scale, grad, row_l1, lo, hi):  # pragma: no cover
    """Rows [lo, hi): the horizontal blur transposed, combined into d loss/d x with the L1 term
    (and the L1 row sums): ∂/∂x(p) = Σ w·(gm + 2·x(p)·gxx + y(p)·gxy) + the L1's sign."""
    F = x.dtype.type
    m = x.shape[1]
    n = np.uint64(m)
    acc = np.empty((3, m), x.dtype)
    for h in range(lo, hi):
        acc[:] = 0.0
        for k in range(WIN):
            o = np.uint64((PAD - k) * C)
            _axpy(acc[0], vm[h], g[k], o, n)
            _axpy(acc[1], vxx[h], g[k], o, n)
            _axpy(acc[2], vxy[h], g[k], o, n)
        s1 = F(0.0)
        xr, yr, out, am, axx, axy = x[h], y[h], grad[h], acc[0], acc[1], acc[2]
        for j in range(n):
            a, b = xr[j], yr[j]
            dlt = a - b
            s1 += abs(dlt)
            sign = (F(1.0) if dlt > F(0.0) else F(0.0)) - (F(1.0) if dlt < F(0.0) else F(0.0))
            out[j] = l1_scale * sign + ssim_scale * (am[j] + F(2.0) * a * axx[j] + b * axy[j])
        row_l1[h] = s1


_workspaces: dict = {}
_lock = threading.Lock()


def _workspace(H: int, W: int, C: int, dt) -> list[np.ndarray]:
    """The eleven intermediate maps for this size, kept between calls (their zero padding is
    never written; fresh 1.5 MB maps each step cost page faults)."""
    key = (H, W, C, np.dtype(dt).str)
    if key not in _workspaces:
        n, Hv = (W - PAD) * C, H - PAD
        _workspaces.clear()  # one size at a time: training renders one size
        _workspaces[key] = ([np.empty((H, n), dt) for _ in range(5)]
                            + [np.zeros((Hv + 2 * PAD, n), dt) for _ in range(3)]
                            + [np.zeros((H, n + 2 * PAD * C), dt) for _ in range(3)])  # fmt: skip
    return _workspaces[key]


def l1_ssim_and_grad(x: np.ndarray, y: np.ndarray, lam: float) -> tuple[float, float, np.ndarray]:
    """x, y [H,W,C] (contiguous, same dtype) → (mean |x − y|, mean SSIM, d loss/d x [H,W,C]) for
    loss = (1 − λ)·L1 + λ·(1 − SSIM)."""
    H, W, C = x.shape
    dt = x.dtype
    xf, yf = x.reshape(H, W * C), y.reshape(H, W * C)
    g = _window(dt)
    Hv = H - PAD
    grad = np.empty((H, W * C), dt)
    row_ssim, row_l1 = np.empty(Hv, dt), np.empty(H, dt)
    n_l1, n_ssim = H * W * C, Hv * (W - PAD) * C
    with _lock:
        ws = _workspace(H, W, C, dt)
        maps, dmaps, tmaps = ws[:5], ws[5:8], ws[8:]
        run_chunks(_h_pass, H, xf, yf, g, C, *maps)
        run_chunks(_v_pass, Hv, *maps, g, *dmaps, row_ssim)
        run_chunks(_vt_pass, H, *dmaps, g, C, *tmaps)
        run_chunks(_ht_pass, H, xf, yf, *tmaps, g, C, dt.type((1 - lam) / n_l1), dt.type(-lam / n_ssim),
                   grad, row_l1)  # fmt: skip
    return float(row_l1.astype(np.float64).sum()) / n_l1, float(row_ssim.astype(np.float64).sum()) / n_ssim, \
        grad.reshape(H, W, C)


class _L1SSIM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, render: Tensor, target: Tensor, lam: float) -> Tensor:
        x = render.detach()[0].contiguous().numpy()
        y = target.detach()[0].to(render.dtype).contiguous().numpy()
        l1, ssim, grad = l1_ssim_and_grad(x, y, lam)
        ctx.save_for_backward(torch.from_numpy(grad)[None])
        return render.new_tensor((1 - lam) * l1 + lam * (1 - ssim))

    @staticmethod
    def backward(ctx, v: Tensor):
        (grad,) = ctx.saved_tensors
        return grad * v, None, None


def fits(render: Tensor, target: Tensor) -> bool:
    """Whether l1_ssim_loss handles these images (else use the torch version)."""
    return (render.device.type == "cpu" and render.dim() == 4 and render.shape[0] == 1
            and render.shape == target.shape and render.dtype in (torch.float32, torch.float64)
            and render.shape[1] >= WIN and render.shape[2] >= WIN and render.shape[3] <= 4)


def l1_ssim_loss(render: Tensor, target: Tensor, lam: float) -> Tensor:
    """(1 − λ)·mean|render − target| + λ·(1 − SSIM) of [1,H,W,C] CPU images (see `fits`)."""
    from recon.compile_child import wait

    wait()
    return _L1SSIM.apply(render, target, float(lam))
