"""The learned path's plumbing, offline: tiny randomly initialised transformers models built here,
a perfect matcher (ground-truth correspondences) through the SfM back end, point maps → poses."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from recon.errors import ReconError
from recon.io.photos import load_photos
from recon.poses.learned import PointMaps, TransformersMatcher, load_prior, poses_from_pointmaps
from recon.poses.metrics import pose_errors
from recon.poses.sfm import SfmOptions, run_sfm
from recon.stages.poses import PosesConfig, run_poses
from test_poses_sfm import F, H, W, Log, _Noise, arc_cameras, cast, render

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three rendered views on disk + their true cameras."""
    root = tmp_path_factory.mktemp("learned")
    cams = arc_cameras(3)
    noise = _Noise(0)
    for i, c in enumerate(cams):
        Image.fromarray((render(c, noise) * 255).round().astype(np.uint8)).save(root / f"view{i}.png")
    return root, {f"view{i}": c for i, c in enumerate(cams)}


@pytest.fixture(scope="module")
def tiny_lightglue(tmp_path_factory):
    """A 70k-parameter SuperPoint+LightGlue with random weights, saved like a hub checkpoint."""
    from transformers import LightGlueConfig, LightGlueForKeypointMatching, SuperPointConfig
    from transformers.models.lightglue import LightGlueImageProcessor

    torch.manual_seed(0)
    sp = SuperPointConfig(encoder_hidden_sizes=[8, 8, 16, 16], decoder_hidden_size=32, descriptor_decoder_dim=32,
                          max_keypoints=128, keypoint_threshold=0.0)
    cfg = LightGlueConfig(descriptor_dim=32, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=2, keypoint_detector_config=sp.to_dict())
    path = tmp_path_factory.mktemp("tiny_lightglue")
    LightGlueForKeypointMatching(cfg).save_pretrained(path)
    LightGlueImageProcessor(size={"height": 96, "width": 128}).save_pretrained(path)
    return path


def test_transformers_matcher_loads_and_matches(tiny_lightglue, photos):
    root, _ = photos
    scene = load_photos(root)
    m = TransformersMatcher(str(tiny_lightglue), threshold=0.0)
    assert "LightGlue" in m.name
    xy_a, xy_b = m(scene.views[0], scene.views[1])
    assert xy_a.shape == xy_b.shape and xy_a.shape[1] == 2
    for xy in (xy_a, xy_b):  # in the views' pixels, not the model's 128x96 working size
        assert np.all((xy >= 0) & (xy <= [W, H]))


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ReconError, match="never downloads"):
        TransformersMatcher(str(tmp_path / "no_such_model"))
    with pytest.raises(ReconError, match="never downloads"):
        TransformersMatcher("nobody/not-a-cached-model")


def test_stage_runs_learned_path_and_says_so(tiny_lightglue, photos, tmp_path):
    root, _ = photos
    scene = load_photos(root)
    log = Log()
    cfg = PosesConfig(method="learned", matcher=str(tiny_lightglue))
    try:  # random weights: matches are noise, so the views will rarely register
        out = run_poses(cfg, scene, tmp_path, log)
        assert out.meta["poses_method"] == "learned"
    except ReconError as e:  # a random model's matches do not verify
        assert ("learned matcher" in str(e) and "view0" in str(e)) or "nothing matches" in str(e)
    assert any("learned path: LightGlueForKeypointMatching" in line for line in log.lines)
    assert not any("weights-free" in line for line in log.lines)
    with pytest.raises(ReconError, match="needs a learned --config.poses.matcher"):
        run_poses(PosesConfig(method="learned", matcher="sift"), scene, tmp_path, log)


