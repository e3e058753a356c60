"""Random splats and attribute comparisons for the splat-format round-trip tests."""

from __future__ import annotations

import numpy as np
import torch

from recon.gaussians import Gaussians


def random_splat(n: int, sh_degree: int, seed: int = 0, reach: float = 3.0, sh_range: float = 0.95,
                 dc_range: float = 2.0) -> Gaussians:
    """n Gaussians with every attribute spread over the range a format can hold."""
    rng = np.random.default_rng(seed)
    k = (sh_degree + 1) ** 2 - 1

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.tensor(a, dtype=torch.float32)

    return Gaussians(
        means=t(rng.uniform(-reach, reach, (n, 3))),
        quats=t(rng.normal(size=(n, 4)) * rng.uniform(0.5, 2.0, (n, 1))),  # unnormalised, as trained
        scales=t(rng.uniform(-7.0, 1.0, (n, 3))),
        opacities=t(rng.normal(0.0, 2.5, n)),
        sh0=t(rng.uniform(-dc_range, dc_range, (n, 1, 3))),
        shN=t(rng.uniform(-sh_range, sh_range, (n, k, 3))),
    )


def unit_quats(g: Gaussians) -> np.ndarray:
    return torch.nn.functional.normalize(g.quats, dim=-1).numpy().astype(np.float64)


def rotation_angle(a: Gaussians, b: Gaussians) -> np.ndarray:
    """[N] radians between the rotations of a and b (q and −q are the same rotation)."""
    dot = np.abs((unit_quats(a) * unit_quats(b)).sum(axis=1)).clip(0, 1)
    return 2 * np.arccos(dot)


def smallest_three_error(a: Gaussians, b: Gaussians) -> np.ndarray:
    """[N] the largest error among the three components a smallest-three code stores (all but
    the largest |component| of a's unit quaternion, signs aligned so that one is positive)."""
    qa, qb = unit_quats(a), unit_quats(b)
    largest = np.argmax(np.abs(qa), axis=1)
    sign = np.sign(np.take_along_axis(qa, largest[:, None], 1))
    qa, qb = qa * sign, qb * np.sign(np.take_along_axis(qb, largest[:, None], 1))
    err = np.abs(qa - qb)
    err[np.arange(len(qa)), largest] = 0
    return err.max(axis=1)
