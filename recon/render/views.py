"""A splat seen from a camera, rendered without gradients and returned as numpy: the one place
recon draws a finished splat (eval's test views, the export stage's renders/, the mesh and video
exports, the stylize stage, the viewer's exact view). The Trainer renders its own,
with gradients (recon/train/splat.py). `SplatRenderer` moves the splat to the device once for many
cameras; `render_view` and `render_rgbd` draw one camera.

Depth comes two ways. The expected depth (`render_expected`, `render_rgbd`) is the renderer's
blended Σ w·z of the Gaussians' centres over alpha. The ray depth (`render(depth=True)`, for the
mesh) is each Gaussian's depth *along the pixel's ray*, blended with the render's weights: the
centre depth is biased toward the camera on slanted surfaces, as the nearest of the overlapping
Gaussians win the compositing and their centres sit nearer than the surface where the ray meets
it (on a unit sphere of 3000 flat discs, σ = 0.05, the centre-depth surface came out 1.1-2.5% too
large, the ray depth 0.0-0.6%). Each Gaussian contributes the depth of its densest point on the
ray, z(p) = rᵀΣ⁻¹X / rᵀΣ⁻¹r for the ray r through pixel p (the idea of RaDe-GS), linearised about
its projected centre μ: z(p) ≈ z + g·(p − μ) with g = −z²·JᵀΣ⁻¹X / XᵀΣ⁻¹X (J: d ray / d pixel).
That is linear in the per-Gaussian features (z − g·μ, g), so one rasterization of them gives
Σ w·z(p) exactly. For a flat Gaussian it is the depth where the ray meets its plane.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recon.errors import ReconError
from recon.gaussians import Gaussians
from recon.render import rasterize
from recon.render.projection import quat_to_rotmat
from recon.render.sh import sh_to_color
from recon.scene import Camera

MAX_SLOPE = float(np.tan(np.radians(85.0)))  # grazing Gaussians: cap the depth slope
Background = tuple[float, float, float]


def resolve_device(device: str) -> str:
    """auto → cuda when there is a CUDA GPU, else cpu; asking for cuda without one is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ReconError("--device cuda: no CUDA GPU is available (use --device cpu)")
    if device not in ("cpu", "cuda"):
        raise ReconError(f"unknown device '{device}' (auto, cpu or cuda)")
    return device


@dataclass
class RGBD:
    """One render: rgb [H,W,3] in [0,1] over the background (black unless one is given, so then
    premultiplied by alpha), depth [H,W] (the ray or the expected depth where alpha > 0, else 0;
    None unless asked for) and alpha [H,W]."""

    rgb: np.ndarray
    depth: np.ndarray | None
    alpha: np.ndarray


