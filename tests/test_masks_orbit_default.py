"""Photos the orbit path posed get automatic masks under the default `ingest.masks files`
(recon/stages/masks.py); other photos, and `none`, are left as they are."""

from __future__ import annotations

import numpy as np
import pytest

import recon.stages.masks as stage
from recon.scene import Camera, Scene, View
from tests.test_poses_sfm import Log

H, W = 24, 32


def _scene(method: str) -> Scene:
    K = np.array([[30.0, 0, W / 2], [0, 30.0, H / 2], [0, 0, 1]])
    views = [View(f"v{i}", i, Camera(K, np.eye(4), W, H), np.full((H, W, 3), 0.5, np.float32)) for i in range(4)]
    return Scene(views, meta={"posed": True, "poses_method": method})


@pytest.fixture
def fake_net(monkeypatch):
    """u2netp and the refinement replaced: a centre square, no hull."""
    square = np.zeros((H, W), bool)
    square[6:18, 8:24] = True

    class Net:
        def __init__(self, model=None) -> None:
            pass

        def __call__(self, image):
            return square.astype(np.float32)

    monkeypatch.setattr(stage, "SaliencyModel", Net)
    monkeypatch.setattr(stage, "refine_masks", lambda cams, images, probs, cfg: ([p >= 0.5 for p in probs], None))
    return square


def test_orbit_posed_photos_get_masks(fake_net, tmp_path):
    log = Log()
    out = stage.run_masks("files", _scene("orbit"), tmp_path, log)
    assert all(v.mask is not None and (v.mask == fake_net).all() for v in out.views)
    assert out.meta["masks"] == "auto" and any("orbit path" in line for line in log.lines)


@pytest.mark.parametrize("mode, method", [("files", "sift"), ("none", "orbit")])
def test_others_left_alone(fake_net, tmp_path, mode, method):
    scene = _scene(method)
    assert stage.run_masks(mode, scene, tmp_path, Log()) is scene
