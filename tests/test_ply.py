"""The .ply round trip, another tool's .ply, and the .splat export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from recon.errors import ReconError
from recon.gaussians import Gaussians
from recon.io.ply import read_ply, write_ply
from recon.io.splat import splat_bytes


def random_gaussians(n: int = 50, degree: int = 3) -> Gaussians:
    g = torch.Generator().manual_seed(0)
    k = (degree + 1) ** 2
    return Gaussians(
        means=torch.randn(n, 3, generator=g), quats=torch.randn(n, 4, generator=g),
        scales=torch.randn(n, 3, generator=g) - 3, opacities=torch.randn(n, generator=g),
        sh0=torch.randn(n, 1, 3, generator=g), shN=torch.randn(n, k - 1, 3, generator=g),
    )


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_round_trip_is_exact(tmp_path, degree):
    g = random_gaussians(degree=degree)
    write_ply(tmp_path / "a.ply", g)
    back = read_ply(tmp_path / "a.ply")
    for k in Gaussians.KEYS:
        assert torch.equal(getattr(back, k), getattr(g, k)), k
    assert back.sh_degree == degree


def test_inria_layout_and_channel_major_f_rest(tmp_path):
    g = random_gaussians(n=3, degree=1)
    write_ply(tmp_path / "a.ply", g)
    v = PlyData.read(str(tmp_path / "a.ply"))["vertex"]
    names = list(v.data.dtype.names)
    assert names[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert names[-8:] == ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    # f_rest_0..2 are the three band-1 coefficients of the RED channel (Inria's channel-major order).
    assert np.allclose([v["f_rest_0"][0], v["f_rest_1"][0], v["f_rest_2"][0]], g.shN[0, :, 0].numpy())
    assert np.isclose(v["f_rest_3"][0], g.shN[0, 0, 1].item())


def test_reads_another_tools_ply_without_f_rest(tmp_path):
    n = 4
    fields = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
              "rot_0", "rot_1", "rot_2", "rot_3", "red"]
    data = np.zeros(n, dtype=[(f, "f4") for f in fields])
    data["x"] = np.arange(n)
    data["rot_0"] = 1
    PlyData([PlyElement.describe(data, "vertex")]).write(str(tmp_path / "other.ply"))
    g = read_ply(tmp_path / "other.ply")
    assert len(g) == n and g.sh_degree == 0 and torch.equal(g.means[:, 0], torch.arange(n).float())


def test_bad_ply_is_a_one_line_error(tmp_path):
    (tmp_path / "bad.ply").write_text("not a ply")
    with pytest.raises(ReconError, match="bad.ply"):
        read_ply(tmp_path / "bad.ply")
    data = np.zeros(2, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    PlyData([PlyElement.describe(data, "vertex")]).write(str(tmp_path / "points.ply"))
    with pytest.raises(ReconError, match="missing properties"):
        read_ply(tmp_path / "points.ply")


def test_splat_format_records():
    g = random_gaussians(n=10, degree=0)
    raw = splat_bytes(g)
    assert len(raw) == 32 * 10
    rec = np.frombuffer(raw, dtype=[("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
    means, quats, scales, opac = g.activated()
    i = int(np.argmin(np.abs(rec["pos"][:, 0][:, None] - means[:, 0].numpy()[None]).min(axis=0)))
    j = int(np.where(np.isclose(rec["pos"][:, 0], means[i, 0].item()))[0][0])
    assert np.allclose(rec["scale"][j], scales[i].numpy(), rtol=1e-6)
    assert abs(int(rec["rgba"][j, 3]) - round(opac[i].item() * 255)) <= 1
    size = rec["scale"].prod(1) * rec["rgba"][:, 3]
    assert np.all(np.diff(size) <= 1e-6 * size.max()), "sorted by decreasing size·opacity"


def test_a_written_splat_is_readable_by_others(tmp_path):
    """mkstemp makes 0600; a deliverable gets the mode the user's umask gives any new file."""
    import os

    from recon.cache import UMASK

    g = Gaussians.from_points(np.zeros((2, 3), np.float32), None, sh_degree=0)
    write_ply(tmp_path / "s.ply", g)
    assert (tmp_path / "s.ply").stat().st_mode & 0o777 == 0o666 & ~UMASK
    assert os.access(tmp_path / "s.ply", os.R_OK)
