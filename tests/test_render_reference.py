"""The dense reference backend and the shared projection/SH code against gsplat's semantics.

gsplat's own PyTorch helpers (gsplat.cuda._torch_impl) run on the CPU for projection and SH, so
they are an independent check of those pieces; compositing is checked against a plain
sequential loop written straight from the rules in DESIGN.md.
"""

from __future__ import annotations

import math

import pytest
import torch

from recon.render import rasterize
from recon.render.projection import covariance_3d, project
from recon.render.sh import sh_to_color

torch.set_default_dtype(torch.float32)
F64 = torch.float64


def _scene(n: int, seed: int, dtype=F64, opacity=(0.05, 0.95)):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g, dtype=dtype) * torch.tensor([0.8, 0.6, 0.5], dtype=dtype)
    means[:, 2] += 3.0
    quats = torch.randn(n, 4, generator=g, dtype=dtype)
    scales = torch.exp(torch.empty(n, 3, dtype=dtype).uniform_(math.log(0.02), math.log(0.3), generator=g))
    lo, hi = opacity
    opac = torch.empty(n, dtype=dtype).uniform_(lo, hi, generator=g)
    colors = torch.rand(n, 3, generator=g, dtype=dtype)
    return means, quats, scales, opac, colors


def _cameras(c: int, width: int, height: int, dtype=F64):
    viewmats = torch.eye(4, dtype=dtype).repeat(c, 1, 1)
    for i in range(c):
        a = 0.15 * i
        viewmats[i, :3, :3] = torch.tensor(
            [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]], dtype=dtype
        )
        viewmats[i, 0, 3] = -0.2 * i
    f = 1.1 * width
    Ks = torch.tensor([[f, 0, width / 2 + 1.3], [0, f, height / 2 - 0.7], [0, 0, 1]], dtype=dtype)
    return viewmats, Ks.repeat(c, 1, 1)


def test_sh_matches_gsplat_torch_impl():
    from gsplat.cuda._torch_impl import _spherical_harmonics

    g = torch.Generator().manual_seed(0)
    dirs = torch.randn(50, 3, generator=g, dtype=F64) * 3
    coeffs = torch.randn(50, 16, 3, generator=g, dtype=F64)
    for degree in range(4):
        expected = torch.clamp_min(_spherical_harmonics(degree, dirs, coeffs) + 0.5, 0.0)
        torch.testing.assert_close(sh_to_color(degree, dirs, coeffs), expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError):
        sh_to_color(3, dirs, coeffs[:, :9])


def test_projection_matches_gsplat_torch_impl():
    from gsplat.cuda._torch_impl import _fully_fused_projection

    means, quats, scales, opac, _ = _scene(200, 1)
    viewmats, Ks = _cameras(2, 64, 48)
    p = project(means, quats, scales, opac, viewmats, Ks, 64, 48)
    _, m2d, depths, conics, _ = _fully_fused_projection(
        means, covariance_3d(quats, scales), viewmats, Ks, 64, 48
    )
    valid = (p.radii > 0).all(-1)
    assert valid.sum() > 100 and (~valid).sum() > 10  # both kinds are exercised
    torch.testing.assert_close(p.means2d[valid], m2d[valid])
    torch.testing.assert_close(p.conics[valid], conics[valid])
    torch.testing.assert_close(p.depths[valid], depths[valid])
    assert (p.means2d[~valid] == 0).all() and (p.depths[~valid] == 0).all()


def test_radii_are_per_axis_and_opacity_aware():
    # One axis-aligned Gaussian straight ahead: cov2d = diag((f·s/z)² + 0.3).
    viewmats, Ks = _cameras(1, 100, 80)
    f, z = Ks[0, 0, 0].item(), 4.0
    means = torch.tensor([[0.0, 0.0, z]], dtype=F64)
    quats = torch.tensor([[1.0, 0, 0, 0]], dtype=F64)
    scales = torch.tensor([[0.05, 0.02, 0.1]], dtype=F64)
    for o in (0.9, 0.05):
        p = project(means, quats, scales, torch.tensor([o], dtype=F64), viewmats, Ks, 100, 80)
        extend = min(3.33, math.sqrt(2 * math.log(o * 255)))
        expected = [math.ceil(extend * math.sqrt((f * s / z) ** 2 + 0.3)) for s in (0.05, 0.02)]
        assert p.radii[0, 0].tolist() == expected
    p = project(means, quats, scales, torch.tensor([0.003], dtype=F64), viewmats, Ks, 100, 80)
    assert p.radii[0, 0].tolist() == [0, 0]  # opacity below 1/255: never visible


@pytest.mark.parametrize(
    "where",
    [[0.0, 0.0, -2.0], [0.0, 0.0, 0.005], [0.0, 0.0, 2e10], [30.0, 0.0, 3.0], [0.0, -30.0, 3.0]],
    ids=["behind", "inside-near", "beyond-far", "right-of-image", "above-image"],
)
def test_culling(where):
    viewmats, Ks = _cameras(1, 40, 30)
    p = project(
        torch.tensor([where], dtype=F64), torch.tensor([[1.0, 0, 0, 0]], dtype=F64),
        torch.full((1, 3), 0.05, dtype=F64), torch.tensor([0.8], dtype=F64), viewmats, Ks, 40, 30,
    )  # fmt: skip
    assert p.radii.abs().sum() == 0


