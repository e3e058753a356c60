"""FSGS-style proximity-guided densification ("Gaussian unpooling").

3DGS grows Gaussians where the screen-space gradient is large, which few views rarely trigger in
sparsely seeded regions. FSGS instead looks at the 3D neighbourhood: a Gaussian whose K nearest
neighbours are far away (its proximity score) gets a new Gaussian at the midpoint towards each of
them, so seeds spread along surfaces instead of leaving holes in novel views."""

from __future__ import annotations

import torch
from gsplat.strategy.ops import _update_param_with_optimizer
from torch import Tensor


@torch.no_grad()
def append_gaussians(params: torch.nn.ParameterDict, optimizers: dict, state: dict,
                     new: dict[str, Tensor]) -> None:
    """Append Gaussians (a dict with every param name → [M,...]) in place; their optimiser
    moments and the densification strategy's running statistics start at zero."""
    m = len(new["means"])

    def param_fn(name: str, p: Tensor) -> Tensor:
        return torch.nn.Parameter(torch.cat([p, new[name].to(p)]), requires_grad=p.requires_grad)

    def optimizer_fn(key: str, v: Tensor) -> Tensor:
        return torch.cat([v, torch.zeros((m, *v.shape[1:]), device=v.device, dtype=v.dtype)])

    _update_param_with_optimizer(param_fn, optimizer_fn, params, optimizers)
    for k, v in state.items():
        if isinstance(v, Tensor) and v.dim() >= 1 and len(v) == len(params["means"]) - m:
            state[k] = torch.cat([v, torch.zeros((m, *v.shape[1:]), device=v.device, dtype=v.dtype)])


def proximity_candidates(means: Tensor, k: int = 3, factor: float = 3.0, max_new: int = 5000
                         ) -> tuple[Tensor, Tensor]:
    """(source [M], neighbour [M]) index pairs to unpool: Gaussians whose mean distance to their
    k nearest neighbours [N,3] is above `factor` × the median, paired with each of those
    neighbours, the sparsest first, at most `max_new` pairs."""
    from scipy.spatial import cKDTree

    pts = means.detach().cpu().numpy()
    if len(pts) <= k + 1:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    dist, idx = cKDTree(pts).query(pts, k=k + 1)
    score = dist[:, 1:].mean(1)
    thresh = factor * float(torch.tensor(score).median())
    order = torch.argsort(torch.from_numpy(score), descending=True)
    order = order[torch.from_numpy(score)[order] > thresh]
    src = order.repeat_interleave(k)
    nbr = torch.from_numpy(idx[:, 1:]).long()[order].reshape(-1)
    return src[:max_new], nbr[:max_new]


@torch.no_grad()
def unpool(params: torch.nn.ParameterDict, optimizers: dict, state: dict, k: int = 3,
           factor: float = 3.0, max_new: int = 5000) -> int:
    """Add a Gaussian halfway between each sparse Gaussian and each of its k neighbours; it
    takes the source's attributes and the smaller of the pair's scales. Returns how many."""
    src, nbr = proximity_candidates(params["means"], k, factor, max_new)
    if len(src) == 0:
        return 0
    dev = params["means"].device
    src, nbr = src.to(dev), nbr.to(dev)
    new = {name: params[name][src].clone() for name in params.keys()}
    new["means"] = 0.5 * (params["means"][src] + params["means"][nbr])
    new["scales"] = torch.minimum(params["scales"][src], params["scales"][nbr])
    append_gaussians(params, optimizers, state, new)
    return len(src)
