"""The numba cpu backend against the dense float64 reference (issue 3's "Done when").

Forward: within 1e-5 mean / 1e-4 max absolute error; gradients of every input within 1e-3
relative (‖g − g_ref‖ / ‖g_ref‖), with the cpu backend in float32 and the oracle in float64.
"""

from __future__ import annotations

import math

import pytest
import torch

from recon.render import rasterize

F64 = torch.float64
NAMES = ("means", "quats", "scales", "opacities", "colors")


def _scene(n: int, seed: int, spread=(0.8, 0.6, 0.5), scale_range=(0.02, 0.3), sh_bases=None):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g, dtype=F64) * torch.tensor(spread, dtype=F64)
    means[:, 2] += 3.0
    quats = torch.randn(n, 4, generator=g, dtype=F64)
    lo, hi = (math.log(s) for s in scale_range)
    scales = torch.exp(torch.empty(n, 3, dtype=F64).uniform_(lo, hi, generator=g))
    opac = torch.empty(n, dtype=F64).uniform_(0.05, 0.95, generator=g)
    if sh_bases is None:
        colors = torch.rand(n, 3, generator=g, dtype=F64)
    else:
        colors = torch.randn(n, sh_bases, 3, generator=g, dtype=F64) * 0.4
    return [means, quats, scales, opac, colors]


def _cameras(c: int, width: int, height: int):
    viewmats = torch.eye(4, dtype=F64).repeat(c, 1, 1)
    for i in range(c):
        a = 0.2 * i
        viewmats[i, :3, :3] = torch.tensor(
            [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]], dtype=F64
        )
        viewmats[i, 0, 3] = -0.3 * i
    f = 1.1 * max(width, height)
    Ks = torch.tensor([[f, 0, width / 2 + 0.4], [0, f, height / 2 - 0.3], [0, 0, 1]], dtype=F64)
    return viewmats, Ks.repeat(c, 1, 1)


def _run(backend, dtype, params, viewmats, Ks, width, height, seed=7, **kw):
    """Render, back-propagate random weights of every output, return outputs and grads (float64)."""
    leaves = [p.detach().to(dtype).requires_grad_(True) for p in params]
    renders, alphas, meta = rasterize(
        *leaves, viewmats.to(dtype), Ks.to(dtype), width, height, backend=backend, **kw
    )
    meta["means2d"].retain_grad()
    g = torch.Generator().manual_seed(seed)
    w_r = torch.randn(renders.shape, generator=g, dtype=F64).to(dtype)
    w_a = torch.randn(alphas.shape, generator=g, dtype=F64).to(dtype)
    ((renders * w_r).sum() + (alphas * w_a).sum()).backward()
    # A "D" render doesn't use colours: their grad is None, i.e. zero.
    grads = {n: torch.zeros_like(p, dtype=F64) if p.grad is None else p.grad.to(F64)
             for n, p in zip(NAMES, leaves)}  # fmt: skip
    return renders.detach().to(F64), alphas.detach().to(F64), grads, meta


def _compare(params, viewmats, Ks, width, height, **kw):
    ref = _run("reference", F64, params, viewmats, Ks, width, height, **kw)
    cpu = _run("cpu", torch.float32, params, viewmats, Ks, width, height, **kw)
    for out, out_ref in ((cpu[0], ref[0]), (cpu[1], ref[1])):
        err = (out - out_ref).abs()
        assert err.mean() < 1e-5 and err.max() < 1e-4, (err.mean().item(), err.max().item())
    for name in NAMES:
        g, g_ref = cpu[2][name], ref[2][name]
        assert torch.isfinite(g).all(), name
        if g_ref.abs().max() == 0:
            assert g.abs().max() == 0, name
            continue
        rel = (g - g_ref).norm() / g_ref.norm().clamp_min(1e-12)
        assert rel < 1e-3, (name, rel.item())
    torch.testing.assert_close(cpu[3]["radii"], ref[3]["radii"])
    return ref, cpu


