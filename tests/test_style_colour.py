"""The colour method of the stylize stage (recon/style/colour.py): Lab conversion, the Reinhard and
Monge–Kantorovich maps, and their application to a splat's SH, measured on renders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic import colored_blob, ring_cameras

from recon.gaussians import Gaussians
from recon.render.sh import sh_to_color
from recon.style.colour import (apply_map, lab_stats, lab_to_rgb, map_gaussians, rgb_to_lab, splat_stats,
                                transfer_map)
from recon.render.views import render_rgbd as render


def warm_style(seed: int = 0, size: int = 64) -> np.ndarray:
    """A style image of oranges and browns, lightness and hue correlated (brighter = yellower)."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 1, (size, size, 1))
    low, high = np.array([0.35, 0.12, 0.05]), np.array([1.0, 0.85, 0.3])
    return np.clip(low + t * (high - low) + rng.normal(0, 0.03, (size, size, 3)), 0, 1).astype(np.float32)


def test_lab_of_known_colours_and_round_trip():
    lab = rgb_to_lab(torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64))
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=1e-3)
    np.testing.assert_allclose(lab[1], [53.24, 80.09, 67.20], atol=0.05)  # sRGB red, D65
    np.testing.assert_allclose(lab[2], [0, 0, 0], atol=1e-6)
    rgb = torch.rand(500, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-6)


@pytest.mark.parametrize("kind", ["covariance", "reinhard"])
def test_maps_move_lab_samples_to_the_target_statistics(kind):
    """On Lab samples themselves the affine maps are exact: covariance matches the whole covariance,
    Reinhard the means and standard deviations only."""
    rng = np.random.default_rng(1)
    src_lab = rng.multivariate_normal([50, 10, -20], [[100, 30, 0], [30, 60, 10], [0, 10, 40]], 20000)
    dst_lab = rng.multivariate_normal([60, -5, 30], [[50, -20, 15], [-20, 80, 0], [15, 0, 90]], 20000)

    def stats(x):
        return type(lab_stats(np.zeros((1, 3))))(x.mean(0), np.cov(x.T, bias=True))

    src, dst = stats(src_lab), stats(dst_lab)
    A, b = transfer_map(src, dst, kind)
    moved = stats(src_lab @ A.T + b)
    np.testing.assert_allclose(moved.mean, dst.mean, atol=1e-6)
    np.testing.assert_allclose(moved.std, dst.std, rtol=0.01)
    off_diagonal = np.abs(moved.cov - dst.cov)[~np.eye(3, dtype=bool)].max()
    if kind == "covariance":
        assert off_diagonal < 1.0
    else:
        assert off_diagonal > 5.0, "Reinhard leaves the correlations as the source had them"


@pytest.mark.parametrize("kind", ["covariance", "reinhard"])
def test_colour_transfer_moves_a_splats_rendered_statistics_to_the_style_images(kind):
    g, cams = colored_blob(), ring_cameras(4, 64, 48)
    style = lab_stats(warm_style())
    before = splat_stats(g, cams)
    assert np.abs(before.mean - style.mean).max() > 20, "the test needs a real change"
    A, b = transfer_map(before, style, kind)
    out = map_gaussians(g, A, b)
    after = splat_stats(out, cams)
    np.testing.assert_allclose(after.mean, style.mean, atol=2.0)  # Lab units (1 ≈ a just-noticeable step)
    np.testing.assert_allclose(after.std, style.std, rtol=0.15)
    # From viewpoints the statistics did not come from, each pixel is the map of what the splat
    # showed there before (up to blending and clipping): the same transfer from every view.
    for cam in ring_cameras(3, 64, 48, radius=4.5, elevation=-0.8):
        r0, r1 = render(g, cam), render(out, cam)
        solid = r0.alpha > 0.99
        wanted = apply_map(torch.from_numpy(r0.rgb[solid]).double(), A, b).numpy()
        assert np.abs(r1.rgb[solid] - wanted).mean() < 0.02
    for k in ("means", "quats", "scales", "opacities"):
        assert torch.equal(getattr(out, k), getattr(g, k)), f"{k} must not change"


def test_strength_blends_towards_the_style():
    g, cams = colored_blob(), ring_cameras(4, 64, 48)
    before, style = splat_stats(g, cams), lab_stats(warm_style())
    A0, b0 = transfer_map(before, style, strength=0.0)
    np.testing.assert_allclose(map_gaussians(g, A0, b0).sh0, g.sh0, atol=1e-4)
    half = splat_stats(map_gaussians(g, *transfer_map(before, style, strength=0.5)), cams)
    np.testing.assert_allclose(half.mean, (before.mean + style.mean) / 2, atol=3.0)
    with pytest.raises(ValueError):
        transfer_map(before, style, strength=1.5)


def test_higher_sh_bands_follow_the_maps_jacobian():
    """With view-dependent colour, each direction's colour after the transfer is the map of its
    colour before, to first order: far closer than leaving the higher bands as they were."""
    rng = np.random.default_rng(2)
    n = 200
    g = Gaussians.from_points(rng.normal(size=(n, 3)), rng.uniform(0.3, 0.7, (n, 3)), sh_degree=1)
    g.shN = torch.from_numpy(rng.normal(0, 0.05, (n, 3, 3))).float()
    style = lab_stats(warm_style())
    A, b = transfer_map(lab_stats(g.rgb.numpy()), style)
    out = map_gaussians(g, A, b)
    dirs = torch.from_numpy(rng.normal(size=(n, 3))).float()
    seen_before = sh_to_color(1, dirs, g.colors_sh).double()
    wanted = apply_map(seen_before.clamp(0, 1), A, b)
    err_jacobian = (sh_to_color(1, dirs, out.colors_sh).double() - wanted).abs().mean()
    kept = Gaussians(out.means, out.quats, out.scales, out.opacities, out.sh0, g.shN)
    err_kept = (sh_to_color(1, dirs, kept.colors_sh).double() - wanted).abs().mean()
    assert err_jacobian < 0.004 and err_jacobian < err_kept / 3, (float(err_jacobian), float(err_kept))


def test_statistics_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        lab_stats(np.zeros((0, 3)))