def _visible(pts: np.ndarray, w2c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pixels [P,2], visible [P]) of world points in a view of the synthetic scene (depth test)."""
    cam = pts @ w2c[:3, :3].T + w2c[:3, 3]
    xy = cam[:, :2] / cam[:, 2:3] * F + [W / 2, H / 2]
    inside = (cam[:, 2] > 0) & np.all((xy > 1) & (xy < [W - 1, H - 1]), axis=1)
    seen, _ = cast(w2c)
    idx = np.clip(xy.astype(int), 0, [W - 1, H - 1])
    surface = seen[idx[:, 1] * W + idx[:, 0]]
    return xy, inside & (np.linalg.norm(surface - pts, axis=1) < 0.05)


def test_sfm_back_end_with_perfect_matches(photos):
    """A matcher that returns true correspondences (plus 10 % outliers): tracks merge across pairs,
    COLMAP verifies and maps them, and the true cameras come back."""
    root, truth = photos
    scene = load_photos(root)
    rng = np.random.default_rng(0)
    n = 3000
    pts = np.concatenate([rng.uniform(-1, 1, (n, 3)), rng.uniform(-5, 5, (n, 3))])
    face = rng.integers(0, 3, n)
    pts[np.arange(n), face] = np.sign(rng.standard_normal(n))  # on the box's faces
    pts[n:, 2] = -1  # on the floor
    noise = {name: rng.normal(0, 0.3, (2 * n, 2)) for name in truth}

    def matcher(a, b):
        xa, va = _visible(pts, truth[a.name])
        xb, vb = _visible(pts, truth[b.name])
        both = np.flatnonzero(va & vb)
        xa, xb = xa[both] + noise[a.name][both], xb[both] + noise[b.name][both]
        out = rng.choice(len(both), len(both) // 10, replace=False)
        xb[out] = rng.uniform([0, 0], [W, H], (len(out), 2))
        return xa, xb

    result = run_sfm(scene.views, {}, SfmOptions(), log=lambda m: None, matcher=matcher)
    assert result.method == "learned" and sorted(result.registered) == sorted(truth)
    err = pose_errors(result.world_to_cam, truth)
    assert err.rot_max < 0.2 and err.trans_max < 1.0, err
    assert max(r["observations"] for r in result.registration.values()) > 500


def test_poses_from_point_maps(photos):
    """Point maps from the true geometry, in a rotated, shifted and scaled common frame."""
    root, truth = photos
    scene = load_photos(root)
    R = np.linalg.qr(np.random.default_rng(1).standard_normal((3, 3)))[0]
    R *= np.linalg.det(R)
    maps = np.stack([(cast(truth[v.name])[0] @ R.T * 0.3 + 2.0).reshape(H, W, 3) for v in scene.views])
    conf = np.where(np.isfinite(maps[..., 0]), 1.0, 0.0)
    cams, points, colors = poses_from_pointmaps(PointMaps(maps, conf), scene.views)
    assert all(c is not None for c in cams)
    err = pose_errors({v.name: c.world_to_cam for v, c in zip(scene.views, cams)}, truth)
    assert err.rot_max < 0.1 and err.trans_max < 0.2, err
    assert all(abs(c.K[0, 0] - F) < 0.01 * F for c in cams)
    assert len(points) == len(colors) > 1000 and np.isfinite(points).all()


def _tiny_pointmap_model(path) -> None:
    """Save a tiny randomly initialised custom transformers model with the point-map contract."""
    from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel

    class TinyPointMapConfig(PretrainedConfig):
        model_type = "recon_tiny_pointmap"

        def __init__(self, image_size: int = 56, **kw) -> None:
            super().__init__(**kw)
            self.image_size = image_size

    class TinyPointMapModel(PreTrainedModel):
        config_class = TinyPointMapConfig

        def __init__(self, config) -> None:
            super().__init__(config)
            self.head = torch.nn.Conv2d(3, 4, 1)
            self.post_init()

        def forward(self, pixel_values):
            b, n, c, h, w = pixel_values.shape
            feat = self.head(pixel_values.reshape(b * n, c, h, w)).reshape(b, n, 4, h, w)
            # a plane at depth 2 seen through a 60° camera, offset by the (random) network output
            ys, xs = torch.meshgrid(torch.linspace(-0.5, 0.5, h), torch.linspace(-0.5, 0.5, w), indexing="ij")
            plane = torch.stack([xs * 2, ys * 2 * h / w, torch.full_like(xs, 2.0)], -1)
            pts = plane + 1e-3 * feat[:, :, :3].permute(0, 1, 3, 4, 2)
            return {"world_points": pts, "world_points_conf": 1 + feat[:, :, 3].sigmoid()}

    AutoConfig.register("recon_tiny_pointmap", TinyPointMapConfig, exist_ok=True)
    AutoModel.register(TinyPointMapConfig, TinyPointMapModel, exist_ok=True)
    torch.manual_seed(0)
    TinyPointMapModel(TinyPointMapConfig()).save_pretrained(path)


def test_point_map_prior_loads_and_feeds_the_stage(photos, tmp_path):
    root, _ = photos
    _tiny_pointmap_model(tmp_path / "tiny")
    prior = load_prior(str(tmp_path / "tiny"))
    scene = load_photos(root)
    maps = prior(scene.views)
    assert maps.points.shape[0] == 3 and maps.points.shape[-1] == 3 and maps.conf.shape == maps.points.shape[:-1]
    assert maps.points.shape[1] % 14 == 0 and maps.points.shape[2] % 14 == 0
    log = Log()
    out = run_poses(PosesConfig(method="learned", matcher="sift", prior=str(tmp_path / "tiny")), scene,
                    tmp_path / "out", log)
    assert out.meta["poses_method"] == "prior" and len(out) == 3 and out.points is not None
    assert (tmp_path / "out" / "transforms.json").is_file()
    assert any("point-map prior" in line for line in log.lines)


def test_prior_from_a_python_factory(tmp_path, monkeypatch):
    (tmp_path / "my_prior.py").write_text(
        "def build(device='cpu'):\n    return lambda views: ('called', device)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_prior("my_prior:build")([]) == ("called", "cpu")
    with pytest.raises(ReconError):
        load_prior("no_such_module_xyz:build")
    sys.modules.pop("my_prior", None)
