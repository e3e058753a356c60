"""Niantic .spz: round trips within the format's quantisation (v2 and v3, SH degrees 0-3), its
axes (RUB in the file), a file written by the reference library, and bad files.

Tolerances (each half a quantisation step, from the layout in recon/io/spz.py):
  positions   1/8192 (24-bit fixed point, 12 fractional bits)
  log scales  1/32 (steps of 1/16)
  opacity     0.5/255 after the sigmoid
  f_dc        0.5/(0.15·255) ≈ 0.0131
  SH          4.5/128 for degree 1 (1/128 rounding, then buckets of 8), 8.5/128 above (buckets of 16)
  rotations   v3: the three stored components within √½/1022 ≈ 6.9e-4 (9-bit magnitudes), the
              rotation within 0.005 rad; v2: x, y, z within 0.5/127.5 with w ≥ 0
"""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch
from splat_random import random_splat, rotation_angle, smallest_three_error

from recon.errors import ReconError
from recon.gaussians import SH_C0
from recon.io.splat_formats import read_splat
from recon.io.spz import parse_spz, read_spz, spz_bytes, write_spz

# minimal-v3.spz from playcanvas/splat-transform's test fixtures (MIT), written by @adobe/spz (the
# WASM build of Niantic's library) from 4 RDF splats: x, z in {-1, 0}, y = 0, scale 0.1, alpha 0.9,
# identity rotation, colours ((gx+1)/3, (gz+1)/3, 0.5).
REFERENCE_V3 = bytes.fromhex(
    "1f8b0800000000000003f3730f0e60666060600162061e20fef01fc4126080020198081278060499990dd3321b32a7354c"
    "9bd6508d0480d20790310027c3b78960000000")


def round_trip(g, version: int):
    return parse_spz(gzip.decompress(spz_bytes(g, version)))


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_within_the_quantisation(version, degree):
    g = random_splat(2000, degree, seed=degree)
    h = round_trip(g, version)
    assert len(h) == len(g) and h.sh_degree == degree
    assert (g.means - h.means).abs().max() <= 0.5 / 4096 + 1e-6
    assert (g.scales - h.scales).abs().max() <= 1 / 32 + 1e-6
    assert (torch.sigmoid(g.opacities) - torch.sigmoid(h.opacities)).abs().max() <= 0.5 / 255 + 1e-6
    assert (g.sh0 - h.sh0).abs().max() <= 0.5 / (0.15 * 255) + 1e-6
    if degree:
        assert (g.shN[:, :3] - h.shN[:, :3]).abs().max() <= 4.5 / 128 + 1e-6
        if degree > 1:
            assert (g.shN[:, 3:] - h.shN[:, 3:]).abs().max() <= 8.5 / 128 + 1e-6
    if version == 3:
        assert smallest_three_error(g, h).max() <= np.sqrt(0.5) / 1022 + 1e-6
        assert rotation_angle(g, h).max() <= 0.005
    else:
        qg = torch.nn.functional.normalize(g.quats, dim=-1)
        qg = qg * torch.where(qg[:, :1] < 0, -1.0, 1.0)  # v2 stores xyz with w ≥ 0
        assert (qg[:, 1:] - h.quats[:, 1:]).abs().max() <= 0.5 / 127.5 + 1e-6  # as decoded, w derived


