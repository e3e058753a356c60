"""Evaluation protocols: which scenes, which views train, which test, at what resolution, and
which metrics. Each protocol finds its scenes under a data root and prepares one (scene, view
count) for training and scoring. SpaRe / AIM 2024 lives in recon/eval/spare.py; recon/eval/registry.py finds a protocol by name.

DTU (RegNeRF / pixelNeRF split): train ids [25, 22, 28, 40, 44, 48, 0, 8, 13][:n]; test = all 49
  minus those 9 minus the excluded [3..7, 16..21, 36..39] (25 views); images 4× downsampled to
  400×300 (area filter). Metrics as RegNeRF's eval.py: PSNR over object pixels (psnr_masked), SSIM
  and LPIPS with the background set to white in both images (ssim_masked, lpips_masked), plus the
  full-image ones. The standard test scans are DTU_TEST_SCANS; any scan under a root is evaluated.
LLFF: every 8th image is a test view; n train views evenly spaced (rounded linspace) over the rest;
  images_8 (8× downsampled, 504×378). Full-image PSNR, SSIM, LPIPS.
NeRF-synthetic (Blender), the DietNeRF / FreeNeRF 8-view protocol: train on frames
  [26, 86, 2, 55, 75, 93, 16, 73] of transforms_train.json (DietNeRF's np.random.seed(0)
  permutation of the 100 training frames; fewer views = a prefix); test on every 8th frame of
  transforms_test.json (0, 8, ..., 192: 25 of 200); 2× downsampled (400×400), RGBA composited on
  white. Full-image PSNR, SSIM, LPIPS.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recon.errors import ReconError
from recon.eval.metrics import Lpips, masked_psnr, on_background, psnr, ssim
from recon.scene import Camera, Scene, View

DTU_TRAIN = [25, 22, 28, 40, 44, 48, 0, 8, 13]
DTU_EXCLUDED = [3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 36, 37, 38, 39]
DTU_TEST_SCANS = [8, 21, 30, 31, 34, 38, 40, 41, 45, 55, 63, 82, 103, 110, 114]
LLFF_SCENES = ["fern", "flower", "fortress", "horns", "leaves", "orchids", "room", "trex"]
BLENDER_TRAIN = [26, 86, 2, 55, 75, 93, 16, 73]
BLENDER_SCENES = ["chair", "drums", "ficus", "hotdog", "lego", "materials", "mic", "ship"]
# The keys every results.json entry carries (#2's contract); protocols may add more.
CONTRACT_METRICS = ("psnr", "psnr_masked", "ssim", "lpips")


@dataclass
class Split:
    train: list[int]
    test: list[int]


@dataclass
class SceneRef:
    """One scene a protocol found: its output name and the path its loader reads."""

    name: str
    path: Path


@dataclass
class Prepared:
    """A (scene, view count) ready to train and score. `test_cameras` are at the evaluated
    resolution; `gt` holds the test photos where the dataset has them (SpaRe's test split
    does not ship them)."""

    train: Scene
    split: Split
    test_cameras: dict[int, Camera]
    gt: dict[int, View] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    align: Callable[[Scene], dict[int, Camera]] | None = None
    """For training views whose cameras the run estimates: the posed training scene → the test
    cameras in its frame (replacing test_cameras)."""
    pose_fields: Callable[[Scene | None], dict] | None = None
    """For protocols that know the training views' true cameras: the posed training scene (None:
    the poses stage posed none) → the job's entry fields on the poses (holdout.pose_fields)."""


def dtu_split(n_views: int, total: int = 49) -> Split:
    if not 1 <= n_views <= len(DTU_TRAIN):
        raise ReconError(f"DTU protocol has 1..{len(DTU_TRAIN)} training views, not {n_views}")
    test = [i for i in range(total) if i not in DTU_TRAIN and i not in DTU_EXCLUDED]
    return Split(DTU_TRAIN[:n_views], test)


