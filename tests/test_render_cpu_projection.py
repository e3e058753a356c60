"""The cpu backend's numba projection against the torch specification (recon.render.projection).

The scene mixes every branch: Gaussians behind the camera and beyond the near plane, off the
image, inside the Jacobian's clamp margin (off-image but close), too transparent to draw, and
ordinary ones, seen by three cameras.
"""

from __future__ import annotations

import math

import pytest
import torch

from recon.render.cpu_projection import project_cpu
from recon.render.projection import project

F64 = torch.float64


def _scene(n: int = 400, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g, dtype=F64) * torch.tensor([2.0, 1.5, 2.0], dtype=F64)
    means[:, 2] += 2.0  # some behind the cameras, many off-image
    quats = torch.randn(n, 4, generator=g, dtype=F64)
    scales = torch.exp(torch.empty(n, 3, dtype=F64).uniform_(math.log(0.01), math.log(0.5), generator=g))
    opac = torch.empty(n, dtype=F64).uniform_(0.0, 1.0, generator=g)
    opac[:20] = 0.002  # below 1/255: culled
    viewmats = torch.eye(4, dtype=F64).repeat(3, 1, 1)
    for i, a in enumerate((0.0, 0.3, -0.5)):
        viewmats[i, :3, :3] = torch.tensor(
            [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]], dtype=F64
        )
        viewmats[i, :3, 3] = torch.tensor([0.2 * i, -0.1, 0.3 * i], dtype=F64)
    Ks = torch.tensor([[120.0, 0, 81.3], [0, 118.0, 59.7], [0, 0, 1]], dtype=F64).repeat(3, 1, 1)
    return [means, quats, scales, opac], viewmats, Ks, 160, 120


def _outputs_and_grads(fn, dtype, params, viewmats, Ks, width, height):
    leaves = [p.detach().to(dtype).requires_grad_(True) for p in params]
    proj = fn(*leaves, viewmats.to(dtype), Ks.to(dtype), width, height)
    g = torch.Generator().manual_seed(11)
    loss = sum((t * torch.randn(t.shape, generator=g, dtype=F64).to(dtype)).sum()
               for t in (proj.means2d, proj.conics, proj.depths))  # fmt: skip
    loss.backward()
    grads = [p.grad.to(F64) for p in leaves[:3]]
    return proj, grads


def test_every_branch_is_exercised():
    params, viewmats, Ks, w, h = _scene()
    proj = project(*params, viewmats, Ks, w, h)
    visible = (proj.radii > 0).any(-1)
    z = torch.einsum("cij,nj->cni", viewmats[:, :3, :3], params[0])[..., 2] + viewmats[:, None, 2, 3]
    assert visible.sum() > 100 and (~visible).sum() > 100
    assert ((z < 0.01) & ~visible).any()  # behind the camera
    u = (Ks[:, None, 0, 0] * torch.einsum("cij,nj->cni", viewmats[:, :3, :3], params[0])[..., 0]
         + viewmats[:, None, 0, 3] * Ks[:, None, 0, 0]) / z + Ks[:, None, 0, 2]  # fmt: skip
    assert (visible & ((u < 0) | (u > w))).any()  # centre off-image but its footprint reaches in


@pytest.mark.parametrize("dtype", [F64, torch.float32])
def test_matches_torch_projection(dtype):
    params, viewmats, Ks, w, h = _scene()
    ref, ref_grads = _outputs_and_grads(project, F64, params, viewmats, Ks, w, h)
    got, got_grads = _outputs_and_grads(project_cpu, dtype, params, viewmats, Ks, w, h)
    torch.testing.assert_close(got.radii, ref.radii)
    tol = dict(rtol=1e-9, atol=1e-9) if dtype == F64 else dict(rtol=1e-4, atol=1e-4)
    for a, b in ((got.means2d, ref.means2d), (got.conics, ref.conics), (got.depths, ref.depths)):
        assert a.dtype == dtype
        torch.testing.assert_close(a.to(F64), b, **tol)
    for name, a, b in zip(("means", "quats", "scales"), got_grads, ref_grads):
        rel = (a - b).norm() / b.norm()
        assert rel < (1e-9 if dtype == F64 else 1e-4), (name, rel.item())


def test_gradcheck_float64():
    params, viewmats, Ks, w, h = _scene(n=12, seed=5)
    params[0][:, 2] = params[0][:, 2].abs() + 1.5  # in front of the cameras: smooth everywhere
    means, quats, scales, opac = (p.detach().requires_grad_(i < 3) for i, p in enumerate(params))

    def fn(m, q, s):
        p = project_cpu(m, q, s, opac, viewmats, Ks, w, h)
        return p.means2d, p.conics, p.depths

    assert torch.autograd.gradcheck(fn, (means, quats, scales), eps=1e-6, atol=1e-5)


def test_front_door_uses_torch_projection_when_cameras_need_gradients():
    from recon.render import rasterize

    params, viewmats, Ks, w, h = _scene(n=50)
    vm = viewmats.clone().requires_grad_(True)
    colors = torch.rand(50, 3, dtype=F64)
    renders, _, _ = rasterize(*params, colors, vm, Ks, w, h, backend="cpu")
    renders.sum().backward()
    assert vm.grad is not None and vm.grad.abs().sum() > 0
