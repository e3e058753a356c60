"""CoR-GS-style co-regularisation of two splats trained side by side.

Two splats fit to the same few views agree where the views constrain them and disagree where they
do not: their Gaussians in well-seen surfaces land near each other, floaters land at random.
Co-pruning removes, from each splat, the Gaussians with no Gaussian of the other within a small
distance; the pseudo-view term (recon.stages.optimize) makes their renders of unseen viewpoints agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from recon.gaussians import Gaussians

if TYPE_CHECKING:
    from recon.stages.splat import Splat


def perturbed(init: Gaussians, seed: int, radius: float, sigma: float = 0.002) -> Gaussians:
    """The second splat's start: the same seeds moved by a little noise (σ × scene radius), so the
    two splats do not densify in lockstep."""
    gen = torch.Generator().manual_seed(seed)
    g = Gaussians(**{k: getattr(init, k).clone() for k in Gaussians.KEYS})
    g.means = g.means + torch.randn(g.means.shape, generator=gen) * sigma * radius
    return g


def unmatched(a: torch.Tensor, b: torch.Tensor, distance: float) -> torch.Tensor:
    """[Na] bool: points of a [Na,3] with no point of b [Nb,3] within `distance`."""
    from scipy.spatial import cKDTree

    if len(b) == 0:
        return torch.ones(len(a), dtype=torch.bool, device=a.device)
    d, _ = cKDTree(b.detach().cpu().numpy()).query(a.detach().cpu().numpy(), k=1)
    return torch.from_numpy(d > distance).to(a.device)


@torch.no_grad()
def co_prune(s1: "Splat", s2: "Splat", distance: float) -> tuple[int, int]:
    """Remove from each splat the Gaussians the other does not have nearby; returns the counts."""
    m1 = unmatched(s1.params["means"], s2.params["means"], distance)
    m2 = unmatched(s2.params["means"], s1.params["means"], distance)
    return s1.remove(m1), s2.remove(m2)