def llff_split(n_views: int, total: int) -> Split:
    test = list(range(0, total, 8))
    rest = [i for i in range(total) if i not in test]
    if not 1 <= n_views <= len(rest):
        raise ReconError(f"LLFF scene has {len(rest)} non-test views; cannot train on {n_views}")
    picks = np.round(np.linspace(0, len(rest) - 1, n_views)).astype(int)
    return Split([rest[i] for i in picks], test)


def blender_split(n_views: int, total_test: int = 200) -> Split:
    if not 1 <= n_views <= len(BLENDER_TRAIN):
        raise ReconError(f"the Blender 8-view protocol has 1..{len(BLENDER_TRAIN)} training views, not {n_views}")
    return Split(BLENDER_TRAIN[:n_views], list(range(0, total_test, 8)))


def find_dirs(root: Path, is_scene, depth: int = 2) -> list[Path]:
    """`root` if it is a scene, else the scene folders below it (sorted, up to `depth` levels;
    a scene's own subfolders are not searched)."""
    root = Path(root)
    if not root.is_dir():
        raise ReconError("no such data folder", root)
    if is_scene(root):
        return [root]
    if depth == 0:
        return []
    found = []
    for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found += find_dirs(child, is_scene, depth - 1)
    return found


class Protocol:
    """Base: subclasses set name/metrics/compare and implement find_scenes and prepare."""

    name = ""
    metrics: tuple[str, ...] = CONTRACT_METRICS
    # published.yaml's psnr/ssim/lpips correspond to these keys of ours.
    compare: dict[str, str] = {"psnr": "psnr", "ssim": "ssim", "lpips": "lpips"}

    def find_scenes(self, root: Path) -> list[SceneRef]:
        raise NotImplementedError

    def standard(self, name: str) -> bool:
        """Whether a scene name is one of the protocol's standard benchmark scenes."""
        return False

    def view_counts(self, scene: SceneRef, requested: tuple[int, ...]) -> tuple[int, ...]:
        """The view counts to evaluate `scene` at (SpaRe's split files fix theirs)."""
        return requested

    def prepare(self, scene: SceneRef, n_views: int) -> Prepared:
        raise NotImplementedError

    def score(self, render: np.ndarray, gt: View, lpips: Lpips) -> dict[str, float | None]:
        """Full-image metrics; protocols with masks add theirs."""
        return {"psnr": psnr(render, gt.image), "psnr_masked": None, "ssim": ssim(render, gt.image),
                "lpips": lpips(render, gt.image)}

    def options(self) -> dict:
        """What identifies this protocol's settings in a resume key."""
        return dict(vars(self))

    def submission_name(self, scene: SceneRef, index: int) -> str:
        """SCENE/FILE of a test view in a challenge submission (only SpaRe has one)."""
        raise ReconError(f"--submission is for the SpaRe challenge (--protocol spare), not {self.name}")


