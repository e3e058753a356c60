"""Incremental SfM (pycolmap) tuned for 3–9 photos.

COLMAP's defaults assume hundreds of images: an initial pair needs 100 inliers and 16° of
triangulation angle, a new image 30 inliers, and points seen by only two views are not
triangulated. With a handful of photos those rules leave views out, so this module relaxes them,
shares one camera among photos that agree on size and focal, and retries with other initial pairs
(and looser thresholds) until every view registers or the options run out. The best model — most
views registered, then the lowest reprojection error — wins. A model that registers everything only
under the looser thresholds, or with few observations per view, is "weak": with 3 views and ~100
matches per pair such a model can be degrees off (the focal length is barely constrained), so a
second pass re-extracts affine-covariant SIFT (several times the matches) and keeps the better.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon.poses.database import (
    KeypointMerger, drop_still_matches, extract_sift, group_cameras, image_key, new_database, verified_pairs,
    write_sift,
)
from recon.scene import View

Log = Callable[[str], None]
# A pair matcher: (view i, view j) → (xy_i [M,2], xy_j [M,2]) in each view's pixels.
PairMatcher = Callable[[View, View], tuple[np.ndarray, np.ndarray]]


@dataclass
class SfmOptions:
    """Knobs of the sparse-view SfM (the poses stage config maps onto these)."""

    feature_max_size: int = 1600
    max_features: int = 8192
    features: str = "auto"  # "auto" | "sift" | "affine-sift" (see run_sfm)
    min_observations: int = 200  # fewer on any view makes a model weak (see _strong)
    guided_matching: bool = False  # re-match along the epipolar geometry: more inliers, but slow on CPU
    camera_model: str = "SIMPLE_RADIAL"
    share_cameras: bool = True
    min_inliers: int = 12
    max_attempts: int = 6
    seed: int = 0


@dataclass
class SfmResult:
    """What SfM recovered, keyed by view name. Views that did not register are absent from poses."""

    world_to_cam: dict[str, np.ndarray]
    K: dict[str, np.ndarray]
    distortion: dict[str, dict]
    points: np.ndarray  # [P,3]
    point_colors: np.ndarray  # [P,3] in [0,1]
    registration: dict[str, dict]  # name → {"registered", "reproj_error", "observations"}
    method: str = ""  # which features made it: "sift", "affine-sift" or "learned"
    best_pair_inliers: int = 0  # verified matches of the best-matched pair of photos
    strong: bool = False  # every view registered under the strict thresholds (see _strong)

    @property
    def registered(self) -> list[str]:
        return [n for n, r in self.registration.items() if r["registered"]]


def _mapper_options(opts: SfmOptions, level: int, init_pair: tuple[int, int] | None):
    """Incremental-mapper options; `level` 0 is relaxed, 1 is looser still (last resort)."""
    import pycolmap

    po = pycolmap.IncrementalPipelineOptions()
    po.min_num_matches = opts.min_inliers
    po.min_model_size = 2
    po.multiple_models = True
    po.extract_colors = False  # colours come from the in-memory views (no image files needed)
    po.random_seed = opts.seed
    po.num_threads = -1  # all cores
    po.ba_refine_principal_point = False
    m = po.mapper
    m.random_seed = opts.seed
    m.init_min_num_inliers = [50, 20][level]
    m.init_min_tri_angle = [4.0, 1.5][level]
    m.init_max_forward_motion = 0.99
    m.abs_pose_min_num_inliers = [15, 8][level]
    m.abs_pose_min_inlier_ratio = [0.15, 0.08][level]
    m.abs_pose_max_error = [12.0, 16.0][level]
    m.filter_min_tri_angle = [1.0, 0.5][level]
    m.max_reg_trials = 5
    m.init_max_reg_trials = 4
    # With 3–4 views most points are seen twice; COLMAP's default skips such tracks.
    po.triangulation.ignore_two_view_tracks = False
    po.triangulation.min_angle = [1.0, 0.5][level]
    if init_pair is not None:
        po.init_image_id1, po.init_image_id2 = init_pair
    return po


def _verification_options(opts: SfmOptions):
    import pycolmap

    tv = pycolmap.TwoViewGeometryOptions()
    tv.min_num_inliers = opts.min_inliers
    tv.ransac.max_num_trials = 20000
    tv.ransac.random_seed = opts.seed
    tv.detect_watermark = False  # a sparse capture has no watermarks, but static borders look like them
    return tv


def _match(db_path: Path, views: Sequence[View], ids: list[int], opts: SfmOptions, features: str,
           matcher: PairMatcher | None, workdir: Path, log: Log) -> None:
    """Fill the database with verified matches for all pairs (exhaustive: there are few views)."""
    import pycolmap

    tv = _verification_options(opts)
    if matcher is None:
        t = time.perf_counter()
        feats = [extract_sift(v.image, opts.feature_max_size, opts.max_features, features == "affine-sift") for v in views]
        write_sift(db_path, ids, feats)
        log(f"{features} features: {', '.join(str(len(k)) for k, _ in feats)} ({time.perf_counter() - t:.1f} s)")
        mo = pycolmap.FeatureMatchingOptions()
        mo.num_threads = -1
        mo.guided_matching = opts.guided_matching
        mo.sift.max_ratio = 0.85
        t = time.perf_counter()
        pycolmap.match_exhaustive(str(db_path), matching_options=mo, verification_options=tv,
                                  device=pycolmap.Device.cpu)
        log(f"exhaustive matching ({time.perf_counter() - t:.1f} s)")
    else:
        merger = KeypointMerger(len(views))
        for i in range(len(views)):
            for j in range(i + 1, len(views)):
                xy_i, xy_j = matcher(views[i], views[j])
                merger.add(i, j, xy_i, xy_j)
        merger.write(db_path, ids)
        _verify(db_path, views, ids, list(merger.matches), tv, workdir)
    _drop_still(db_path, views, ids, tv, workdir, log)


def _verify(db_path: Path, views: Sequence[View], ids: list[int], pairs: list[tuple[int, int]], tv,
            workdir: Path) -> None:
    """Geometric verification of the raw matches of `pairs` (indices into views)."""
    import pycolmap

    listing = workdir / "pairs.txt"
    listing.write_text("".join(f"{image_key(views[i])} {image_key(views[j])}\n" for i, j in pairs))
    pycolmap.verify_matches(str(db_path), str(listing), options=tv)


def _drop_still(db_path: Path, views: Sequence[View], ids: list[int], tv, workdir: Path, log: Log) -> None:
    """A still background (the object turned, the camera stood): match only what moved."""
    still = drop_still_matches(db_path)
    if not still:
        return
    index = {iid: k for k, iid in enumerate(ids)}
    log(f"{len(still)} of {len(views) * (len(views) - 1) // 2} pairs match mostly at the same pixels "
        f"({sum(s for *_, s, _ in still)} of {sum(n for *_, n in still)} verified matches): a camera that did not "
        "move, with the object turning in front of a still background; matching again on what moved")
    _verify(db_path, views, ids, [(index[a], index[b]) for a, b, *_ in still], tv, workdir)


def _score(rec) -> tuple[int, float]:
    """Higher is better: registered images, then low reprojection error."""
    return rec.num_reg_images(), -rec.compute_mean_reprojection_error()


def _attempts(pairs: list[tuple[int, int, int]], opts: SfmOptions) -> list[tuple[int, tuple[int, int] | None]]:
    """(looseness level, initial pair) to try, in order: COLMAP's own choice first, then the
    strongest pairs by inlier count, then the same at the looser level."""
    strongest = [(a, b) for a, b, _ in pairs[: max(1, opts.max_attempts // 2 - 1)]]
    plan: list[tuple[int, tuple[int, int] | None]] = [(0, None)] + [(0, p) for p in strongest]
    plan += [(1, None)] + [(1, p) for p in strongest]
    return plan[: opts.max_attempts]


def _strong(result: SfmResult, level: int, opts: SfmOptions) -> bool:
    """A model to trust without trying harder: every view registered under the first (stricter)
    thresholds, each with enough observations. With 3 views and ~100 matches per pair a model can
    register everything and still be several degrees off (the focal length is barely constrained)."""
    regs = result.registration.values()
    return level == 0 and all(r["registered"] and r["observations"] >= opts.min_observations for r in regs)


def _reconstruct(views: Sequence[View], focal_known: dict[str, bool], opts: SfmOptions, features: str,
                 matcher: PairMatcher | None, work: Path, log: Log) -> tuple[SfmResult, int]:
    """One pass: database, matching, mapping attempts. Returns (best result, level that made it)."""
    db_path = work / "database.db"
    groups = group_cameras(views, focal_known, opts.share_cameras)
    ids = new_database(db_path, views, groups, opts.camera_model)
    _match(db_path, views, ids, opts, features, matcher, work, log)
    pairs = verified_pairs(db_path)
    log("verified pairs (image ids: inliers): " + (", ".join(f"{a}-{b}:{n}" for a, b, n in pairs[:20]) or "none"))
    best, best_level, tries, limit = None, 0, 0, None
    for level, init in _attempts(pairs, opts):
        out = work / f"{features}_try{tries}"
        out.mkdir(exist_ok=True)
        t = time.perf_counter()
        recs = _map(db_path, work, out, _mapper_options(opts, level, init), limit)
        tries += 1
        seconds = time.perf_counter() - t
        limit = limit or max(TRY_MIN_S, TRY_TIMES * seconds)
        if recs is None:
            log(f"{features} try {tries} (level {level}, initial pair {init or 'auto'}): stopped at its time limit "
                f"({seconds:.0f} s)")
            continue
        rec = max(recs.values(), key=_score, default=None)
        got = rec.num_reg_images() if rec is not None else 0
        log(f"{features} try {tries} (level {level}, initial pair {init or 'auto'}): {got}/{len(views)} registered"
            f" ({seconds:.1f} s)")
        if rec is not None and (best is None or _score(rec) > _score(best)):
            best, best_level = rec, level
        if got == len(views):
            break
    result = _to_result(best, views, ids, opts)
    result.best_pair_inliers = pairs[0][2] if pairs else 0
    return result, best_level


TRY_MIN_S, TRY_TIMES = 20.0, 5.0
"""A mapping try after the first stops after this many seconds, or this many times the first try's
time if longer: a forced initial pair can send COLMAP's mapper into minutes of bundle adjustment
(the squirrel's 8 photos, XFeat's matches: 349 s for the try after a 4 s one, both 6/8)."""


def _map(db_path: Path, work: Path, out: Path, options, limit: float | None) -> dict | None:
    """COLMAP's incremental mapping, cancelled after `limit` seconds (None: no limit); None if it was."""
    import threading

    import pycolmap

    token = pycolmap.CancellationToken()
    timer = threading.Timer(limit, token.cancel) if limit else None
    if timer:
        timer.daemon = True
        timer.start()
    before = pycolmap.logging.minloglevel
    # "Failed to create any sparse model" is an ERROR line of COLMAP's for a try that registers
    # nothing: our own log line says what each try registered.
    pycolmap.logging.minloglevel = int(pycolmap.logging.FATAL)
    try:
        return pycolmap.incremental_mapping(str(db_path), str(work), str(out), options, cancellation_token=token)
    except InterruptedError:
        return None
    finally:
        pycolmap.logging.minloglevel = before
        if timer:
            timer.cancel()