def test_the_file_holds_rub_axes_and_the_layout_of_the_description():
    """One splat at (1, 2, 3) in recon's (.ply, RDF) axes is (1, −2, −3) in the file; the arrays
    come in the described order with the described encodings."""
    g = random_splat(1, 1, seed=3)
    g.means[:] = torch.tensor([1.0, 2.0, 3.0])
    g.scales[:] = torch.tensor([-1.0, -2.0, 0.5])
    g.opacities[:] = 0.0
    g.quats[:] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    raw = gzip.decompress(spz_bytes(g, 3))
    magic, version, n, degree, bits, flags, _ = struct.unpack_from("<IIIBBBB", raw)
    assert (magic, version, n, degree, bits, flags) == (0x5053474E, 3, 1, 1, 12, 0)
    pos = np.frombuffer(raw, np.uint8, 9, 16).reshape(3, 3).astype(np.int64)
    fixed = pos[:, 0] | pos[:, 1] << 8 | pos[:, 2] << 16
    fixed = np.where(fixed >= 1 << 23, fixed - (1 << 24), fixed)
    assert fixed.tolist() == [4096, -2 * 4096, -3 * 4096]
    assert raw[25] == 128  # alpha: sigmoid(0)·255 rounded
    assert list(raw[29:32]) == [144, 128, 168]  # scales: (s + 10)·16
    word = struct.unpack_from("<I", raw, 32)[0]
    assert word >> 30 == 3 and word & 0x3FFFFFFF == 0  # w (index 3 in xyzw) largest, x y z zero
    assert len(raw) == 16 + 9 + 1 + 3 + 3 + 4 + 9


def test_a_file_written_by_the_reference_library():
    g = parse_spz(gzip.decompress(REFERENCE_V3))
    assert len(g) == 4 and g.sh_degree == 0
    means = sorted(map(tuple, g.means.numpy().round(3).tolist()))
    assert means == [(-1.0, 0.0, -1.0), (-1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 0.0, 0.0)]
    assert np.allclose(torch.exp(g.scales).numpy(), 0.1, rtol=0.04)
    assert np.allclose(torch.sigmoid(g.opacities).numpy(), 0.9, atol=0.003)
    assert np.allclose(g.quats.numpy(), [1, 0, 0, 0], atol=1e-6)
    rgb = (g.sh0[:, 0] * SH_C0 + 0.5).numpy()
    grid = np.rint(g.means[:, [0, 2]].numpy()) + 1  # (gx, gz) of each splat
    assert np.allclose(rgb[:, 0], (grid[:, 0] + 1) / 3, atol=0.005)
    assert np.allclose(rgb[:, 1], (grid[:, 1] + 1) / 3, atol=0.005)
    assert np.allclose(rgb[:, 2], 0.5, atol=0.005)


def test_far_splats_get_fewer_fractional_bits():
    g = random_splat(10, 0, reach=5000.0)
    raw = gzip.decompress(spz_bytes(g))
    assert raw[13] == 10  # 5000 · 2^10 < 2^23
    assert (round_trip(g, 3).means - g.means).abs().max() <= 0.5 / 1024 + 1e-3


def test_write_read_and_dispatch(tmp_path):
    g = random_splat(50, 2)
    path = tmp_path / "x.spz"
    write_spz(path, g)
    assert [p.name for p in tmp_path.iterdir()] == ["x.spz"]  # no temporary left
    a, b = read_spz(path), read_splat(path)
    assert torch.equal(a.means, b.means) and torch.equal(a.shN, b.shN)


@pytest.mark.parametrize("data, message", [
    (b"not gzip at all", "not a gzipped .spz"),
    (gzip.compress(b"short"), "truncated .spz"),
    (gzip.compress(struct.pack("<IIIBBBB", 0x1234, 3, 1, 0, 12, 0, 0) + bytes(20)), "not a .spz"),
    (gzip.compress(struct.pack("<IIIBBBB", 0x5053474E, 3, 1000, 0, 12, 0, 0) + bytes(20)), "truncated .spz"),
    (gzip.compress(struct.pack("<IIIBBBB", 0x5053474E, 7, 1, 0, 12, 0, 0) + bytes(20)), "version 7"),
    (b"NGSP" + bytes(60), "version 4"),
])  # fmt: skip
def test_bad_files_are_one_line_errors_naming_the_file(tmp_path, data, message):
    path = tmp_path / "bad.spz"
    path.write_bytes(data)
    with pytest.raises(ReconError, match=message) as e:
        read_spz(path)
    assert "bad.spz" in str(e.value) and "\n" not in str(e.value)
