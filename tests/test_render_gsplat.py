"""The gsplat (CUDA) backend against the cpu backend. Skipped without CUDA: the suite never needs a GPU."""

from __future__ import annotations

import math

import pytest
import torch

from recon.render import rasterize, resolve_backend

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="gsplat backend needs a CUDA GPU")


def test_auto_follows_the_tensors_not_the_machine(monkeypatch):
    """On a machine with CUDA, CPU tensors (`--device cpu`, the viewer's exact renders, export)
    still go to the cpu backend: faked here by making torch report a GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_backend("auto", "cpu") == "cpu"
    assert resolve_backend("auto", torch.device("cuda", 0)) == "gsplat"
    means = torch.zeros(1, 3)
    means[0, 2] = 2.0
    _, alpha, meta = rasterize(means, torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), 0.3), torch.ones(1),
                               torch.ones(1, 3), torch.eye(4)[None],
                               torch.tensor([[[8.0, 0, 4], [0, 8.0, 4], [0, 0, 1]]]), 8, 8)
    assert meta["backend"] == "cpu" and alpha.max() > 0.5


def test_gsplat_backend_refuses_cpu_tensors():
    means = torch.zeros(1, 3)
    args = (means, torch.tensor([[1.0, 0, 0, 0]]), torch.ones(1, 3), torch.ones(1), torch.ones(1, 3),
            torch.eye(4)[None], torch.eye(3)[None], 4, 4)  # fmt: skip
    with pytest.raises(RuntimeError, match="CUDA"):
        rasterize(*args, backend="gsplat")


def _scene(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * torch.tensor([0.8, 0.6, 0.5])
    means[:, 2] += 3.0
    quats = torch.randn(n, 4, generator=g)
    scales = torch.exp(torch.empty(n, 3).uniform_(math.log(0.02), math.log(0.3), generator=g))
    opac = torch.empty(n).uniform_(0.05, 0.95, generator=g)
    sh = torch.randn(n, 16, 3, generator=g) * 0.3
    viewmats = torch.eye(4).repeat(2, 1, 1)
    viewmats[1, 0, 3] = -0.3
    Ks = torch.tensor([[70.0, 0, 32.3], [0, 70.0, 23.8], [0, 0, 1]]).repeat(2, 1, 1)
    return [means, quats, scales, opac, sh], viewmats, Ks


@cuda
@pytest.mark.parametrize("mode", ["RGB", "RGB+D"])
def test_gsplat_matches_cpu(mode):
    params, viewmats, Ks = _scene(300, 0)
    out = {}
    for backend, device in (("cpu", "cpu"), ("gsplat", "cuda")):
        leaves = [p.to(device).requires_grad_(True) for p in params]
        r, a, meta = rasterize(*leaves, viewmats.to(device), Ks.to(device), 64, 48, sh_degree=3,
                               render_mode=mode, backend=backend)  # fmt: skip
        (r.square().sum() + a.sum()).backward()
        out[backend] = [r.cpu(), a.cpu(), meta["radii"].cpu()] + [p.grad.cpu() for p in leaves]
        assert meta["backend"] == backend and meta["gaussian_ids"] is None
    for i, (x, y) in enumerate(zip(out["cpu"][:2], out["gsplat"][:2])):
        assert (x - y).abs().max() < 1e-4, i
    assert torch.equal(out["cpu"][2], out["gsplat"][2])
    for g_cpu, g_gs in zip(out["cpu"][3:], out["gsplat"][3:]):
        assert (g_cpu - g_gs).norm() / g_gs.norm() < 1e-3