@pytest.mark.parametrize(
    "seed, n_cams, width, height, mode, with_bg",
    [
        (0, 1, 48, 40, "RGB", False),
        (1, 3, 37, 29, "RGB+D", True),
        (2, 2, 33, 16, "D", True),
    ],
)
def test_matches_dense_reference(seed, n_cams, width, height, mode, with_bg):
    params = _scene(120, seed)
    viewmats, Ks = _cameras(n_cams, width, height)
    ch = {"RGB": 3, "D": 1, "RGB+D": 4}[mode]
    bg = torch.rand(n_cams, ch, dtype=F64) if with_bg else None
    ref, cpu = _compare(params, viewmats, Ks, width, height, render_mode=mode, backgrounds=bg)
    assert ref[1].max() > 0.5  # the scene is actually visible
    # meta["means2d"] is in the graph: its gradient is the image-plane gradient densification reads.
    g2d, g2d_ref = cpu[3]["means2d"].grad, ref[3]["means2d"].grad
    assert g2d is not None and g2d.abs().sum() > 0
    assert (g2d.to(F64) - g2d_ref).norm() / g2d_ref.norm() < 1e-3


def test_wide_feature_channels():
    """[N,D] plain features with D = 7 (e.g. learned features), two cameras, with backgrounds."""
    params = _scene(50, 5)
    params[4] = torch.rand(50, 7, dtype=F64)
    viewmats, Ks = _cameras(2, 21, 18)
    _compare(params, viewmats, Ks, 21, 18, backgrounds=torch.rand(2, 7, dtype=F64))


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_degrees(degree):
    params = _scene(60, 10 + degree, sh_bases=16)  # 16 coefficients: higher ones must be ignored
    viewmats, Ks = _cameras(2, 24, 20)
    ref, _ = _compare(params, viewmats, Ks, 24, 20, sh_degree=degree)
    k = (degree + 1) ** 2
    assert (ref[2]["colors"][:, k:] == 0).all() and (ref[2]["colors"][:, :k] != 0).any()


def test_edge_cases_in_one_scene():
    """Behind the camera, inside the near plane, straddling every border, huge and tiny scales."""
    params = _scene(90, 20, spread=(2.0, 1.6, 1.5), scale_range=(1e-4, 0.4))
    means, _, scales, opac, _ = params
    means[:10, 2] = torch.linspace(-2, 0.005, 10, dtype=F64)  # behind / at the camera
    means[10:20, 0] = 3.0 * torch.linspace(-0.5, 0.5, 10, dtype=F64)  # straddle left/right edges
    means[10:20, 2] = 3.0
    scales[20] = 40.0  # covers the whole image (box clamped to the tile grid)
    opac[20] = 0.3
    scales[21:25] = 1e-5  # sub-pixel: the 0.3 px² blur keeps them visible
    means[21:25] = torch.tensor([[0.1, 0.1, 2.0], [-0.2, 0.1, 2.5], [0.0, -0.1, 3.0], [0.3, 0.2, 4.0]])
    viewmats, Ks = _cameras(2, 45, 35)
    ref, _ = _compare(params, viewmats, Ks, 45, 35, render_mode="RGB+D")
    radii = ref[3]["radii"]
    assert (radii[:, :8] == 0).all() and (radii[:, 20] > 40).all() and (radii[0, 21:25] > 0).all()


@pytest.mark.parametrize("width, height", [(1, 1), (17, 33), (16, 16), (2, 50)])
def test_image_sizes(width, height):
    params = _scene(40, 30, spread=(0.3, 0.3, 0.3))
    viewmats, Ks = _cameras(1, width, height)
    Ks[:, 0, 0] = Ks[:, 1, 1] = 2.0 * max(width, height)
    ref, _ = _compare(params, viewmats, Ks, width, height)
    assert ref[0].shape == (1, height, width, 3) and ref[1].max() > 0.1


