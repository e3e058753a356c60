"""The rendering front door: `rasterize()`, with gsplat 1.5.3 `rasterization(packed=False)` semantics.

Backends:
  gsplat     CUDA, through gsplat itself.
  cpu        recon's numba kernels (tile binning, per-tile depth sort, analytic backward).
  reference  dense pure torch; the test oracle and fine for tiny scenes.
  auto       from where the tensors are: gsplat for CUDA tensors, cpu for CPU tensors (so CPU
             tensors work on a machine with CUDA: `--device cpu`, the viewer's exact renders).

The reference backend projects in vectorised torch (recon.render.projection, the specification);
the cpu backend runs the same projection as numba kernels (cpu_projection). Both evaluate SH in
torch and differ in the per-pixel compositing. Backgrounds are composited here as render + (1 − alpha)·bg
for every backend, which is the same as gsplat's T·bg and lets a depth channel have its own
background value.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .projection import Projected, project
from .sh import sh_to_color

__all__ = ["rasterize", "BACKENDS", "resolve_backend"]

BACKENDS = ("auto", "gsplat", "cpu", "reference")
RENDER_MODES = ("RGB", "D", "RGB+D")


def resolve_backend(backend: str, device: torch.device | str = "cpu") -> str:
    """The backend `backend` means for tensors on `device` (auto: gsplat on CUDA, else cpu)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown render backend {backend!r}; choose one of {BACKENDS}")
    if backend == "auto":
        return "gsplat" if torch.device(device).type == "cuda" else "cpu"
    return backend


def rasterize(
    means: Tensor,  # [N,3]
    quats: Tensor,  # [N,4] wxyz, normalised here
    scales: Tensor,  # [N,3] activated std devs
    opacities: Tensor,  # [N] in [0,1]
    colors: Tensor,  # [N,D] or [C,N,D] plain, or SH [N,K,3] when sh_degree is given
    viewmats: Tensor,  # [C,4,4] world-to-camera, OpenCV
    Ks: Tensor,  # [C,3,3]
    width: int,
    height: int,
    *,
    sh_degree: int | None = None,
    backgrounds: Tensor | None = None,  # [C,ch] (ch = channels of the render)
    render_mode: str = "RGB",
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    backend: str = "auto",
) -> tuple[Tensor, Tensor, dict]:
    """Render C cameras. → renders [C,H,W,ch], alphas [C,H,W,1], meta.

    ch = D for "RGB", 1 for "D" (accumulated depth Σ w_i z_i), D+1 for "RGB+D".
    meta: means2d [C,N,2] (in the autograd graph; DefaultStrategy reads its .grad),
    radii [C,N,2] int32 (0 = culled), depths [C,N], width, height, n_cameras,
    gaussian_ids (None: not packed), backend.
    """
    if render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode must be one of {RENDER_MODES}, got {render_mode!r}")
    _check_shapes(means, quats, scales, opacities, viewmats, Ks, width, height)
    name = resolve_backend(backend, means.device)
    if name == "gsplat":
        from .gsplat_backend import rasterize_gsplat

        renders, alphas, meta = rasterize_gsplat(
            means, quats, scales, opacities, colors, viewmats, Ks, width, height,
            sh_degree=sh_degree, render_mode=render_mode,
            near_plane=near_plane, far_plane=far_plane,
        )  # fmt: skip
    else:
        if name == "cpu":
            from recon.compile_child import wait

            wait()  # a background compilation of the kernels (a new install's first run), if any
        proj = _project_fn(name, viewmats, Ks)(
            means, quats, scales, opacities, viewmats, Ks, width, height, near_plane, far_plane
        )
        feats = _features(proj, means, colors, viewmats, sh_degree, render_mode)
        opac = opacities[None].expand(viewmats.shape[0], -1)
        raster = _raster_fn(name)
        renders, alphas = raster(
            proj.means2d, proj.conics, feats, opac, proj.depths, proj.radii, width, height
        )
        meta = {"means2d": proj.means2d, "radii": proj.radii, "depths": proj.depths}
    if backgrounds is not None:
        renders = renders + (1 - alphas) * _backgrounds(backgrounds, renders.shape[-1], render_mode)
    meta.update(
        width=width, height=height, n_cameras=viewmats.shape[0], gaussian_ids=None, backend=name
    )
    return renders, alphas, meta