@contextmanager
def _quiet_colmap():
    """COLMAP's own INFO lines (hundreds a run: "Creating SIFT CPU feature extractor",
    "Registering image #9 ...") off the console; our log says what each step found and
    registered. Its warnings and errors still print."""
    import pycolmap

    before = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = int(pycolmap.logging.WARNING)
    try:
        yield
    finally:
        pycolmap.logging.minloglevel = before


def run_sfm(views: Sequence[View], focal_known: dict[str, bool], opts: SfmOptions, log: Log,
            matcher: PairMatcher | None = None, workdir: Path | None = None) -> SfmResult:
    """Estimate poses and intrinsics of `views` (their cameras only seed the intrinsics).

    With SIFT and `opts.features == "auto"`, a fast pass runs first; when its model is weak (see
    `_strong`) a second pass with affine-covariant SIFT (slower, several times more matches across
    wide baselines) runs, and the better of the two is kept.
    """
    if matcher is not None:
        passes = ["learned"]
    else:
        passes = {"auto": ["sift", "affine-sift"], "sift": ["sift"], "affine-sift": ["affine-sift"]}[opts.features]
    with tempfile.TemporaryDirectory(prefix="recon_sfm_") as tmp, _quiet_colmap():
        work = Path(workdir) if workdir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        n_cams = len(group_cameras(views, focal_known, opts.share_cameras))
        log(f"{len(views)} views, {n_cams} camera(s) ({opts.camera_model})")
        best: SfmResult | None = None
        for i, features in enumerate(passes):
            result, level = _reconstruct(views, focal_known, opts, features, matcher, work, log)
            result.method = features
            # A later pass exists to fix a weak model, so it wins ties.
            if best is not None:
                result.best_pair_inliers = max(result.best_pair_inliers, best.best_pair_inliers)
            result.strong = _strong(result, level, opts)
            if best is None or len(result.registered) >= len(best.registered):
                best = result
            if result.strong:
                break
            if i + 1 < len(passes):
                log(f"{features}: weak model ({len(result.registered)}/{len(views)} registered, level {level}, "
                    f"fewest observations {min((r['observations'] for r in result.registration.values()), default=0)})"
                    f"; trying {passes[i + 1]}")
        assert best is not None
        return best


