"""The CUDA backend: gsplat 1.5.3 `rasterization`, in recon's contract (packed=False, classic).

gsplat is imported lazily: importing it is cheap, but its CUDA extension compiles on first use
(about a minute) and it has no CPU path.
"""

from __future__ import annotations

from torch import Tensor


def rasterize_gsplat(
    means: Tensor,  # [N,3]
    quats: Tensor,  # [N,4]
    scales: Tensor,  # [N,3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N,D], [C,N,D] or SH [N,K,3]
    viewmats: Tensor,  # [C,4,4]
    Ks: Tensor,  # [C,3,3]
    width: int,
    height: int,
    *,
    sh_degree: int | None,
    render_mode: str,
    near_plane: float,
    far_plane: float,
) -> tuple[Tensor, Tensor, dict]:
    """→ renders [C,H,W,ch] (no background: the front door composites it), alphas [C,H,W,1], meta."""
    if not means.is_cuda:
        raise RuntimeError(
            "the gsplat backend needs CUDA tensors; use backend='cpu' on a machine without a GPU"
        )
    from gsplat import rasterization

    renders, alphas, info = rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near_plane, far_plane=far_plane, sh_degree=sh_degree,
        packed=False, rasterize_mode="classic", render_mode=render_mode, backgrounds=None,
    )  # fmt: skip
    meta = {"means2d": info["means2d"], "radii": info["radii"], "depths": info["depths"]}
    return renders, alphas, meta
