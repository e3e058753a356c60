"""SuperSplat's compressed .ply (the playcanvas splat-transform layout): 16 bytes a splat plus SH bytes.

  element chunk  ceil(N/256) × 18 float: min_x min_y min_z max_x max_y max_z, min/max_scale_x..z
                 (log scales, clamped to ±20), min_r min_g min_b max_r max_g max_b (colour =
                 SH_C0·f_dc + 0.5); readers also accept the older 12-float chunks without colour
  element vertex N × 4 uint: packed_position and packed_scale: 11-10-11 bit unorms (x in the
                 top 11 bits) within the chunk's range; packed_rotation: the index of the
                 largest |component| of the unit quaternion (rot_0..3 order, made positive) in the
                 top 2 bits, then the other three, first in the highest bits, as 10-bit unorms of
                 v·√½ + ½; packed_color: r g b a 8-bit unorms (colour within the chunk's range,
                 a = sigmoid(opacity)), r in the top byte
  element sh     optional, N × (K−1)·3 uchar f_rest_i in the .ply's order: trunc((v/8 + ½)·256),
                 read back as (b + ½)/256 (0 and 255 as the ends), so SH within ±4

Splat i is in chunk i // 256. The writer sorts the splats in Morton order first, so each
chunk's box is small and the quantisation fine; a round trip therefore reorders the splats
(`morton_order` gives the order).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from recon.cache import atomic_write_bytes
from recon.errors import ReconError
from recon.gaussians import SH_C0, Gaussians, sh_degree_from_bases

CHUNK = 256
CHUNK_PROPS = ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
               "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z",
               "min_r", "min_g", "min_b", "max_r", "max_g", "max_b")  # fmt: skip
VERTEX_PROPS = ("packed_position", "packed_rotation", "packed_scale", "packed_color")
SQRT1_2 = float(np.sqrt(0.5))


def morton_order(means: np.ndarray) -> np.ndarray:
    """[N] indices sorting points [N,3] along a Z-order curve (10 bits an axis over their box)."""
    lo, hi = means.min(axis=0), means.max(axis=0)
    cells = ((means - lo) / np.maximum(hi - lo, 1e-12) * 1023).clip(0, 1023).astype(np.uint64)
    code = np.zeros(len(means), dtype=np.uint64)
    for bit in range(10):
        for axis in range(3):
            code |= ((cells[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit + (2 - axis))
    return np.argsort(code, kind="stable")


def compressed_ply_bytes(g: Gaussians, with_sh: bool = True) -> bytes:
    """The compressed .ply of `g` (in Morton order); SH bytes when `with_sh` and the degree is > 0."""
    g = g.detach()
    n = len(g)
    if n == 0:
        raise ReconError("an empty splat cannot be written as a compressed .ply")
    g = g.select(torch.from_numpy(morton_order(g.means.numpy())))
    n_chunks = -(-n // CHUNK)
    pad = n_chunks * CHUNK - n  # the last chunk's range is taken over its own splats only

    def chunked(x: np.ndarray) -> np.ndarray:  # [N,D] → [C,256,D], padded with the last row
        return np.concatenate([x, np.repeat(x[-1:], pad, axis=0)]).reshape(n_chunks, CHUNK, -1)

    pos = chunked(g.means.numpy())
    scl = chunked(g.scales.numpy())
    rgb = chunked(g.sh0[:, 0].numpy() * SH_C0 + 0.5)
    ranges = [(pos.min(1), pos.max(1)), (np.clip(scl.min(1), -20, 20), np.clip(scl.max(1), -20, 20)),
              (rgb.min(1), rgb.max(1))]
    chunk_data = np.concatenate([np.concatenate(r, axis=1) for r in ranges], axis=1).astype("<f4")
    alpha = torch.sigmoid(g.opacities).numpy()
    packed = np.empty((n, 4), dtype="<u4")
    packed[:, 0] = _pack_111011(_unit(pos, *ranges[0]))[:n]
    packed[:, 1] = _pack_rotation(torch.nn.functional.normalize(g.quats, dim=-1).numpy())
    packed[:, 2] = _pack_111011(_unit(scl, *ranges[1]))[:n]
    c = _unorm(_unit(rgb, *ranges[2]).reshape(-1, 3)[:n], 8)
    packed[:, 3] = (c[:, 0] << 24) | (c[:, 1] << 16) | (c[:, 2] << 8) | _unorm(alpha, 8)
    k_rest = g.shN.shape[1] if with_sh else 0
    lines = ["ply", "format binary_little_endian 1.0", "comment written by recon",
             f"element chunk {n_chunks}", *[f"property float {p}" for p in CHUNK_PROPS],
             f"element vertex {n}", *[f"property uint {p}" for p in VERTEX_PROPS]]
    body = [chunk_data.tobytes(), packed.tobytes()]
    if k_rest:
        lines += [f"element sh {n}", *[f"property uchar f_rest_{i}" for i in range(3 * k_rest)]]
        f_rest = g.shN.permute(0, 2, 1).reshape(n, -1).numpy()  # channel-major, as the .ply
        body.append(np.clip(np.trunc((f_rest / 8 + 0.5) * 256), 0, 255).astype(np.uint8).tobytes())
    header = ("\n".join(lines + ["end_header"]) + "\n").encode("ascii")
    return header + b"".join(body)


def write_compressed_ply(path: str | Path, g: Gaussians, with_sh: bool = True) -> None:
    atomic_write_bytes(Path(path), compressed_ply_bytes(g, with_sh))


def read_compressed_ply(path: str | Path) -> Gaussians:
    """Read a compressed .ply (18- or 12-float chunks, with or without SH) into a splat."""
    from plyfile import PlyData

    path = Path(path)
    try:
        ply = PlyData.read(str(path))
    except Exception as e:  # plyfile raises many types for a broken file
        raise ReconError(f"not a readable .ply ({e})", path) from e
    chunk, vertex = _element(ply, "chunk", path), _element(ply, "vertex", path)
    names = set(chunk.data.dtype.names)
    if not set(CHUNK_PROPS[:12]) <= names or not set(VERTEX_PROPS) <= set(vertex.data.dtype.names):
        raise ReconError("not a compressed splat .ply: chunk or vertex properties missing", path)
    n = len(vertex.data)
    if len(chunk.data) != -(-n // CHUNK):
        raise ReconError(f"{len(chunk.data)} chunks for {n} splats (expected one per {CHUNK})", path)
    ci = np.arange(n) // CHUNK

    def lerp(prefix_lo: str, prefix_hi: str, axes: tuple[str, ...], t: np.ndarray) -> np.ndarray:
        lo = np.stack([np.asarray(chunk[prefix_lo + a], np.float32) for a in axes], 1)[ci]
        hi = np.stack([np.asarray(chunk[prefix_hi + a], np.float32) for a in axes], 1)[ci]
        return lo * (1 - t) + hi * t

    word = {p: np.asarray(vertex[p], dtype=np.uint32) for p in VERTEX_PROPS}
    col = np.stack([(word["packed_color"] >> np.uint32(s)) & np.uint32(255) for s in (24, 16, 8, 0)], 1)
    col = col.astype(np.float32) / 255.0
    rgb = lerp("min_", "max_", ("r", "g", "b"), col[:, :3]) if "min_r" in names else col[:, :3]
    a = np.clip(col[:, 3], 0.5 / 255, 1 - 0.5 / 255)  # 0 and 255 → finite logits
    return Gaussians(
        means=torch.from_numpy(lerp("min_", "max_", ("x", "y", "z"), _unpack_111011(word["packed_position"]))),
        quats=torch.from_numpy(_unpack_rotation(word["packed_rotation"])),
        scales=torch.from_numpy(lerp("min_scale_", "max_scale_", ("x", "y", "z"),
                                     _unpack_111011(word["packed_scale"]))),
        opacities=torch.from_numpy(np.log(a / (1 - a)).astype(np.float32)),
        sh0=torch.from_numpy(((rgb - 0.5) / SH_C0).astype(np.float32)[:, None, :]),
        shN=_read_sh(ply, n, path),
    )


def _element(ply, name: str, path: Path):
    try:
        return ply[name]
    except KeyError:
        raise ReconError(f"not a compressed splat .ply: no '{name}' element", path) from None


def _read_sh(ply, n: int, path: Path) -> torch.Tensor:
    if "sh" not in [e.name for e in ply.elements]:
        return torch.zeros(n, 0, 3)
    sh = ply["sh"]
    keys = sorted(sh.data.dtype.names, key=lambda k: int(k.rsplit("_", 1)[-1]))
    if len(sh.data) != n or len(keys) % 3:
        raise ReconError(f"the sh element has {len(sh.data)} rows of {len(keys)} for {n} splats", path)
    k_rest = len(keys) // 3
    sh_degree_from_bases(k_rest + 1)  # validates the count
    b = np.stack([np.asarray(sh[k], dtype=np.float32) for k in keys], axis=1)
    t = np.where(b == 0, 0.0, np.where(b == 255, 1.0, (b + 0.5) / 256))
    v = ((t - 0.5) * 8).astype(np.float32)
    return torch.from_numpy(v.reshape(n, 3, k_rest).transpose(0, 2, 1).copy())


def _unit(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """x [C,256,D] → [0,1] within its chunk's [lo, hi] [C,D] (0 where the range is empty)."""
    span = (hi - lo)[:, None, :]
    t = np.where(span < 1e-5, 0.0, (x - lo[:, None, :]) / np.where(span < 1e-5, 1.0, span))
    return np.clip(t, 0.0, 1.0)