def _to_result(rec, views: Sequence[View], ids: list[int], opts: SfmOptions) -> SfmResult:
    """Convert the best reconstruction (or none) into plain arrays keyed by view name."""
    by_id = {iid: v for iid, v in zip(ids, views)}
    registration = {v.name: {"registered": False, "reproj_error": None, "observations": 0} for v in views}
    w2c, Ks, dist = {}, {}, {}
    if rec is None:
        return SfmResult(w2c, Ks, dist, np.zeros((0, 3)), np.zeros((0, 3)), registration)
    errors: dict[int, list[float]] = {}
    points, colors = [], []
    for pid, p in rec.points3D.items():
        points.append(p.xyz)
        cols = []
        for el in p.track.elements:
            errors.setdefault(el.image_id, []).append(p.error)
            v = by_id[el.image_id]
            xy = rec.images[el.image_id].points2D[el.point2D_idx].xy
            col = min(max(int(xy[0]), 0), v.image.shape[1] - 1)
            row = min(max(int(xy[1]), 0), v.image.shape[0] - 1)
            cols.append(v.image[row, col, :3])
        colors.append(np.mean(cols, axis=0))
    for iid in rec.reg_image_ids():
        img, v = rec.images[iid], by_id[iid]
        m = np.eye(4)
        m[:3] = img.cam_from_world().matrix()
        w2c[v.name] = m
        cam = rec.cameras[img.camera_id]
        Ks[v.name] = cam.calibration_matrix()
        extra = list(cam.params[3:]) if opts.camera_model in ("SIMPLE_RADIAL", "RADIAL") else []
        if extra:
            dist[v.name] = {"model": opts.camera_model, "k1": float(extra[0]),
                            "k2": float(extra[1]) if len(extra) > 1 else 0.0, "p1": 0.0, "p2": 0.0}
        errs = errors.get(iid, [])
        registration[v.name] = {"registered": True, "reproj_error": float(np.mean(errs)) if errs else None,
                                "observations": len(errs)}
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    cols = np.asarray(colors, dtype=np.float32).reshape(-1, 3)
    return SfmResult(w2c, Ks, dist, pts, cols, registration)