class SplatRenderer:
    """Renders one splat from many cameras without copying it to the device each time."""

    def __init__(self, g: Gaussians, device: str = "auto", backend: str = "auto") -> None:
        self.device = resolve_device(device)
        self.backend = backend
        means, quats, scales, opacities = (t.detach().float().to(self.device) for t in g.activated())
        self.means, self.quats, self.scales, self.opacities = means, quats, scales, opacities
        self.colors = g.colors_sh.detach().float().to(self.device)
        self.sh_degree = g.sh_degree
        self._precision: torch.Tensor | None = None

    @property
    def precision(self) -> torch.Tensor:
        """Σ⁻¹ [N,3,3] of every Gaussian, made on the first ray-depth render (a colour render
        does not need it)."""
        if self._precision is None:
            R = quat_to_rotmat(self.quats)
            self._precision = R @ torch.diag_embed(self.scales.clamp_min(1e-12) ** -2) @ R.transpose(1, 2)
        return self._precision

    def _matrices(self, cam: Camera) -> tuple[torch.Tensor, torch.Tensor]:
        """(world-to-camera [4,4], K [3,3]) of `cam` on the device."""
        return (torch.tensor(cam.world_to_cam, dtype=torch.float32, device=self.device),
                torch.tensor(cam.K, dtype=torch.float32, device=self.device))

    def render(self, cam: Camera, depth: bool = False) -> RGBD:
        """The splat seen by `cam` over black; with depth, the ray depth as well (see the module's
        docstring)."""
        viewmat, K = self._matrices(cam)
        with torch.no_grad():
            if not depth:
                out, alpha, _ = rasterize(self.means, self.quats, self.scales, self.opacities, self.colors,
                                          viewmat[None], K[None], cam.width, cam.height, sh_degree=self.sh_degree,
                                          backend=self.backend)
            else:
                feats = torch.cat([self._view_colors(viewmat), self._depth_features(viewmat, K)], dim=1)
                out, alpha, _ = rasterize(self.means, self.quats, self.scales, self.opacities, feats[None],
                                          viewmat[None], K[None], cam.width, cam.height, backend=self.backend)
        out, a = out[0].cpu().numpy(), alpha[0, ..., 0].cpu().numpy()
        z = None
        if depth:
            u, v = np.meshgrid(np.arange(cam.width) + 0.5, np.arange(cam.height) + 0.5)
            blended = out[..., 3] + out[..., 4] * u + out[..., 5] * v
            z = np.where(a > 1e-6, blended / np.maximum(a, 1e-6), 0.0).astype(np.float32)
        return RGBD(rgb=np.clip(out[..., :3], 0.0, 1.0), depth=z, alpha=a)

    def render_expected(self, cam: Camera, background: Background | None = None) -> RGBD:
        """The splat seen by `cam` over `background` (black when None), with the expected depth
        Σ w·z / α of the Gaussians' centres (0 where α ≤ 1e-4)."""
        viewmat, K = self._matrices(cam)
        bg = None if background is None else torch.tensor([background], dtype=torch.float32, device=self.device)
        with torch.no_grad():
            out, alpha, _ = rasterize(self.means, self.quats, self.scales, self.opacities, self.colors,
                                      viewmat[None], K[None], cam.width, cam.height, sh_degree=self.sh_degree,
                                      render_mode="RGB+D", backend=self.backend, backgrounds=bg)
        a = alpha[0, ..., 0].cpu().numpy().astype(np.float32)
        depth = np.where(a > 1e-4, out[0, ..., 3].cpu().numpy() / np.maximum(a, 1e-4), 0.0).astype(np.float32)
        rgb = out[0, ..., :3].clamp(0, 1).cpu().numpy().astype(np.float32)
        return RGBD(rgb, depth, a)

    def _view_colors(self, viewmat: torch.Tensor) -> torch.Tensor:
        """[N,3] colours seen from the camera (the rasterizer's own SH evaluation, done here so the
        depth features can ride in the same pass)."""
        campos = torch.linalg.inv(viewmat)[:3, 3]
        return sh_to_color(self.sh_degree, self.means - campos, self.colors)

    def _depth_features(self, viewmat: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
        """[N,3] (z − g·μ, g_u, g_v): blended and evaluated at a pixel p as f0 + g·p, the ray depth."""
        R, t = viewmat[:3, :3], viewmat[:3, 3]
        X = self.means @ R.T + t  # camera-space centres [N,3]
        A = R @ self.precision @ R.T  # camera-space Σ⁻¹ [N,3,3]
        AX = (A @ X[:, :, None])[..., 0]
        q = (X * AX).sum(-1).clamp_min(1e-20)
        z = X[:, 2]
        fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
        g = -(z * z / q)[:, None] * torch.stack([AX[:, 0] / fx, AX[:, 1] / fy], dim=1)
        limit = (z.abs() * MAX_SLOPE)[:, None] / torch.stack([fx, fy])
        g = torch.maximum(torch.minimum(g, limit), -limit)
        zs = torch.where(z > 1e-6, z, torch.ones_like(z))  # Gaussians behind the camera are culled anyway
        mu = torch.stack([fx * X[:, 0] / zs + cx, fy * X[:, 1] / zs + cy], dim=1)
        feats = torch.cat([(z - (g * mu).sum(-1))[:, None], g], dim=1)
        return torch.where((z > 1e-6)[:, None], feats, torch.zeros_like(feats))


def render_view(g: Gaussians, cam: Camera, backend: str = "auto", device: str = "cpu") -> np.ndarray:
    """[H,W,3] float32 render of the splat seen by `cam`, over black."""
    return SplatRenderer(g, device, backend).render(cam).rgb


def render_rgbd(g: Gaussians, cam: Camera, device: str = "cpu", background: Background = (0, 0, 0),
                backend: str = "auto") -> RGBD:
    """One camera's colour over `background`, alpha and expected depth (the stylize stage's renders)."""
    return SplatRenderer(g, device, backend).render_expected(cam, background)


def shrink(cam: Camera, max_side: int, min_side: int = 8) -> Camera:
    """`cam` scaled down (aspect kept) so that its longer side is at most max_side; as it is if
    already small enough."""
    s = max_side / max(cam.width, cam.height)
    if s >= 1:
        return cam
    return cam.resized(max(min_side, round(cam.width * s)), max(min_side, round(cam.height * s)))
