"""Niantic's .spz (gzip, versions 2 and 3): a splat in about a tenth of the .ply's bytes.

Layout after gunzip (little-endian), per the public format description (nianticlabs/spz):

  header   16 bytes: magic 0x5053474e ("NGSP"), version u32, N u32, sh_degree u8,
           fractional_bits u8, flags u8 (0x1 antialiased, 0x2 extensions follow the data), reserved u8
  then one array per attribute, N entries each:
  position 3 × 24-bit signed fixed point, `fractional_bits` fractional bits
  alpha    u8: sigmoid(opacity)·255
  colour   3 × u8: f_dc·(0.15·255) + 127.5 (the SH DC coefficient, not the rendered colour)
  scale    3 × u8: (log scale + 10)·16
  rotation v2: 3 × u8, the xyz of the unit quaternion with w ≥ 0, (v + 1)·127.5;
           v3: u32 "smallest three": the index of the largest |component| (xyzw order) in the top 2
           bits, then each other component, first in the highest bits, as a sign bit and a 9-bit
           magnitude of |v|/√½ (the largest made positive first)
  sh       (K−1)·3 × u8 (coefficient-major, colour channel fastest): v·128 + 128, rounded to buckets
           of 8 for degree 1 and 16 above (Niantic's default 5 and 4 bits; better gzip, same reader)

Axes: spz stores right-up-back (RUB, OpenGL) coordinates and treats a 3DGS .ply as right-down-front
(RDF). recon's splat is what its splat.ply holds, so it is converted as every .ply → .spz tool
does: a 180° turn about x (y, z negated in positions, quaternions and the SH bands' odd terms).
The reader turns it back. Version 4 (zstd streams) is refused with a one-line error.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from recon.cache import atomic_write_bytes
from recon.errors import ReconError
from recon.gaussians import Gaussians, num_sh_bases

MAGIC = 0x5053474E
HEADER = struct.Struct("<IIIBBBB")
COLOR_SCALE = 0.15
SQRT1_2 = float(np.sqrt(0.5))
# RDF ↔ RUB is a 180° turn about x. Sign of each SH coefficient after it, bands 1-3 in gsplat's
# basis order (y, z, x | xy, yz, zz, xz, xx−yy | ...): terms odd in y or z (not both) flip.
_FLIP_P = np.array([1.0, -1.0, -1.0], dtype=np.float32)
_FLIP_Q_XYZ = np.array([1.0, -1.0, -1.0], dtype=np.float32)
_FLIP_SH = np.array([-1, -1, 1, -1, 1, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1], dtype=np.float32)


def spz_bytes(g: Gaussians, version: int = 3) -> bytes:
    """The gzipped .spz of `g` (SH degree ≤ 3). version 3 (smallest-three rotations) or 2."""
    if version not in (2, 3):
        raise ValueError(f"spz version must be 2 or 3, got {version}")
    g = g.detach()
    n, degree = len(g), g.sh_degree
    means = g.means.numpy().astype(np.float64) * _FLIP_P
    bits = _fractional_bits(means)
    fixed = np.round(means * (1 << bits)).astype(np.int64).reshape(-1)
    positions = np.stack([fixed & 0xFF, (fixed >> 8) & 0xFF, (fixed >> 16) & 0xFF], axis=1).astype(np.uint8)
    alphas = _to_u8(torch.sigmoid(g.opacities).numpy() * 255.0)
    colors = _to_u8(g.sh0[:, 0].numpy() * (COLOR_SCALE * 255.0) + 127.5)
    scales = _to_u8((g.scales.numpy() + 10.0) * 16.0)
    q = torch.nn.functional.normalize(g.quats, dim=-1).numpy()
    xyzw = np.concatenate([q[:, 1:] * _FLIP_Q_XYZ, q[:, :1]], axis=1)
    rotations = _pack_smallest_three(xyzw) if version == 3 else _pack_first_three(xyzw)
    sh = _quantize_sh(g.shN.numpy() * _FLIP_SH[: num_sh_bases(degree) - 1, None])
    header = HEADER.pack(MAGIC, version, n, degree, bits, 0, 0)
    payload = b"".join([header] + [a.tobytes() for a in (positions, alphas, colors, scales, rotations, sh)])
    return gzip.compress(payload, compresslevel=9, mtime=0)


def write_spz(path: str | Path, g: Gaussians, version: int = 3) -> None:
    atomic_write_bytes(Path(path), spz_bytes(g, version))


def read_spz(path: str | Path) -> Gaussians:
    """Read a .spz (versions 2 and 3) into a splat in recon's (.ply, RDF) axes. The antialiased
    flag is not kept: recon renders every splat in the classic (non-antialiased) mode."""
    path = Path(path)
    data = path.read_bytes()
    if data[:4] == b"NGSP":
        raise ReconError("spz version 4 (zstd streams) is not supported; re-save it as version 3", path)
    try:
        raw = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise ReconError(f"not a gzipped .spz ({e})", path) from None
    return parse_spz(raw, path)


def parse_spz(raw: bytes, path: str | Path = "<spz>") -> Gaussians:
    """The splat of an uncompressed .spz payload (header + arrays)."""
    if len(raw) < HEADER.size:
        raise ReconError("truncated .spz (no header)", path)
    magic, version, n, degree, bits, _flags, _ = HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise ReconError(f"not a .spz (magic {magic:#x})", path)
    if version not in (2, 3):
        raise ReconError(f"spz version {version} is not supported (2 and 3 are)", path)
    if degree > 3:
        raise ReconError(f"spz SH degree {degree}: recon renders degree ≤ 3", path)
    k_rest = num_sh_bases(degree) - 1
    sizes = [9 * n, n, 3 * n, 3 * n, (4 if version == 3 else 3) * n, 3 * k_rest * n]
    if len(raw) < HEADER.size + sum(sizes):  # extensions (flag 0x2) may follow: ignored
        raise ReconError(f"truncated .spz: {len(raw)} bytes for {n} splats", path)
    arrays, offset = [], HEADER.size
    for size in sizes:
        arrays.append(np.frombuffer(raw, dtype=np.uint8, count=size, offset=offset))
        offset += size
    pos, alpha, color, scale, rot, sh = arrays
    b = pos.reshape(n, 3, 3).astype(np.int32)
    fixed = b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16)
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)  # sign-extend 24 bits
    xyzw = _unpack_smallest_three(rot.view("<u4")) if version == 3 else _unpack_first_three(rot.reshape(n, 3))
    xyzw[:, :3] *= _FLIP_Q_XYZ
    a = np.clip(alpha.astype(np.float32) / 255.0, 0.5 / 255, 1 - 0.5 / 255)  # 0 and 255 → finite logits
    shN = (sh.reshape(n, k_rest, 3).astype(np.float32) - 128.0) / 128.0 * _FLIP_SH[:k_rest, None]
    return Gaussians(
        means=torch.from_numpy((fixed.astype(np.float64) / (1 << bits)).astype(np.float32) * _FLIP_P),
        quats=torch.from_numpy(np.concatenate([xyzw[:, 3:], xyzw[:, :3]], axis=1).astype(np.float32)),
        scales=torch.from_numpy(scale.reshape(n, 3).astype(np.float32) / 16.0 - 10.0),
        opacities=torch.from_numpy(np.log(a / (1 - a)).astype(np.float32)),
        sh0=torch.from_numpy((color.reshape(n, 1, 3).astype(np.float32) / 255.0 - 0.5) / COLOR_SCALE),
        shN=torch.from_numpy(shN.astype(np.float32)),
    )


def _fractional_bits(means: np.ndarray) -> int:
    """12 fractional bits (Niantic's choice, 1/4096 units) unless the splat reaches beyond ±2048:
    then fewer, so that every position fits in 24 bits. Readers take the count from the header."""
    reach = float(np.abs(means).max()) if len(means) else 0.0
    bits = 12
    while bits > 0 and reach * (1 << bits) >= (1 << 23) - 1:
        bits -= 1
    if reach * (1 << bits) >= (1 << 23) - 1:
        raise ReconError(f"a splat position ({reach:.3g}) is too far out for .spz's 24-bit positions")
    return bits


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _pack_first_three(xyzw: np.ndarray) -> np.ndarray:
    """v2: [N,4] unit xyzw → [N,3] u8 of xyz with w made non-negative."""
    sign = np.where(xyzw[:, 3:] < 0, -1.0, 1.0)
    return _to_u8(xyzw[:, :3] * sign * 127.5 + 127.5)


def _unpack_first_three(b: np.ndarray) -> np.ndarray:
    xyz = b.astype(np.float32) / 127.5 - 1.0
    w = np.sqrt(np.clip(1.0 - (xyz * xyz).sum(axis=1, keepdims=True), 0.0, None))
    return np.concatenate([xyz, w], axis=1)


def _pack_smallest_three(xyzw: np.ndarray) -> np.ndarray:
    """v3: [N,4] unit xyzw → [N] u32 (2-bit index of the largest, 3 × (sign, 9-bit magnitude))."""
    largest = np.argmax(np.abs(xyzw), axis=1)
    negate = np.take_along_axis(xyzw, largest[:, None], axis=1)[:, 0] < 0
    word = largest.astype(np.uint32)
    for i in range(4):
        v = xyzw[:, i]
        sign = ((v < 0) ^ negate).astype(np.uint32)
        mag = np.minimum(np.floor(511.0 * np.abs(v) / SQRT1_2 + 0.5), 511).astype(np.uint32)
        packed = (word << np.uint32(10)) | (sign << np.uint32(9)) | mag
        word = np.where(largest == i, word, packed)  # the largest itself is not stored
    return word.astype("<u4")


def _unpack_smallest_three(word: np.ndarray) -> np.ndarray:
    word = word.astype(np.uint32)
    largest = (word >> np.uint32(30)).astype(np.int64)
    out = np.zeros((len(word), 4), dtype=np.float32)
    rest = word.copy()
    for i in range(3, -1, -1):  # the last component stored sits in the lowest bits
        here = largest != i
        mag = (rest & np.uint32(511)).astype(np.float32) / 511.0 * SQRT1_2
        neg = (rest >> np.uint32(9)) & np.uint32(1)
        out[here, i] = np.where(neg[here] == 1, -mag[here], mag[here])
        rest = np.where(here, rest >> np.uint32(10), rest)
    sq = np.clip(1.0 - (out * out).sum(axis=1), 0.0, None)
    out[np.arange(len(word)), largest] = np.sqrt(sq)
    return out


def _quantize_sh(shN: np.ndarray) -> np.ndarray:
    """[N,K-1,3] → u8 in the file's order (coefficient-major, channel fastest), degree 1 in buckets
    of 8 and higher degrees of 16 (zero stays exact: bucket centres are multiples of the bucket)."""
    q = np.round(shN * 128.0) + 128.0
    bucket = np.full(shN.shape[1], 16.0)
    bucket[:3] = 8.0
    q = np.floor((q + bucket[None, :, None] / 2) / bucket[None, :, None]) * bucket[None, :, None]
    return np.clip(q, 0, 255).astype(np.uint8)
