"""SpaRe / AIM 2024 Sparse Neural Rendering Challenge (sparebenchmark.github.io).

Split files (Track1_split_{development,test}.json: 3 input views; Track2_*: 9) map a scene name to
{"input_views": [i...], "test_views": [i...], "dataset": "DTU" | "SpaRe"}. View index i is camera
file i+1: DTU images are rect_{i+1:03d}_3_r5000.png, synthetic SpaRe ones cam_{i+1:03d}_3_0000.png
(lighting 3 = all lights on, the condition the challenge evaluates), and the camera is the 3×4
projection matrix pos_{i+1:03d}.txt (RegNeRF's calibration format). View.index is i.

Where things are looked for under the data root (the release zips unpack to slightly different
trees, so several places are tried, first match wins):
  images       ROOT/SCENE, ROOT/Rectified/SCENE[_train], ROOT/*/SCENE, ROOT/*/*/SCENE
  calibration  the image folder, ROOT/Calibration/SCENE, ROOT/Calibration/cal18, ROOT/Calibration,
               ROOT/calibration[/SCENE], ROOT/*/SCENE and ROOT/*/Calibration/cal18
  masks        ROOT/idrmasks/SCENE[/mask]/{i:03d}.png, IMAGES/mask/{i:03d}.png (optional)

Training views are area-downscaled 4× (400×300, as the DTU protocol); test views are rendered and
scored at the photos' own resolution (1600×1200), like the challenge. Metrics (the challenge's):
PSNR inside the object mask (psnr_masked), SSIM and LPIPS inside the tight box around the object
(ssim_box, lpips_box), and full-image PSNR/SSIM/LPIPS. The test split's photos are not released:
there recon renders (see --submission) and scores nothing.

Submission: renders at 1600×1200 named as the photos (rect_…_3_r5000.png / cam_…_3_0000.png) in a
folder per scene, zipped with the scene folders at the archive's root.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon.errors import ReconError
from recon.eval.metrics import Lpips, object_scores
from recon.eval.protocols import Prepared, Protocol, SceneRef, Split
from recon.scene import Camera, Scene, View

SUBMISSION_SIZE = (1600, 1200)
LIGHT = 3


def is_dtu(entry: dict, name: str = "") -> bool:
    """DTU or synthetic SpaRe scene, from the split's "dataset" field (else the scanN name)."""
    dataset = str(entry.get("dataset", "")).lower()
    return dataset.startswith("dtu") if dataset else name.startswith("scan")


def image_name(index: int, dtu: bool, light: int = LIGHT) -> str:
    """The challenge's file name for view `index` (camera file index + 1)."""
    return f"rect_{index + 1:03d}_{light}_r5000.png" if dtu else f"cam_{index + 1:03d}_{light}_0000.png"


def read_split(path: Path) -> dict[str, dict]:
    """A SpaRe split file, checked: {scene: {"input_views", "test_views", ["dataset"]}}."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ReconError(f"cannot read the split file ({type(e).__name__})", path) from None
    if not isinstance(data, dict) or not data:
        raise ReconError("expected a JSON object {scene: {input_views, test_views}}", path)
    for name, entry in data.items():
        ok = isinstance(entry, dict) and all(
            isinstance(entry.get(k), list) and all(isinstance(i, int) and i >= 0 for i in entry[k])
            for k in ("input_views", "test_views"))
        if not ok or not entry["input_views"]:
            raise ReconError(f"scene '{name}' needs lists of view indices 'input_views' and 'test_views'", path)
    return data


def find_split_file(root: Path) -> Path:
    """The one *split*.json in `root` (pass --split when there are several)."""
    found = sorted(Path(root).glob("*split*.json"))
    if len(found) != 1:
        what = "no *split*.json" if not found else f"{len(found)} split files ({', '.join(p.name for p in found)})"
        raise ReconError(f"{what}: pass the SpaRe split file with --split", root)
    return found[0]


def _first_dir(candidates: list[Path], has) -> Path | None:
    return next((c for c in candidates if c.is_dir() and has(c)), None)


def scene_dir(root: Path, name: str, dtu: bool, index: int) -> Path | None:
    """The folder holding the scene's photos (probed with the photo of view `index`)."""
    cands = [root / name, root / "Rectified" / name, root / "Rectified" / f"{name}_train"]
    cands += sorted(root.glob(f"*/{name}")) + sorted(root.glob(f"*/*/{name}"))
    return _first_dir(cands, lambda d: (d / image_name(index, dtu)).is_file())


