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
    means2d: np.ndarray, conics: np.ndarray, opacities: np.ndarray, radii: Tensor, depths: Tensor,
    width: int, height: int,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Tile lists: offsets [C·tiles+1], ids [n_isect] (depth-ordered per tile), tiles_x, tiles_y."""
    tiles_x = (width + K.TILE - 1) // K.TILE
    tiles_y = (height + K.TILE - 1) // K.TILE
    # Stable sort: equal depths keep Gaussian-index order, as gsplat's radix sort does.
    order = torch.sort(depths.detach(), dim=1, stable=True).indices.to(torch.int32)
    rects, n_vis = K.sorted_tile_rects(means2d, _np(radii), _np(order), tiles_x, tiles_y)
    offsets, ids = K.bin_tiles(rects, n_vis, tiles_x, tiles_y, means2d, conics, opacities)
    return offsets, ids, tiles_x, tiles_y


def _groups(a: np.ndarray) -> list[np.ndarray]:
    """[..., D] → contiguous [..., 4] slices, the last one zero-padded (the kernels take four)."""
    D = a.shape[-1]
    n = -(-D // K.CHANNELS)
    if n * K.CHANNELS != D:
        pad = np.zeros((*a.shape[:-1], n * K.CHANNELS - D), a.dtype)
        a = np.concatenate([a, pad], axis=-1)
    return [np.ascontiguousarray(a[..., k * K.CHANNELS:(k + 1) * K.CHANNELS]) for k in range(n)]


class _RasterizeToPixels(torch.autograd.Function):
    """Compositing in groups of four channels: transmittance depends on the opacities alone, so
    every group sees the same T and stopping points, and the geometric gradients (through alpha)
    are linear in d loss/d alpha, so each group's share adds up; the alpha output's own
    gradient goes in with the first group."""

    @staticmethod
    def forward(ctx, means2d, conics, colors, opacities, depths, radii, width, height):
        dtype = colors.dtype
        # One dtype for every kernel argument, so numba compiles (and caches) one specialisation.
        xy, con, col, op = (_np(t.to(dtype)) for t in (means2d, conics, colors, opacities))
        groups = _groups(col)
        renders = []
        with KERNEL_LOCK:
            offsets, ids, tx, ty = bin_gaussians(xy, con, op, radii, depths, width, height)
            for g in groups:
                render, t_final, last = K.raster_fwd(xy, con, g, op, offsets, ids, width, height, tx, ty)
                renders.append(render)
        ctx.kernel_args = (xy, con, groups, op, offsets, ids, width, height, tx, ty)
        ctx.kernel_dtype = dtype
        ctx.dtypes = (means2d.dtype, conics.dtype, colors.dtype, opacities.dtype)
        ctx.t_final = t_final
        ctx.last = last
        alphas = 1.0 - torch.from_numpy(t_final)[..., None]
        render = np.concatenate(renders, axis=-1)[..., : col.shape[-1]]
        return torch.from_numpy(np.ascontiguousarray(render)), alphas

    @staticmethod
    def backward(ctx, v_render, v_alphas):
        xy, con, groups, op, offsets, ids, width, height, tx, ty = ctx.kernel_args
        v_groups = _groups(_np(v_render.to(ctx.kernel_dtype)))
        v_alpha = _np(v_alphas[..., 0].to(ctx.kernel_dtype))
        no_alpha = np.zeros_like(v_alpha)
        g_xy = g_conic = g_opac = None
        g_colors = []
        with KERNEL_LOCK:
            for k, (g, vg) in enumerate(zip(groups, v_groups)):
                gx, gc, gcol, go = K.raster_bwd(xy, con, g, op, offsets, ids, width, height, tx, ty,
                                                ctx.t_final, ctx.last, vg, v_alpha if k == 0 else no_alpha)
                g_colors.append(gcol)
                g_xy, g_conic, g_opac = (gx, gc, go) if k == 0 else (g_xy + gx, g_conic + gc, g_opac + go)
            g_color = np.ascontiguousarray(np.concatenate(g_colors, axis=-1)[:, : v_render.shape[-1]])
            grads = K.scatter_isects(offsets, ids, tx * ty, op.shape[1], g_xy, g_conic, g_color, g_opac)
        out = [torch.from_numpy(a).to(d) for a, d in zip(grads, ctx.dtypes)]
        return out[0], out[1], out[2], out[3], None, None, None, None
