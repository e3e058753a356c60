"""A triangle mesh with vertex colours as binary glTF 2.0 (.glb), which game engines, Blender and
web viewers import. Written here rather than through open3d, whose .glb writer (0.20) emits index
accessors that point past the vertex buffer."""

from __future__ import annotations

import json
import struct

import numpy as np

ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
FLOAT, UNSIGNED_BYTE, UNSIGNED_INT = 5126, 5121, 5125


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """glTF vertex colours are linear; renders and .ply/.obj colours are sRGB-encoded."""
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def glb_bytes(vertices: np.ndarray, triangles: np.ndarray, colors: np.ndarray | None = None,
              normals: np.ndarray | None = None) -> bytes:
    """vertices [V,3], triangles [F,3] (indices), colors [V,3] sRGB in [0,1], normals [V,3] → .glb."""
    vertices = np.ascontiguousarray(vertices, dtype="<f4")
    blobs: list[bytes] = []
    views: list[dict] = []
    accessors: list[dict] = []

    def add(data: np.ndarray, target: int, accessor: dict) -> int:
        offset = sum(len(b) for b in blobs)
        raw = data.tobytes()
        blobs.append(raw + b"\0" * (-len(raw) % 4))  # every view starts 4-byte aligned
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(raw), "target": target})
        accessors.append({"bufferView": len(views) - 1, "count": int(len(data)), **accessor})
        return len(accessors) - 1

    attributes = {"POSITION": add(vertices, ARRAY_BUFFER, {
        "componentType": FLOAT, "type": "VEC3",
        "min": vertices.min(axis=0).tolist(), "max": vertices.max(axis=0).tolist()})}
    if normals is not None:
        attributes["NORMAL"] = add(np.ascontiguousarray(normals, dtype="<f4"), ARRAY_BUFFER,
                                   {"componentType": FLOAT, "type": "VEC3"})
    if colors is not None:
        rgba = np.concatenate([srgb_to_linear(np.clip(colors, 0, 1)), np.ones((len(colors), 1))], axis=1)
        attributes["COLOR_0"] = add((rgba * 255 + 0.5).astype(np.uint8), ARRAY_BUFFER,
                                    {"componentType": UNSIGNED_BYTE, "normalized": True, "type": "VEC4"})
    indices = add(np.ascontiguousarray(triangles, dtype="<u4").reshape(-1), ELEMENT_ARRAY_BUFFER,
                  {"componentType": UNSIGNED_INT, "type": "SCALAR"})
    binary = b"".join(blobs)
    doc = {
        "asset": {"version": "2.0", "generator": "recon"},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": attributes, "indices": indices, "mode": 4}]}],
        "buffers": [{"byteLength": len(binary)}], "bufferViews": views, "accessors": accessors,
    }  # fmt: skip
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return b"".join([struct.pack("<4sII", b"glTF", 2, total), struct.pack("<I4s", len(text), b"JSON"), text,
                     struct.pack("<I4s", len(binary), b"BIN\0"), binary])
