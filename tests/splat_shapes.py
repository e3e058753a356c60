"""Synthetic splats with a known shape, for the export tests: a sphere of flat, opaque Gaussians."""

from __future__ import annotations

import numpy as np
import torch

from recon.gaussians import Gaussians, rgb_to_sh0


def fibonacci_sphere(n: int) -> np.ndarray:
    """[n,3] nearly uniform unit vectors."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5 ** 0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)


def quat_from_z(normals: np.ndarray) -> np.ndarray:
    """[N,4] wxyz unit quaternions turning +z onto each unit normal [N,3]."""
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(z, normals)
    w = 1.0 + normals @ z
    q = np.concatenate([w[:, None], axis], axis=1)
    flip = w < 1e-6  # the normal is −z: half a turn about x
    q[flip] = [0.0, 1.0, 0.0, 0.0]
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def sphere_splat(n: int = 3000, radius: float = 1.0, centre=(0.0, 0.0, 0.0), sh_degree: int = 0,
                 seed: int = 0) -> Gaussians:
    """Opaque discs tangent to a sphere: thin along the normal, overlapping along the surface,
    coloured by position so renders have texture."""
    rng = np.random.default_rng(seed)
    normals = fibonacci_sphere(n)
    spacing = radius * np.sqrt(4 * np.pi / n)
    scales = np.log(np.array([spacing * 0.8, spacing * 0.8, spacing * 0.05]))
    rgb = np.clip(0.5 + 0.4 * normals + 0.05 * rng.normal(size=normals.shape), 0, 1)
    k = (sh_degree + 1) ** 2 - 1
    return Gaussians(
        means=torch.tensor(normals * radius + np.asarray(centre), dtype=torch.float32),
        quats=torch.tensor(quat_from_z(normals), dtype=torch.float32),
        scales=torch.tensor(np.tile(scales, (n, 1)), dtype=torch.float32),
        opacities=torch.logit(torch.full((n,), 0.97)),
        sh0=rgb_to_sh0(torch.tensor(rgb, dtype=torch.float32))[:, None, :],
        shN=torch.tensor(rng.normal(scale=0.1, size=(n, k, 3)), dtype=torch.float32),
    )


def write_run(folder, g: Gaussians, cameras) -> None:
    """A run folder as `recon run` leaves it, for the exports: splat.ply and cameras.json."""
    from recon.cache import atomic_write_json
    from recon.io.ply import write_ply
    from recon.io.cameras_json import camera_record

    write_ply(folder / "splat.ply", g)
    atomic_write_json(folder / "cameras.json", [camera_record(f"view{i:03d}", c) for i, c in enumerate(cameras)])
