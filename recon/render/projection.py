"""EWA projection of 3D Gaussians to the image plane, vectorised in torch (O(N·C), autograd).

Follows gsplat 1.5.3 `fully_fused_projection` (packed=False, pinhole, classic mode) exactly:
  - camera-space z outside [near, far] → culled;
  - the Jacobian uses x/z, y/z clamped to the image edges plus 0.3 of the half-FOV tangent
    (so Gaussians far outside the frustum don't blow up into huge screen-space ellipses);
  - 0.3 px² added to the 2D covariance diagonal (a low-pass filter: every splat covers ~a pixel);
  - per-axis radii: ceil(extend·sqrt(cov_ii)) with the opacity-aware
    extend = min(3.33, sqrt(2·ln(255·o))) (beyond it alpha < 1/255 anyway), culled when
    opacity < 1/255, both radii ≤ 0, or the box lies off the image.
Culled entries get radii 0 and zeros in means2d/depths/conics, as gsplat writes them.
Every unsafe quantity is computed on a "safe" substitute before masking so that culled entries
can't put NaN/Inf into the backward pass (0·Inf = NaN through torch.where).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

ALPHA_THRESHOLD = 1.0 / 255.0
EPS2D = 0.3  # gsplat's default eps2d: blur added to the 2D covariance diagonal
MAX_RADIUS = 1 << 24  # keeps absurd scales from overflowing int32; far beyond any image


class Projected(NamedTuple):
    means2d: Tensor  # [C,N,2] pixel coordinates (differentiable)
    conics: Tensor  # [C,N,3] inverse 2D covariance (a, b, c) = (inv00, inv01, inv11)
    depths: Tensor  # [C,N] camera-space z (differentiable)
    radii: Tensor  # [C,N,2] int32, 0 where culled


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """[..., 4] wxyz (any norm) → [..., 3, 3]."""
    w, x, y, z = F.normalize(quats, p=2, dim=-1).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(quats.shape[:-1] + (3, 3))


def covariance_3d(quats: Tensor, scales: Tensor) -> Tensor:
    """Σ = R S Sᵀ Rᵀ. quats [N,4], scales [N,3] (std devs) → [N,3,3]."""
    m = quat_to_rotmat(quats) * scales[..., None, :]
    # Elementwise rather than a batched 3×3 matmul: torch's bmm on millions of tiny matrices is
    # several times slower than six multiply-adds over [N] vectors.
    prods = (m[:, :, None, :] * m[:, None, :, :]).sum(-1)
    return prods


def project(
    means: Tensor,  # [N,3]
    quats: Tensor,  # [N,4]
    scales: Tensor,  # [N,3]
    opacities: Tensor,  # [N]
    viewmats: Tensor,  # [C,4,4]
    Ks: Tensor,  # [C,3,3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
) -> Projected:
    R = viewmats[:, :3, :3]  # [C,3,3]
    t = viewmats[:, :3, 3]  # [C,3]
    mean_c = torch.einsum("cij,nj->cni", R, means) + t[:, None, :]  # [C,N,3]
    # R Σ Rᵀ for every camera as two GEMM-shaped contractions ([N·3,3] @ [3,C·3]).
    cov_c = torch.einsum("cai,nij,cbj->cnab", R, covariance_3d(quats, scales), R)  # [C,N,3,3]

    x, y, z = mean_c.unbind(-1)
    in_depth = (z >= near_plane) & (z <= far_plane)
    z = torch.where(in_depth, z, torch.ones_like(z))  # safe divisor for culled entries

    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C,1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos = (width - cx) / fx + 0.3 * tan_fovx
    lim_x_neg = cx / fx + 0.3 * tan_fovx
    lim_y_pos = (height - cy) / fy + 0.3 * tan_fovy
    lim_y_neg = cy / fy + 0.3 * tan_fovy
    tx = z * torch.minimum(lim_x_pos, torch.maximum(-lim_x_neg, x / z))
    ty = z * torch.minimum(lim_y_pos, torch.maximum(-lim_y_neg, y / z))

    # J = [[j00, 0, j02], [0, j11, j12]]; cov2d = J cov_c Jᵀ written out (J is sparse).
    j00, j11 = fx / z, fy / z
    j02, j12 = -fx * tx / (z * z), -fy * ty / (z * z)
    s00, s01, s02 = cov_c[..., 0, 0], cov_c[..., 0, 1], cov_c[..., 0, 2]
    s11, s12, s22 = cov_c[..., 1, 1], cov_c[..., 1, 2], cov_c[..., 2, 2]
    c00 = j00 * j00 * s00 + 2 * j00 * j02 * s02 + j02 * j02 * s22 + EPS2D
    c01 = j00 * j11 * s01 + j00 * j12 * s02 + j02 * j11 * s12 + j02 * j12 * s22
    c11 = j11 * j11 * s11 + 2 * j11 * j12 * s12 + j12 * j12 * s22 + EPS2D
    det = c00 * c11 - c01 * c01
    det_ok = det > 0
    det = torch.where(det_ok, det, torch.ones_like(det))
    conics = torch.stack([c11 / det, -c01 / det, c00 / det], dim=-1)
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)

    with torch.no_grad():
        radii, valid = _radii(means2d, c00, c11, opacities, width, height)
        valid &= in_depth & det_ok
        radii = torch.where(valid[..., None], radii, torch.zeros_like(radii))

    keep = valid[..., None]
    return Projected(
        means2d=torch.where(keep, means2d, torch.zeros_like(means2d)),
        conics=torch.where(keep, conics, torch.zeros_like(conics)),
        depths=torch.where(valid, mean_c[..., 2], torch.zeros_like(z)),
        radii=radii,
    )


def _radii(
    means2d: Tensor, c00: Tensor, c11: Tensor, opacities: Tensor, width: int, height: int
) -> tuple[Tensor, Tensor]:
    """Per-axis pixel radii [C,N,2] int32 and the validity mask [C,N] (opacity, size, on image)."""
    o = opacities.detach()[None].expand_as(c00)
    opaque_enough = o >= ALPHA_THRESHOLD
    extend = torch.sqrt(2.0 * torch.log(torch.clamp_min(o, ALPHA_THRESHOLD) / ALPHA_THRESHOLD))
    extend = torch.clamp_max(extend, 3.33)
    rx = torch.ceil(extend * torch.sqrt(torch.clamp_min(c00, 0)))
    ry = torch.ceil(extend * torch.sqrt(torch.clamp_min(c11, 0)))
    mx, my = means2d.detach().unbind(-1)
    on_image = (mx + rx > 0) & (mx - rx < width) & (my + ry > 0) & (my - ry < height)
    valid = opaque_enough & ((rx > 0) | (ry > 0)) & on_image
    radii = torch.stack([rx, ry], dim=-1).clamp_max(MAX_RADIUS).nan_to_num(0).to(torch.int32)
    return radii, valid
