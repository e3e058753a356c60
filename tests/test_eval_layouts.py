"""Each protocol's split logic on tiny fixtures written in its on-disk layout (RegNeRF DTU folders,
LLFF, Blender, SpaRe JSON). The writers here are shared by the batch tests."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recon.errors import ReconError
from recon.eval.protocols import BLENDER_TRAIN, DTU_EXCLUDED, DTU_TEST_SCANS, DTU_TRAIN, blender_split
from recon.eval.registry import make_protocol
from recon.eval.spare import image_name
from recon.io.llff import opencv_to_llff
from recon.io.nerfstudio import w2c_to_opengl_c2w
from recon.render import rasterize
from recon.scene import View
from synthetic import colored_blob, ring_cameras

W, H = 48, 36
SPLITS = Path(__file__).resolve().parents[1] / "data" / "splits"


def _png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)


@functools.lru_cache(maxsize=None)
def _views(n: int, width: int = W, height: int = H, seed: int = 0) -> tuple[View, ...]:
    """The synthetic blob seen from `n` ring cameras (one batched render: much faster than n)."""
    g, cams = colored_blob(seed=seed), ring_cameras(n, width, height)
    means, quats, scales, opacities = g.activated()
    with torch.no_grad():
        img, alpha, _ = rasterize(means, quats, scales, opacities, g.colors_sh,
                                  torch.tensor(np.stack([c.world_to_cam for c in cams]), dtype=torch.float32),
                                  torch.tensor(np.stack([c.K for c in cams]), dtype=torch.float32),
                                  width, height, sh_degree=g.sh_degree, backend="cpu")
    return tuple(View(f"view{i:03d}", i, c, img[i].clamp(0, 1).numpy(), alpha[i, ..., 0].numpy() > 0.5)
                 for i, c in enumerate(cams))


def write_llff(folder: Path, n: int = 12, seed: int = 0) -> Path:
    """SCENE/poses_bounds.npy + images_8/ (48×36; the poses' hwf are at 8× that)."""
    rows = []
    for i, v in enumerate(_views(n, seed=seed)):
        _png(folder / "images_8" / f"IMG_{i:04d}.png", v.image)
        pose = opencv_to_llff(v.camera.world_to_cam, H * 8, W * 8, v.camera.K[0, 0] * 8)
        rows.append(np.concatenate([pose.ravel(), [2.0, 6.0]]))
    np.save(folder / "poses_bounds.npy", np.stack(rows))
    return folder


def _projection(cam) -> np.ndarray:
    return cam.K @ cam.world_to_cam[:3]


def _up(a: np.ndarray, k: int) -> np.ndarray:
    return np.repeat(np.repeat(a, k, 0), k, 1)


def write_regnerf_dtu(root: Path, scans: tuple[int, ...] = (8,), n: int = 49) -> Path:
    """ROOT/Rectified/scanN/rect_XXX_3_r5000.png, Calibration/cal18/pos_XXX.txt, idrmasks/scanN/mask/.
    Photos are 192×144 (4× blocks of the 48×36 render), so the protocol's 4× area filter gives 48×36."""
    views = _views(n)
    (root / "Calibration" / "cal18").mkdir(parents=True, exist_ok=True)
    for v in views:
        np.savetxt(root / "Calibration" / "cal18" / f"pos_{v.index + 1:03d}.txt",
                   _projection(v.camera.resized(4 * W, 4 * H)))
    for scan in scans:
        for v in views:
            _png(root / "Rectified" / f"scan{scan}" / f"rect_{v.index + 1:03d}_3_r5000.png", _up(v.image, 4))
            _png(root / "idrmasks" / f"scan{scan}" / "mask" / f"{v.index:03d}.png",
                 _up(np.repeat(v.mask[..., None], 3, 2).astype(np.float32), 4))
    return root


def write_blender(folder: Path, n_train: int = 100, n_test: int = 16) -> Path:
    """transforms_{train,test}.json (camera_angle_x, extension-less file_path) + RGBA PNGs."""
    for split, n in (("train", n_train), ("test", n_test)):
        views = _views(n, 16, 16)
        frames = []
        for i, v in enumerate(views):
            rgba = np.concatenate([v.image, v.mask[..., None].astype(np.float32)], axis=2)
            path = folder / split / f"r_{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((rgba * 255 + 0.5).astype(np.uint8), "RGBA").save(path)
            frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": w2c_to_opengl_c2w(v.camera.world_to_cam).tolist()})
        angle = 2 * np.arctan(0.5 * 16 / views[0].camera.K[0, 0])
        (folder / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": angle, "frames": frames}))
    return folder


def write_spare(root: Path, hidden: tuple[int, ...] = (7,)) -> Path:
    """A SpaRe release: a DTU scene (scan63, Calibration/cal18, idrmasks) and a synthetic one
    (Amplifier, Calibration/Amplifier, masks beside the photos), split file with 3 input views;
    the photos of `hidden` test views are absent, as in the challenge's test split."""
    split = {"scan63": {"input_views": [0, 2, 4], "test_views": [1, 5], "dataset": "DTU"},
             "Amplifier": {"input_views": [0, 3, 6], "test_views": [1, 7], "dataset": "SpaRe"}}
    (root / "Track1_split_development.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "Track1_split_development.json").write_text(json.dumps(split))
    for name, entry in split.items():
        dtu = entry["dataset"] == "DTU"
        cal = root / "Calibration" / ("cal18" if dtu else name)
        cal.mkdir(parents=True, exist_ok=True)
        images = root / ("dtu" if dtu else "synth") / name
        for v in _views(8):
            np.savetxt(cal / f"pos_{v.index + 1:03d}.txt", _projection(v.camera))
            if v.index in hidden:
                continue
            _png(images / image_name(v.index, dtu), v.image)
            mask = (root / "idrmasks" / name / f"{v.index:03d}.png") if dtu else (images / "mask" / f"{v.index:03d}.png")
            _png(mask, np.repeat(v.mask[..., None], 3, 2))
    return root


def test_dtu_regnerf_layout_split_and_scenes(tmp_path):
    root = write_regnerf_dtu(tmp_path / "DTU", scans=(8,), n=49)
    (root / "Rectified" / "scan37_train").mkdir()  # listed as scan37 (loaded only when run)
    dtu = make_protocol("dtu")
    refs = dtu.find_scenes(tmp_path)
    assert [r.name for r in refs] == ["scan8", "scan37"], "any scan under the root, in scan order"
    assert dtu.standard("scan8") and not dtu.standard("scan37") and dtu.standard("dtu_scan114")
    assert len(DTU_TEST_SCANS) == 15
    prep = dtu.prepare(refs[0], 6)
    assert [v.index for v in prep.train.views] == DTU_TRAIN[:6] == [25, 22, 28, 40, 44, 48]
    assert sorted(prep.gt) == prep.split.test and len(prep.split.test) == 25
    assert not set(prep.split.test) & set(DTU_EXCLUDED + DTU_TRAIN)
    # index i is rect_{i+1:03d}: the photo of view 25 is rect_026
    assert prep.train.views[0].name == "rect_026_3_r5000"
    assert all(v.mask is not None for v in prep.gt.values())
    # 4× area filter: 192×144 photos are evaluated at 48×36, with the camera scaled to match
    view = prep.gt[1]
    assert view.image.shape == (H, W, 3) and view.camera.width == W
    assert np.allclose(view.image, _views(49)[1].image, atol=1 / 255)


def test_llff_layout_split(tmp_path):
    write_llff(tmp_path / "fern", n=20)
    llff = make_protocol("llff")
    [ref] = llff.find_scenes(tmp_path)
    prep = llff.prepare(ref, 3)
    assert prep.split.test == [0, 8, 16]
    assert prep.split.train == [1, 10, 19], "evenly spaced over the 17 non-test views"
    assert prep.train.views[0].image.shape == (H, W, 3), "images_8 is the evaluated resolution"
    assert llff.standard("llff_fern") and not llff.standard("lund_door")


def test_blender_layout_dietnerf_views(tmp_path):
    write_blender(tmp_path / "nerf_synthetic" / "lego")
    blender = make_protocol("blender", downscale=1)
    [ref] = blender.find_scenes(tmp_path)
    assert ref.name == "lego" and blender.standard("lego")
    prep = blender.prepare(ref, 8)
    assert [v.index for v in prep.train.views] == BLENDER_TRAIN == [26, 86, 2, 55, 75, 93, 16, 73]
    assert prep.split.test == [0, 8]  # every 8th of the 16 test frames here (25 of the real 200)
    assert blender_split(8).test == list(range(0, 200, 8)) and len(blender_split(8).test) == 25
    # RGBA composited on white: a corner pixel (background) is white
    assert np.allclose(prep.gt[0].image[0, 0], 1.0)
    with pytest.raises(ReconError):
        blender.prepare(ref, 9)


def test_spare_json_split_names_and_hidden_views(tmp_path):
    root = write_spare(tmp_path / "spare")
    spare = make_protocol("spare", train_downscale=1)
    refs = {r.name: r for r in spare.find_scenes(root)}
    assert set(refs) == {"scan63", "Amplifier"}
    assert spare.view_counts(refs["scan63"], (6, 9)) == (3,), "the split file fixes the view count"
    prep = spare.prepare(refs["scan63"], 3)
    # index i ↔ camera file i+1, lighting 3
    assert [v.name for v in prep.train.views] == ["rect_001_3_r5000", "rect_003_3_r5000", "rect_005_3_r5000"]
    assert sorted(prep.gt) == [1, 5] and all(v.mask is not None for v in prep.gt.values())
    amp = spare.prepare(refs["Amplifier"], 3)
    assert [v.name for v in amp.train.views][0] == "cam_001_3_0000"
    assert sorted(amp.test_cameras) == [1, 7] and sorted(amp.gt) == [1], "view 7's photo is hidden"
    assert any("not scored" in n for n in amp.notes)
    assert spare.submission_name(refs["Amplifier"], 7) == "Amplifier/cam_008_3_0000.png"
    assert spare.submission_name(refs["scan63"], 13) == "scan63/rect_014_3_r5000.png"
    with pytest.raises(ReconError):
        spare.prepare(refs["scan63"], 9)


def test_spare_split_file_errors(tmp_path):
    (tmp_path / "a_split.json").write_text(json.dumps({"scan1": {"input_views": "0 1 2"}}))
    with pytest.raises(ReconError, match="input_views"):
        make_protocol("spare").find_scenes(tmp_path)
    (tmp_path / "b_split.json").write_text("{}")
    with pytest.raises(ReconError, match="--split"):
        make_protocol("spare").find_scenes(tmp_path)


def test_bundled_split_files_match_the_protocols():
    """data/splits/ writes the protocols' view ids in the SpaRe JSON form."""
    from recon.eval.protocols import dtu_split

    for n in (3, 6, 9):
        data = json.loads((SPLITS / f"dtu_regnerf_{n}views.json").read_text())
        assert sorted(int(k.removeprefix("scan")) for k in data) == DTU_TEST_SCANS
        for entry in data.values():
            assert entry["input_views"] == dtu_split(n).train and entry["test_views"] == dtu_split(n).test
    blender = json.loads((SPLITS / "blender_dietnerf_8views.json").read_text())
    assert all(e["input_views"] == BLENDER_TRAIN and len(e["test_views"]) == 25 for e in blender.values())