def calibration_dir(root: Path, name: str, images: Path, index: int) -> Path:
    pos = f"pos_{index + 1:03d}.txt"
    cands = [images, root / "Calibration" / name, root / "Calibration" / "cal18", root / "Calibration",
             root / "calibration" / name, root / "calibration"]
    cands += sorted(root.glob(f"*/{name}")) + sorted(root.glob("*/Calibration/cal18"))
    found = _first_dir(cands, lambda d: (d / pos).is_file())
    if found is None:
        raise ReconError(f"no {pos} for scene {name} (looked in Calibration/[cal18|{name}], the image "
                         "folder and */{name})", root)
    return found


def mask_path(root: Path, name: str, images: Path, index: int) -> Path | None:
    for c in (root / "idrmasks" / name / "mask", root / "idrmasks" / name, images / "mask"):
        if (c / f"{index:03d}.png").is_file():
            return c / f"{index:03d}.png"
    return None


@dataclass
class Spare(Protocol):
    split_file: str | None = None
    """The split JSON; None = the one *split*.json in the data root."""
    train_downscale: float = 4
    name = "spare"
    metrics = ("psnr", "psnr_masked", "ssim", "ssim_box", "lpips", "lpips_box")
    compare = {"psnr": "psnr_masked", "ssim": "ssim_box", "lpips": "lpips_box"}

    def _split(self, root: Path) -> dict[str, dict]:
        return read_split(Path(self.split_file) if self.split_file else find_split_file(root))

    def find_scenes(self, root: Path) -> list[SceneRef]:
        root = Path(root)
        refs = []
        for name, entry in self._split(root).items():
            if scene_dir(root, name, is_dtu(entry, name), entry["input_views"][0]) is not None:
                refs.append(SceneRef(name, root))
        return refs

    def standard(self, name: str) -> bool:
        return True  # the split file is the benchmark's scene list

    def view_counts(self, scene: SceneRef, requested: tuple[int, ...]) -> tuple[int, ...]:
        return (len(self._split(scene.path)[scene.name]["input_views"]),)

    def options(self) -> dict:
        return {"split_file": self.split_file, "train_downscale": self.train_downscale}

    def prepare(self, scene: SceneRef, n_views: int) -> Prepared:
        from recon.io.dtu import decompose_projection, read_projection_txt
        from recon.io.images import ImageSpec, image_size, load_views

        root, name = Path(scene.path), scene.name
        entry = self._split(root)[name]
        split = Split(list(entry["input_views"]), list(entry["test_views"]))
        if n_views != len(split.train):
            raise ReconError(f"scene {name} has {len(split.train)} input views in its split file, not {n_views}")
        dtu = is_dtu(entry, name)
        images = scene_dir(root, name, dtu, split.train[0])
        if images is None:
            raise ReconError(f"no {image_name(split.train[0], dtu)} for scene {name}", root)
        width, height = image_size(images / image_name(split.train[0], dtu))

        def spec(i: int) -> ImageSpec:
            cal = calibration_dir(root, name, images, i)
            K, w2c = decompose_projection(read_projection_txt(cal / f"pos_{i + 1:03d}.txt"))
            img = images / image_name(i, dtu)
            return ImageSpec(img.stem, i, Camera(K, w2c, width, height), img, mask_path(root, name, images, i))

        train = Scene(load_views([spec(i) for i in split.train], downscale=self.train_downscale, with_masks=False),
                      source=str(images), meta={"format": "spare", "dataset": "DTU" if dtu else "SpaRe"})
        specs = [spec(i) for i in split.test]
        with_gt = [s for s in specs if s.image_path.is_file()]
        gt = {v.index: v for v in load_views(with_gt, with_masks=None)}
        notes = []
        if len(with_gt) < len(specs):
            notes.append(f"{name}: {len(specs) - len(with_gt)} of {len(specs)} test photos are not in the data "
                         "(the challenge's hidden test split): rendered, not scored")
        if gt and not all(v.mask is not None for v in gt.values()):
            notes.append(f"{name}: no object masks for the test views; masked and box metrics are null")
        return Prepared(train, split, {s.index: s.camera for s in specs}, gt, notes)

    def score(self, render: np.ndarray, gt: View, lpips: Lpips) -> dict[str, float | None]:
        return {**super().score(render, gt, lpips), **object_scores(render, gt.image, gt.mask, lpips)}

    def submission_name(self, scene: SceneRef, index: int) -> str:
        """SCENE/FILE of test view `index` in the challenge's archive."""
        entry = self._split(scene.path)[scene.name]
        return f"{scene.name}/{image_name(index, is_dtu(entry, scene.name))}"