def _sequential(means, quats, scales, opac, colors, viewmats, Ks, width, height):
    """The compositing rules as a literal per-pixel loop (the slowest, plainest statement)."""
    p = project(means, quats, scales, opac, viewmats, Ks, width, height)
    out = torch.zeros(viewmats.shape[0], height, width, colors.shape[-1], dtype=means.dtype)
    alphas = torch.zeros(viewmats.shape[0], height, width, 1, dtype=means.dtype)
    stops = 0
    for c in range(viewmats.shape[0]):
        ids = [i for i in sorted(range(len(means)), key=lambda i: p.depths[c, i].item())
               if (p.radii[c, i] > 0).all()]  # fmt: skip
        for y in range(height):
            for x in range(width):
                T = 1.0
                for i in ids:
                    dx, dy = p.means2d[c, i, 0] - (x + 0.5), p.means2d[c, i, 1] - (y + 0.5)
                    a, b, cc = p.conics[c, i]
                    sigma = 0.5 * (a * dx * dx + cc * dy * dy) + b * dx * dy
                    alpha = min(0.999, (opac[i] * torch.exp(-sigma)).item())
                    if sigma < 0 or alpha < 1 / 255:
                        continue
                    if T * (1 - alpha) <= 1e-4:
                        stops += 1
                        break
                    out[c, y, x] += colors[i] * alpha * T
                    T *= 1 - alpha
                alphas[c, y, x, 0] = 1 - T
    return out, alphas, stops


def test_reference_equals_sequential_loop_with_early_stop():
    # Large, nearly opaque Gaussians stacked in depth so many pixels hit the T ≤ 1e-4 stop.
    means, quats, scales, opac, colors = _scene(16, 2, opacity=(0.6, 0.99))
    means[:, :2] *= 0.2
    scales *= 8
    viewmats, Ks = _cameras(1, 9, 7)
    expected, expected_a, stops = _sequential(means, quats, scales, opac, colors, viewmats, Ks, 9, 7)
    r, a, _ = rasterize(means, quats, scales, opac, colors, viewmats, Ks, 9, 7, backend="reference")
    assert stops > 5  # the early stop is actually exercised
    torch.testing.assert_close(r, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(a, expected_a, rtol=1e-12, atol=1e-12)


def test_reference_gradcheck_float64():
    means, quats, scales, opac, _ = _scene(6, 3)
    sh = torch.randn(6, 4, 3, dtype=F64) * 0.3
    viewmats, Ks = _cameras(2, 10, 8)
    bg = torch.rand(2, 4, dtype=F64)

    def f(means, quats, scales, opac, sh):
        r, a, _ = rasterize(means, quats, scales, opac, sh, viewmats, Ks, 10, 8, sh_degree=1,
                            render_mode="RGB+D", backgrounds=bg, backend="reference")  # fmt: skip
        return r, a

    inputs = [t.clone().requires_grad_(True) for t in (means, quats, scales, opac, sh)]
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def test_backgrounds_and_render_modes():
    means, quats, scales, opac, colors = _scene(30, 4)
    viewmats, Ks = _cameras(2, 20, 14)
    args = (means, quats, scales, opac, colors, viewmats, Ks, 20, 14)
    rgb, a, _ = rasterize(*args, backend="reference")
    d, a_d, meta = rasterize(*args, render_mode="D", backend="reference")
    rgbd, _, _ = rasterize(*args, render_mode="RGB+D", backend="reference")
    torch.testing.assert_close(rgbd, torch.cat([rgb, d], -1))
    torch.testing.assert_close(a, a_d)
    assert rgb.shape == (2, 14, 20, 3) and d.shape == (2, 14, 20, 1) and a.shape == (2, 14, 20, 1)
    # Depth is Σ w·z with Σ w = alpha: D/alpha is a weighted mean of the visible depths.
    z = meta["depths"][(meta["radii"] > 0).all(-1)]
    seen = a > 0.05
    assert seen.sum() > 50
    assert (d[seen] / a[seen] >= z.min() - 1e-9).all() and (d[seen] / a[seen] <= z.max() + 1e-9).all()
    bg = torch.tensor([[0.2, 0.4, 0.6], [1.0, 0.0, 0.5]], dtype=F64)
    rgb_bg, _, _ = rasterize(*args, backgrounds=bg, backend="reference")
    torch.testing.assert_close(rgb_bg, rgb + (1 - a) * bg[:, None, None])
    rgbd_bg, _, _ = rasterize(*args, backgrounds=bg, render_mode="RGB+D", backend="reference")
    torch.testing.assert_close(rgbd_bg[..., 3:], d)  # colour-only background: depth bg is 0
    with pytest.raises(ValueError):
        rasterize(*args, backgrounds=bg[:, :2], backend="reference")
    with pytest.raises(ValueError):
        rasterize(*args, render_mode="ED", backend="reference")
    with pytest.raises(ValueError):
        rasterize(*args, backend="vulkan")