def _project_fn(name: str, viewmats: Tensor, Ks: Tensor):
    """The cpu backend projects with numba kernels; the reference (and any call that needs
    gradients for the cameras) with the torch specification, `projection.project`."""
    if name == "cpu" and not (viewmats.requires_grad or Ks.requires_grad):
        from .cpu_projection import project_cpu

        return project_cpu
    return project


def _raster_fn(name: str):
    if name == "reference":
        from .reference import rasterize_to_pixels_dense

        return rasterize_to_pixels_dense
    from .cpu import rasterize_to_pixels_cpu

    return rasterize_to_pixels_cpu


def _features(
    proj: Projected,
    means: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    sh_degree: int | None,
    render_mode: str,
) -> Tensor:
    """Per-camera features to composite, [C,N,ch]: colours and/or camera-space depth."""
    C, N = proj.depths.shape
    feats = []
    if render_mode != "D":
        if sh_degree is None:
            if colors.dim() == 2:
                colors = colors[None].expand(C, -1, -1)
            if colors.shape[:2] != (C, N):
                raise ValueError(f"colors must be [N,D] or [C,N,D], got {tuple(colors.shape)}")
            feats.append(colors)
        else:
            if colors.dim() != 3 or colors.shape[0] != N or colors.shape[-1] != 3:
                raise ValueError(f"SH colors must be [N,K,3], got {tuple(colors.shape)}")
            campos = torch.linalg.inv(viewmats.detach())[:, :3, 3]  # [C,3]
            dirs = means[None, :, :] - campos[:, None, :]
            feats.append(sh_to_color(sh_degree, dirs, colors[None].expand(C, -1, -1, -1)))
    if render_mode != "RGB":
        feats.append(proj.depths[..., None])
    return torch.cat(feats, dim=-1) if len(feats) > 1 else feats[0]


def _backgrounds(backgrounds: Tensor, channels: int, render_mode: str) -> Tensor:
    """[C,ch] → [C,1,1,ch]. A colour-only background in an RGB+D render gets depth 0 (as gsplat);
    in a "D" render a colour background is replaced by 0 (as gsplat)."""
    bg = backgrounds
    if render_mode == "RGB+D" and bg.shape[-1] == channels - 1:
        bg = torch.cat([bg, torch.zeros_like(bg[..., :1])], dim=-1)
    elif render_mode == "D" and bg.shape[-1] != 1:
        bg = torch.zeros_like(bg[..., :1])
    if bg.shape[-1] != channels:
        raise ValueError(f"backgrounds need {channels} channels, got {tuple(backgrounds.shape)}")
    return bg[:, None, None, :]


def _check_shapes(means, quats, scales, opacities, viewmats, Ks, width, height) -> None:
    N = means.shape[0]
    expect = {"means": (means, (N, 3)), "quats": (quats, (N, 4)), "scales": (scales, (N, 3)),
              "opacities": (opacities, (N,))}  # fmt: skip
    for name, (t, shape) in expect.items():
        if tuple(t.shape) != shape:
            raise ValueError(f"{name} must be {list(shape)}, got {list(t.shape)}")
    C = viewmats.shape[0]
    if tuple(viewmats.shape) != (C, 4, 4) or tuple(Ks.shape) != (C, 3, 3):
        raise ValueError(f"viewmats/Ks must be [C,4,4]/[C,3,3], got {list(viewmats.shape)}, "
                         f"{list(Ks.shape)}")  # fmt: skip
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
