"""Real spherical harmonics up to degree 3 → colour, with gsplat 1.5.3's constants and conventions.

gsplat evaluates SH in the direction from the camera centre to the Gaussian (normalised), adds 0.5
and clamps at 0 (see `gsplat.rendering.rasterization`). The basis ordering and signs follow its
`_eval_sh_bases_fast` (Sloan, "Efficient Spherical Harmonic Evaluation", JCGT 2013).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SH_C0 = 0.2820947917738781


def sh_bases(degree: int, dirs: Tensor) -> Tensor:
    """Basis values for unit directions.

    dirs [..., 3] (unit) → [..., (degree+1)^2].
    Built with torch.stack rather than in-place writes so autograd sees plain ops.
    """
    if not 0 <= degree <= 3:
        raise ValueError(f"sh_degree must be in 0..3, got {degree}")
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        a = 0.48860251190292
        out += [-a * y, a * z, -a * x]
    if degree >= 2:
        z2 = z * z
        tmp_b = -1.092548430592079 * z
        tmp_a = 0.5462742152960395
        c1 = x * x - y * y
        s1 = 2 * x * y
        out += [
            tmp_a * s1,  # 4
            tmp_b * y,  # 5
            0.9461746957575601 * z2 - 0.3153915652525201,  # 6
            tmp_b * x,  # 7
            tmp_a * c1,  # 8
        ]
    if degree >= 3:
        tmp_c = -2.285228997322329 * z2 + 0.4570457994644658
        tmp_b = 1.445305721320277 * z
        tmp_a = -0.5900435899266435
        c2 = x * c1 - y * s1
        s2 = x * s1 + y * c1
        out += [
            tmp_a * s2,  # 9
            tmp_b * s1,  # 10
            tmp_c * y,  # 11
            z * (1.865881662950577 * z2 - 1.119528997770346),  # 12
            tmp_c * x,  # 13
            tmp_b * c1,  # 14
            tmp_a * c2,  # 15
        ]
    return torch.stack(out, dim=-1)


def sh_to_color(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Colour of SH coefficients seen along `dirs`, as gsplat: Σ basis·coeff + 0.5, clamped at 0.

    dirs [..., 3] (any length, normalised here), coeffs [..., K, 3] with K ≥ (degree+1)^2
    → [..., 3]. Coefficients beyond the degree are ignored (the SH-degree schedule relies on it).
    """
    k = (degree + 1) ** 2
    if coeffs.shape[-2] < k:
        raise ValueError(f"SH degree {degree} needs {k} coefficients, got {coeffs.shape[-2]}")
    bases = sh_bases(degree, F.normalize(dirs, p=2, dim=-1))  # [..., k]
    color = (bases[..., None] * coeffs[..., :k, :]).sum(dim=-2)
    return torch.clamp_min(color + 0.5, 0.0)