def test_early_termination_matches_reference():
    """Many nearly opaque layers: most pixels stop at T ≤ 1e-4."""
    params = _scene(80, 40, spread=(0.3, 0.2, 0.5), scale_range=(0.1, 0.3))
    params[3] = torch.full_like(params[3], 0.97)
    viewmats, Ks = _cameras(1, 32, 24)
    ref, cpu = _compare(params, viewmats, Ks, 32, 24)
    assert (1 - ref[1] < 1e-3).float().mean() > 0.15


def test_nothing_in_view():
    params = _scene(20, 50)
    params[0][:, 2] = -3.0  # all behind the camera
    viewmats, Ks = _cameras(2, 20, 12)
    bg = torch.tensor([[0.1, 0.2, 0.3], [0.5, 0.5, 0.5]], dtype=F64)
    renders, alphas, grads, meta = _run("cpu", torch.float32, params, viewmats, Ks, 20, 12, backgrounds=bg)
    assert (meta["radii"] == 0).all() and (alphas == 0).all()
    torch.testing.assert_close(renders, bg[:, None, None].expand_as(renders))
    assert all((g == 0).all() for g in grads.values())


def test_cpu_gradcheck_float64():
    """The kernels compile for float64 too, so the analytic backward can be gradchecked directly."""
    params = _scene(7, 60, spread=(0.3, 0.3, 0.3), scale_range=(0.1, 0.3))
    params[4] = torch.randn(7, 4, 3, dtype=F64) * 0.3
    viewmats, Ks = _cameras(2, 12, 9)
    bg = torch.rand(2, 4, dtype=F64)

    def f(*p):
        r, a, _ = rasterize(*p, viewmats, Ks, 12, 9, sh_degree=1, render_mode="RGB+D",
                            backgrounds=bg, backend="cpu")  # fmt: skip
        return r, a

    inputs = [p.clone().requires_grad_(True) for p in params]
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=True)


def test_default_strategy_runs_on_cpu_meta():
    from gsplat.strategy import DefaultStrategy

    means, quats, scales, opac, colors = _scene(50, 70)
    params = torch.nn.ParameterDict({
        "means": means.float(), "quats": quats.float(), "scales": scales.log().float(),
        "opacities": torch.logit(opac).float(), "colors": colors.float(),
    })  # fmt: skip
    optimizers = {k: torch.optim.Adam([v], lr=1e-3) for k, v in params.items()}
    strategy = DefaultStrategy(refine_start_iter=1, refine_every=2, grow_grad2d=1e-6)
    strategy.check_sanity(params, optimizers)
    state = strategy.initialize_state(scene_scale=1.0)
    viewmats, Ks = _cameras(2, 32, 24)
    for step in range(3):
        renders, _, info = rasterize(
            params["means"], params["quats"], torch.exp(params["scales"]),
            torch.sigmoid(params["opacities"]), params["colors"], viewmats.float(), Ks.float(),
            32, 24, backend="cpu",
        )  # fmt: skip
        strategy.step_pre_backward(params, optimizers, state, step, info)
        renders.mean().backward()
        assert info["means2d"].grad is not None and info["means2d"].grad.shape[:2] == (2, 50)
        strategy.step_post_backward(params, optimizers, state, step, info, packed=False)
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad()
    assert len(params["means"]) > 50  # step 2 refined: the large-gradient Gaussians grew


def test_concurrent_calls_from_threads():
    """The live viewer renders from its own thread while the optimiser steps."""
    from concurrent.futures import ThreadPoolExecutor

    params = [p.float() for p in _scene(60, 80)]
    viewmats, Ks = _cameras(1, 40, 30)

    def render(_):
        leaves = [p.clone().requires_grad_(True) for p in params]
        r, _, _ = rasterize(*leaves, viewmats.float(), Ks.float(), 40, 30, backend="cpu")
        r.sum().backward()
        return r.detach(), leaves[0].grad

    expected = render(0)
    with ThreadPoolExecutor(4) as pool:
        for r, g in pool.map(render, range(8)):
            assert torch.equal(r, expected[0]) and torch.equal(g, expected[1])