def _unorm(t: np.ndarray, bits: int) -> np.ndarray:
    top = (1 << bits) - 1
    return np.clip(np.floor(t * top + 0.5), 0, top).astype(np.uint32)


def _pack_111011(t: np.ndarray) -> np.ndarray:
    t = t.reshape(-1, 3)
    return (_unorm(t[:, 0], 11) << 21) | (_unorm(t[:, 1], 10) << 11) | _unorm(t[:, 2], 11)


def _unpack_111011(w: np.ndarray) -> np.ndarray:
    parts = [((w >> np.uint32(21)) & np.uint32(2047)) / 2047.0, ((w >> np.uint32(11)) & np.uint32(1023)) / 1023.0,
             (w & np.uint32(2047)) / 2047.0]
    return np.stack(parts, axis=1).astype(np.float32)


def _pack_rotation(q: np.ndarray) -> np.ndarray:
    """[N,4] unit quaternions → [N] u32: 2-bit index of the largest, 3 × 10-bit unorm of v·√½ + ½."""
    largest = np.argmax(np.abs(q), axis=1)
    q = q * np.where(np.take_along_axis(q, largest[:, None], 1) < 0, -1.0, 1.0)
    word = largest.astype(np.uint32)
    for i in range(4):
        packed = (word << np.uint32(10)) | _unorm(q[:, i] * SQRT1_2 + 0.5, 10)
        word = np.where(largest == i, word, packed)
    return word


def _unpack_rotation(w: np.ndarray) -> np.ndarray:
    small = [(((w >> np.uint32(s)) & np.uint32(1023)) / 1023.0 - 0.5) / SQRT1_2 for s in (20, 10, 0)]
    small = np.stack(small, axis=1)
    largest = (w >> np.uint32(30)).astype(np.int64)
    m = np.sqrt(np.clip(1.0 - (small * small).sum(axis=1), 0.0, None))
    out = np.empty((len(w), 4), dtype=np.float32)
    for which in range(4):
        sel = largest == which
        others = [i for i in range(4) if i != which]
        out[np.ix_(sel, others)] = small[sel]
        out[sel, which] = m[sel]
    return out
