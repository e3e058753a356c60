"""3DGS .ply in the Inria layout, which the Inria viewer, SuperSplat, nerfstudio and gsplat read:

  x y z nx ny nz f_dc_0..2 f_rest_0..(3(K-1)-1) opacity scale_0..2 rot_0..3

All values pre-activation (logit opacity, log scale, unnormalised wxyz quaternion).
f_rest is channel-major: all R coefficients of bands ≥1, then all G, then all B.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement

from recon.cache import UMASK
from recon.errors import ReconError
from recon.gaussians import Gaussians, sh_degree_from_bases


def write_ply(path: str | Path, gaussians: Gaussians) -> None:
    """Write atomically (temp file + rename) so an interrupted run never leaves half a file."""
    g = gaussians.detach()
    n = len(g)
    f_dc = g.sh0[:, 0, :].numpy()  # [N,3]
    f_rest = g.shN.permute(0, 2, 1).reshape(n, -1).numpy()  # [N, 3*(K-1)] channel-major
    columns: list[tuple[str, np.ndarray]] = [
        ("x", g.means[:, 0].numpy()), ("y", g.means[:, 1].numpy()), ("z", g.means[:, 2].numpy()),
        ("nx", np.zeros(n)), ("ny", np.zeros(n)), ("nz", np.zeros(n)),
    ]
    columns += [(f"f_dc_{i}", f_dc[:, i]) for i in range(3)]
    columns += [(f"f_rest_{i}", f_rest[:, i]) for i in range(f_rest.shape[1])]
    columns += [("opacity", g.opacities.numpy())]
    columns += [(f"scale_{i}", g.scales[:, i].numpy()) for i in range(3)]
    columns += [(f"rot_{i}", g.quats[:, i].numpy()) for i in range(4)]
    data = np.empty(n, dtype=[(name, "f4") for name, _ in columns])
    for name, values in columns:
        data[name] = values
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".ply.tmp")
    os.close(fd)
    try:
        PlyData([PlyElement.describe(data, "vertex")], byte_order="<").write(tmp)
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600: the splat is a deliverable, readable as any file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_ply(path: str | Path) -> Gaussians:
    """Read a 3DGS .ply (ours or another tool's; f_rest optional)."""
    path = Path(path)
    try:
        vertex = PlyData.read(str(path))["vertex"]
    except Exception as e:  # plyfile raises many types for a broken file
        raise ReconError(f"not a readable .ply ({e})", path) from e
    names = set(vertex.data.dtype.names)
    required = {"x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
                "rot_0", "rot_1", "rot_2", "rot_3"}
    if not required <= names:
        missing = ", ".join(sorted(required - names))
        raise ReconError(f"not a 3D Gaussian splat .ply: missing properties {missing}", path)

    def cols(keys: list[str]) -> torch.Tensor:
        return torch.from_numpy(np.stack([np.asarray(vertex[k], dtype=np.float32) for k in keys], axis=1))

    n = len(vertex.data)
    rest_keys = sorted((k for k in names if k.startswith("f_rest_")), key=lambda k: int(k.split("_")[-1]))
    if len(rest_keys) % 3:
        raise ReconError(f"{len(rest_keys)} f_rest properties is not a multiple of 3", path)
    k_rest = len(rest_keys) // 3
    sh_degree_from_bases(k_rest + 1)  # validates the count
    shN = cols(rest_keys).reshape(n, 3, k_rest).permute(0, 2, 1).contiguous() if k_rest else torch.zeros(n, 0, 3)
    return Gaussians(
        means=cols(["x", "y", "z"]),
        quats=cols([f"rot_{i}" for i in range(4)]),
        scales=cols([f"scale_{i}" for i in range(3)]),
        opacities=cols(["opacity"])[:, 0],
        sh0=cols([f"f_dc_{i}" for i in range(3)])[:, None, :],
        shN=shN,
    )
