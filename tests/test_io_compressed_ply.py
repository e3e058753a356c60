"""SuperSplat's compressed .ply: round trips within the format's quantisation, the chunk layout,
the older chunks without colour ranges, and bad files.

Tolerances (half a quantisation step; the steps come from each 256-splat chunk's own range):
  positions   (max − min)/(2·2047) in x and z, /(2·1023) in y (11-10-11 bits)
  log scales  the same over the chunk's scale range
  colour      (max − min)/(2·255) of SH_C0·f_dc + 0.5
  opacity     0.5/255 after the sigmoid
  rotations   the three stored components within √2/(2·1023) ≈ 6.9e-4 (10 bits over ±√½)
  SH          1/64 within ±(4 − 1/32) (8 bits over ±4)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement
from splat_random import random_splat, smallest_three_error

from recon.errors import ReconError
from recon.gaussians import SH_C0
from recon.io.compressed_ply import (CHUNK_PROPS, compressed_ply_bytes, morton_order, read_compressed_ply,
                                     write_compressed_ply)
from recon.io.splat_formats import is_compressed_ply, read_splat


def write_and_read(tmp_path, g, with_sh=True):
    path = tmp_path / "s.compressed.ply"
    write_compressed_ply(path, g, with_sh)
    return path, read_compressed_ply(path)


def chunk_half_steps(path, n: int) -> dict[str, np.ndarray]:
    """Per splat [N,3]: half the quantisation step of its chunk, for positions, scales, colours."""
    chunk = PlyData.read(str(path))["chunk"]
    ci = np.arange(n) // 256

    def half(lo: str, hi: str, axes, bits) -> np.ndarray:
        span = np.stack([np.asarray(chunk[hi + a]) - np.asarray(chunk[lo + a]) for a in axes], 1)[ci]
        return span / (2 * (2.0 ** np.asarray(bits) - 1))

    return {"pos": half("min_", "max_", "xyz", [11, 10, 11]),
            "scale": half("min_scale_", "max_scale_", "xyz", [11, 10, 11]),
            "rgb": half("min_", "max_", "rgb", [8, 8, 8])}


@pytest.mark.parametrize("degree, n", [(0, 256), (1, 300), (3, 1000)])
def test_round_trip_within_each_chunks_quantisation(tmp_path, degree, n):
    g = random_splat(n, degree, seed=n, sh_range=3.9)
    path, h = write_and_read(tmp_path, g)
    assert is_compressed_ply(path) and len(h) == n and h.sh_degree == degree
    ref = g.select(torch.from_numpy(morton_order(g.means.numpy())))  # the file is in Morton order
    step = chunk_half_steps(path, n)
    assert ((ref.means - h.means).abs().numpy() <= step["pos"] + 1e-5).all()
    assert ((ref.scales - h.scales).abs().numpy() <= step["scale"] + 1e-5).all()
    rgb = lambda x: (x.sh0[:, 0] * SH_C0 + 0.5).numpy()  # noqa: E731
    assert (np.abs(rgb(ref) - rgb(h)) <= step["rgb"] + 1e-5).all()
    assert (torch.sigmoid(ref.opacities) - torch.sigmoid(h.opacities)).abs().max() <= 0.5 / 255 + 1e-6
    assert smallest_three_error(ref, h).max() <= np.sqrt(2) / (2 * 1023) + 1e-6
    if degree:
        assert (ref.shN - h.shN).abs().max() <= 1 / 64 + 1e-6


def test_the_layout(tmp_path):
    """Chunks of 256 in Morton order, each chunk's min/max those of its own splats, the vertex
    words and SH bytes where the description puts them."""
    g = random_splat(600, 1, seed=4)
    path = tmp_path / "s.ply"
    write_compressed_ply(path, g)
    ply = PlyData.read(str(path))
    assert [e.name for e in ply.elements] == ["chunk", "vertex", "sh"]
    assert list(ply["chunk"].data.dtype.names) == list(CHUNK_PROPS) and len(ply["chunk"].data) == 3
    assert list(ply["vertex"].data.dtype.names) == ["packed_position", "packed_rotation", "packed_scale",
                                                    "packed_color"]
    assert all(ply["vertex"].data.dtype[i] == np.dtype("<u4") for i in range(4))
    assert len(ply["sh"].data.dtype.names) == 9 and ply["sh"].data.dtype[0] == np.dtype("u1")
    ref = g.select(torch.from_numpy(morton_order(g.means.numpy())))
    last = ref.means[512:].numpy()  # the partial last chunk: its range is its 88 splats'
    assert np.allclose([ply["chunk"][f"min_{a}"][2] for a in "xyz"], last.min(0))
    assert np.allclose([ply["chunk"][f"max_{a}"][2] for a in "xyz"], last.max(0))
    alpha = ply["vertex"]["packed_color"] & 255
    assert np.array_equal(alpha, np.floor(torch.sigmoid(ref.opacities).numpy() * 255 + 0.5))
    rest = ref.shN.permute(0, 2, 1).reshape(600, -1).numpy()  # .ply order: channel-major
    assert np.array_equal(ply["sh"]["f_rest_4"], np.clip(np.trunc((rest[:, 4] / 8 + 0.5) * 256), 0, 255))


def test_morton_order_keeps_chunks_compact():
    pts = np.random.default_rng(0).uniform(0, 1, (4096, 3))
    o = morton_order(pts)
    assert sorted(o.tolist()) == list(range(4096))
    chunks = pts[o].reshape(16, 256, 3)
    # the mean side of a chunk's box: ≈ 0.54 along the Z curve, ≈ 1 in random order
    assert (chunks.max(1) - chunks.min(1)).mean() < 0.6


def test_without_sh_and_old_chunks_without_colour(tmp_path):
    g = random_splat(300, 2, seed=5)
    path, h = write_and_read(tmp_path, g, with_sh=False)
    assert h.sh_degree == 0 and "element sh" not in path.read_bytes()[:2000].decode("ascii", "replace")
    # the older layout: 12-float chunks, colours as plain 8-bit unorms
    ply = PlyData.read(str(path))
    chunk = ply["chunk"].data
    old = np.empty(len(chunk), dtype=[(p, "<f4") for p in CHUNK_PROPS[:12]])
    for p in CHUNK_PROPS[:12]:
        old[p] = chunk[p]
    PlyData([PlyElement.describe(old, "chunk"), ply["vertex"]], byte_order="<").write(str(tmp_path / "old.ply"))
    h_old = read_splat(tmp_path / "old.ply")
    col = (ply["vertex"]["packed_color"] >> 24).astype(np.float64) / 255
    assert np.allclose((h_old.sh0[:, 0, 0] * SH_C0 + 0.5).numpy(), col, atol=1e-6)
    assert torch.equal(h_old.means, h.means)


def test_bad_files_are_one_line_errors(tmp_path):
    g = random_splat(300, 0)
    bad = tmp_path / "bad.ply"
    bad.write_bytes(compressed_ply_bytes(g)[:1500])
    with pytest.raises(ReconError, match="bad.ply") as e:
        read_splat(bad)
    assert "\n" not in str(e.value)
    ply = PlyData.read(_written(tmp_path, g))
    one_chunk = PlyData([PlyElement.describe(ply["chunk"].data[:1], "chunk"), ply["vertex"]], byte_order="<")
    one_chunk.write(str(bad))
    with pytest.raises(ReconError, match="1 chunks for 300 splats"):
        read_splat(bad)
    with pytest.raises(ReconError, match="empty splat"):
        compressed_ply_bytes(g.select(torch.zeros(300, dtype=torch.bool)))


def _written(tmp_path, g):
    path = tmp_path / "ok.ply"
    write_compressed_ply(path, g)
    return str(path)