@dataclass
class DTU(Protocol):
    downscale: float = 4
    name = "dtu"
    metrics = ("psnr", "psnr_masked", "ssim", "ssim_masked", "lpips", "lpips_masked")
    compare = {"psnr": "psnr_masked", "ssim": "ssim_masked", "lpips": "lpips_masked"}

    def find_scenes(self, root: Path) -> list[SceneRef]:
        from recon.io.dtu import find_idr_cameras

        refs = []
        for d in find_dirs(root, lambda p: find_idr_cameras(p) is not None or is_regnerf_root(p)):
            if find_idr_cameras(d) is not None:
                refs.append(SceneRef(d.name, d))
            else:  # a RegNeRF root holds many scans: Rectified/scanN (scanN_train in some copies)
                for scan in sorted((d / "Rectified").glob("scan*"), key=lambda p: _scan_number(p.name) or 0):
                    if scan.is_dir():
                        refs.append(SceneRef(scan.name.removesuffix("_train"), scan))
        return refs

    def standard(self, name: str) -> bool:
        return _scan_number(name) in DTU_TEST_SCANS

    def prepare(self, scene: SceneRef, n_views: int) -> Prepared:
        from recon.io.detect import load_scene

        split = dtu_split(n_views)
        train = load_scene(scene.path, downscale=self.downscale, indices=split.train)
        test = load_scene(scene.path, downscale=self.downscale, indices=split.test)
        notes = [] if test.has_masks else [f"{scene.name}: no object masks; masked metrics are null"]
        return Prepared(train, split, {v.index: v.camera for v in test.views}, {v.index: v for v in test.views}, notes)

    def score(self, render: np.ndarray, gt: View, lpips: Lpips) -> dict[str, float | None]:
        out = super().score(render, gt, lpips)
        out.update(ssim_masked=None, lpips_masked=None)
        if gt.mask is not None and gt.mask.any():
            # RegNeRF's eval.py: PSNR over object pixels; SSIM/LPIPS with a white background.
            a, b = on_background(render, gt.mask, 1.0), on_background(gt.image, gt.mask, 1.0)
            out.update(psnr_masked=masked_psnr(render, gt.image, gt.mask), ssim_masked=ssim(a, b),
                       lpips_masked=lpips(a, b))
        return out


@dataclass
class LLFF(Protocol):
    downscale: float = 8
    name = "llff"
    metrics = ("psnr", "psnr_masked", "ssim", "lpips")

    def find_scenes(self, root: Path) -> list[SceneRef]:
        return [SceneRef(d.name, d) for d in find_dirs(root, lambda p: (p / "poses_bounds.npy").is_file())]

    def standard(self, name: str) -> bool:
        return _standard_name(name, LLFF_SCENES)

    def prepare(self, scene: SceneRef, n_views: int) -> Prepared:
        from recon.io.detect import load_scene

        full = load_scene(scene.path, downscale=self.downscale, with_masks=False)
        indices = sorted(v.index for v in full.views)
        pos = llff_split(n_views, len(indices))
        split = Split([indices[i] for i in pos.train], [indices[i] for i in pos.test])
        test = full.subset(split.test)
        return Prepared(full.subset(split.train), split, {v.index: v.camera for v in test.views},
                        {v.index: v for v in test.views})


@dataclass
class Blender(Protocol):
    downscale: float = 2
    name = "blender"
    metrics = ("psnr", "psnr_masked", "ssim", "lpips")

    def find_scenes(self, root: Path) -> list[SceneRef]:
        def is_scene(p: Path) -> bool:
            return (p / "transforms_train.json").is_file() and (p / "transforms_test.json").is_file()

        return [SceneRef(d.name, d) for d in find_dirs(root, is_scene)]

    def standard(self, name: str) -> bool:
        return _standard_name(name, BLENDER_SCENES)

    def prepare(self, scene: SceneRef, n_views: int) -> Prepared:
        from recon.io.nerfstudio import read_nerfstudio

        test_json = Path(scene.path) / "transforms_test.json"
        try:
            total = len(json.loads(test_json.read_text())["frames"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ReconError(f"cannot read the test frames ({type(e).__name__})", test_json) from None
        split = blender_split(n_views, total)
        train = read_nerfstudio(Path(scene.path) / "transforms_train.json", downscale=self.downscale,
                                indices=split.train, with_masks=False)
        test = read_nerfstudio(test_json, downscale=self.downscale, indices=split.test, with_masks=False)
        return Prepared(train, split, {v.index: v.camera for v in test.views}, {v.index: v for v in test.views})


def _scan_number(name: str) -> int | None:
    m = re.search(r"scan(\d+)", name)
    return int(m.group(1)) if m else None


def _standard_name(name: str, standard: list[str]) -> bool:
    return any(name == s or name.endswith("_" + s) for s in standard)


def is_regnerf_root(p: Path) -> bool:
    return (p / "Rectified").is_dir() and (p / "Calibration").is_dir()
