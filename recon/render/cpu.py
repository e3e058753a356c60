"""The cpu backend's compositing step: numba kernels behind a torch.autograd.Function.

Projection and SH stay in torch (recon.render.projection, O(N·C), autograd); this module turns
their screen-space outputs into images and back-propagates to them analytically.

Kernel calls are serialised by a lock: each call already uses every core, and numba's fallback
threading layer (workqueue, used where OpenMP/TBB are missing) aborts the process on concurrent
parallel calls — e.g. the live viewer rendering while the optimiser steps.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
from torch import Tensor

from . import cpu_kernels as K

KERNEL_LOCK = threading.Lock()


def rasterize_to_pixels_cpu(
    means2d: Tensor,  # [C,N,2]
    conics: Tensor,  # [C,N,3]
    colors: Tensor,  # [C,N,D]
    opacities: Tensor,  # [C,N]
    depths: Tensor,  # [C,N] (ordering only; not differentiated here)
    radii: Tensor,  # [C,N,2] int32, 0 = culled
    width: int,
    height: int,
) -> tuple[Tensor, Tensor]:
    """→ renders [C,H,W,D] (no background), alphas [C,H,W,1]. float32 or float64, CPU tensors."""
    for name, t in (("means2d", means2d), ("colors", colors)):
        if t.device.type != "cpu":
            raise RuntimeError(f"the cpu render backend needs CPU tensors, got {name} on {t.device}")
    return _RasterizeToPixels.apply(
        means2d, conics, colors, opacities, depths.detach(), radii, width, height
    )


def _np(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def bin_gaussians(
    means2d: Tensor, radii: Tensor, depths: Tensor, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Tile lists: offsets [C·tiles+1], ids [n_isect] (depth-ordered per tile), tiles_x, tiles_y."""
    tiles_x = (width + K.TILE - 1) // K.TILE
    tiles_y = (height + K.TILE - 1) // K.TILE
    # Stable sort: equal depths keep Gaussian-index order, as gsplat's radix sort does.
    order = torch.sort(depths.detach(), dim=1, stable=True).indices.to(torch.int32)
    rects, n_vis = K.sorted_tile_rects(_np(means2d), _np(radii), _np(order), tiles_x, tiles_y)
    offsets, ids = K.bin_tiles(rects, n_vis, tiles_x, tiles_y)
    return offsets, ids, tiles_x, tiles_y


class _RasterizeToPixels(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means2d, conics, colors, opacities, depths, radii, width, height):
        dtype = colors.dtype
        # One dtype for every kernel argument, so numba compiles (and caches) one specialisation.
        xy, con, col, op = (_np(t.to(dtype)) for t in (means2d, conics, colors, opacities))
        with KERNEL_LOCK:
            offsets, ids, tx, ty = bin_gaussians(means2d, radii, depths, width, height)
            render, t_final, last = K.raster_fwd(
                xy, con, col, op, offsets, ids, width, height, tx, ty
            )
        ctx.kernel_args = (xy, con, col, op, offsets, ids, width, height, tx, ty)
        ctx.kernel_dtype = dtype
        ctx.dtypes = (means2d.dtype, conics.dtype, colors.dtype, opacities.dtype)
        ctx.t_final = t_final
        ctx.last = last
        alphas = 1.0 - torch.from_numpy(t_final)[..., None]
        return torch.from_numpy(render), alphas

    @staticmethod
    def backward(ctx, v_render, v_alphas):
        xy, con, col, op, offsets, ids, width, height, tx, ty = ctx.kernel_args
        v_render = _np(v_render.to(ctx.kernel_dtype))
        v_alpha = _np(v_alphas[..., 0].to(ctx.kernel_dtype))
        with KERNEL_LOCK:
            g = K.raster_bwd(
                xy, con, col, op, offsets, ids, width, height, tx, ty,
                ctx.t_final, ctx.last, v_render, v_alpha,
            )  # fmt: skip
            grads = K.scatter_isects(offsets, ids, tx * ty, op.shape[1], *g)
        out = [torch.from_numpy(a).to(d) for a, d in zip(grads, ctx.dtypes)]
        return out[0], out[1], out[2], out[3], None, None, None, None
