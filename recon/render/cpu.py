"""The cpu backend's compositing step: numba kernels behind a torch.autograd.Function.

Projection and SH stay in torch (recon.render.projection, O(N·C), autograd); this module turns
their screen-space outputs into images and back-propagates to them analytically.

Kernel calls are serialised by a lock: each call already uses every core (cpu_kernels.run_chunks),
so a second caller — the live viewer rendering while the optimiser steps — waits its turn
instead of doubling the threads.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
from torch import Tensor

from . import cpu_binning as B
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
    rects, n_vis = B.sorted_tile_rects(means2d, _np(radii), _np(order), tiles_x, tiles_y)
    fstart = B.box_starts(rects, n_vis)
    flags = np.empty(fstart[-1, n_vis[-1]] if len(n_vis) else 0, np.uint8)
    for c in range(len(n_vis)):
        K.run_chunks(B.touched_flags, int(n_vis[c]), rects, c, fstart, means2d, conics, opacities, flags)
    offsets, ids = B.tile_lists(rects, n_vis, fstart, flags, tiles_x, tiles_y)
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
        D = col.shape[-1]
        renders = []
        with KERNEL_LOCK:
            offsets, ids, tx, ty = bin_gaussians(xy, con, op, radii, depths, width, height)
            packed = [K.pack(xy, con, g, op) for g in _groups(col)]
            for G in packed:
                render, t_final, last = K.raster_fwd(G, offsets, ids, width, height, tx, ty)
                renders.append(render)
        ctx.kernel_args = (packed, offsets, ids, width, height, tx, ty)
        ctx.kernel_dtype = dtype
        ctx.dtypes = (means2d.dtype, conics.dtype, colors.dtype, opacities.dtype)
        ctx.t_final = t_final
        ctx.last = last
        alphas = 1.0 - torch.from_numpy(t_final)[..., None]
        render = renders[0] if len(renders) == 1 else np.concatenate(renders, axis=-1)
        out = torch.from_numpy(render)
        return (out if D == render.shape[-1] else out[..., :D]), alphas

    @staticmethod
    def backward(ctx, v_render, v_alphas):
        packed, offsets, ids, width, height, tx, ty = ctx.kernel_args
        dtype = ctx.kernel_dtype
        v_groups = _groups(_np(v_render.to(dtype)))
        v_alpha = _np(v_alphas[..., 0].to(dtype))
        no_alpha = np.zeros_like(v_alpha) if len(packed) > 1 else v_alpha
        N = packed[0].shape[1]
        with KERNEL_LOCK:
            sums = []
            for k, (G, vg) in enumerate(zip(packed, v_groups)):
                g_isect = K.raster_bwd(G, offsets, ids, width, height, tx, ty, ctx.t_final, ctx.last, vg,
                                       v_alpha if k == 0 else no_alpha)
                sums.append(K.scatter_isects(offsets, ids, tx * ty, N, g_isect))
        # rows: colour 0..3, opacity, conic a b c, mean x y (cpu_kernels._bwd_tiles)
        geo = sums[0] if len(sums) == 1 else sum(sums)
        g_color = np.concatenate([s[..., :4] for s in sums], axis=-1)[..., : v_render.shape[-1]]
        grads = (geo[..., 8:10], geo[..., 5:8], g_color, geo[..., 4])
        out = [torch.from_numpy(np.ascontiguousarray(a)).to(d) for a, d in zip(grads, ctx.dtypes)]
        return out[0], out[1], out[2], out[3], None, None, None, None
